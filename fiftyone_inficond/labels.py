"""Reading FiftyOne label fields as lists of (label, confidence) items, whatever their type, and
choosing the field predictions go to.

A teacher's scores and the ground truth can both come from ``Classification``,
``Classifications`` or ``Detections`` fields, so a detector's boxes count as labels too.

Predictions replace what their field held, so they only go to a new field or one that earlier
predictions of this plugin wrote, known by a mark in the field's ``info`` (any client sees it,
and it survives clones): never into a student run's ground truth (the run would evaluate against
its own predictions), the concepts or teacher scores runs are recorded on, nor anyone's labels.
"""

import itertools

import fiftyone as fo

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import exact_count, fresh_dataset, run_keys, stored_run_config
from fiftyone_inficond.runs import CONCEPTS_METHOD, TEACHER_METHOD, run_config, segments_field
from fiftyone_inficond.students.store import STUDENTS_METHOD
from fiftyone_inficond.validation import field_name

LABEL_TYPES = (fo.Classification, fo.Classifications, fo.Detections)
PREDICTIONS_MARK = "inficond_predictions"  # key of the field info marking a field of student predictions
APPLYING = "inficond_applying"  # key of the field info naming the export whose write has not finished


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


def require_prediction_field(samples, field, suggestion="student"):
    """``field``, refused for student predictions unless it is a field name that is new, or holds this
    plugin's earlier predictions and is nobody's ground truth; the refusal names a field to use
    instead (``suggestion`` or, when that is taken, the first free ``<suggestion>_<n>``)."""
    field = field_name(field, "the label field")
    held = _held_in(samples, field)
    if held is not None:
        raise InvalidRequest(f"Field '{field}' holds {held}, which predictions would replace: "
                             f"predict into '{_free_field(samples, suggestion)}' instead")
    return field


def declare_prediction_field(samples, field):
    """Declares ``field`` (checked by :func:`require_prediction_field`) as a ``Classifications``
    field marked as this plugin's predictions, so that predicting again into it is allowed."""
    dataset = fresh_dataset(samples)
    if not dataset.has_sample_field(field):
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classifications,
                                 info={PREDICTIONS_MARK: True})
        return
    declared = dataset.get_field(field)
    if not (declared.info or {}).get(PREDICTIONS_MARK):
        declared.info = {**(declared.info or {}), PREDICTIONS_MARK: True}
        declared.save()


def begin_predictions(samples, field, export):
    """Marks ``field`` (declared) as being written by export ``export`` (its manifest digest) until
    :func:`end_predictions`: a process killed in between leaves the mark, so the mix of old and new
    labels it leaves is recorded (each label names its export too). Returns the export an earlier,
    unfinished write was writing, or ``None``."""
    declared = fresh_dataset(samples).get_field(field)
    unfinished = (declared.info or {}).get(APPLYING)
    declared.info = {**(declared.info or {}), APPLYING: export}
    declared.save()
    return unfinished


def end_predictions(samples, field):
    """Clears the mark of :func:`begin_predictions`: every sample of the write has its labels."""
    declared = fresh_dataset(samples).get_field(field)
    declared.info = {name: value for name, value in (declared.info or {}).items() if name != APPLYING}
    declared.save()


def unfinished_predictions(samples, field):
    """The export (manifest digest) whose write into ``field`` did not finish, or ``None``."""
    return (fresh_dataset(samples).get_field(field).info or {}).get(APPLYING)


def _held_in(samples, field):
    """What ``field`` holds that predictions must not replace, in the user's words, or ``None``."""
    for key in run_keys(samples, STUDENTS_METHOD):
        if (stored_run_config(samples, key, ["gt_field"]) or {}).get("gt_field") == field:
            return f"the ground truth student run '{key}' is evaluated against"
    if run_config(samples, field, CONCEPTS_METHOD) is not None:
        return "concept vectors"
    if run_config(samples, field, TEACHER_METHOD) is not None:
        return "teacher scores"
    concepts_field = field.removesuffix("_segments")
    if segments_field(concepts_field) == field and run_config(samples, concepts_field, CONCEPTS_METHOD) is not None:
        return "concept segments"
    dataset = fresh_dataset(samples)
    if not dataset.has_sample_field(field):
        return None
    declared = dataset.get_field(field)
    kind = getattr(declared, "document_type", None)
    if kind is not fo.Classifications:
        return f"{(kind or type(declared)).__name__} values"
    if not (declared.info or {}).get(PREDICTIONS_MARK) and exact_count(dataset.exists(field)) > 0:
        return "labels this plugin did not predict"
    return None


def _free_field(samples, suggestion):
    names = itertools.chain([suggestion], (f"{suggestion}_{n}" for n in itertools.count(2)))
    return next(name for name in names if _held_in(samples, name) is None)
