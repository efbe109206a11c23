"""Reading FiftyOne label fields as lists of (label, confidence) items, whatever their type.

A teacher's scores and the ground truth can both come from ``Classification``,
``Classifications`` or ``Detections`` fields, so a detector's boxes count as labels too.
"""

import fiftyone as fo

from fiftyone_inficond.errors import InvalidRequest

LABEL_TYPES = (fo.Classification, fo.Classifications, fo.Detections)


def label_items(label):
    """The ``Classification``/``Detection`` items of one label (``None``: none)."""
    if label is None:
        return []
    if isinstance(label, fo.Classifications):
        return label.classifications
    if isinstance(label, fo.Detections):
        return label.detections
    return [label]


def require_label_field(samples, field, what):
    """Refuses ``field`` unless it exists and holds one of :data:`LABEL_TYPES`."""
    if not samples.has_field(field):
        raise InvalidRequest(f"The dataset has no field '{field}' for the {what}: pick an existing label field")
    kind = getattr(samples.get_field(field), "document_type", None)
    if kind not in LABEL_TYPES:
        names = ", ".join(t.__name__ for t in LABEL_TYPES)
        raise InvalidRequest(
            f"Field '{field}' does not hold labels ({names}), so it cannot be the {what}: pick a label field"
        )
