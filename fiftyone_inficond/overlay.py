"""One concept's heatmap over the grid's images: where the concept is, in each image.

A heatmap is written on demand into **one** label field per concept run (``<field>_overlay``):
showing another concept rewrites it, and samples outside the requested ones lose theirs, so the
field always holds exactly one concept and clicks never pile up fields. Each ``Heatmap`` names
its concept (an attribute the App's tooltip shows) and maps every patch to its segment's
similarity, from the segment embeddings stored with the run: no image is read or encoded.

**Only where the concept is**: a CLIP similarity lies in a narrow band (0.1-0.3), so a map on
[0, 1] is one colour over the whole image. The range is the shown images' own: patches below the
top quarter of their similarities are 0, which the App leaves clear, and the colour scale runs
from that quartile to the largest similarity among them (the answer gives both, as its legend).

The overlay field is created with a marker naming its concept run (the field's ``info``); a field
of that name without it is someone's own data, which the overlay never clears or writes into.
"""

import fiftyone as fo
import numpy as np
from bson import ObjectId

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import encode_array, fresh_dataset, require_own_samples, update_samples
from fiftyone_inficond.locate import concept_text_embedding, open_index

_MARKER = "inficond_overlay_of"  # in the overlay field's info: the concept run it draws


def overlay_field(field="concepts"):
    """The label field holding the concept overlay of the concept run in ``field``."""
    return f"{field}_overlay"


def show_concept_overlay(samples, concept, field="concepts"):
    """Writes ``concept``'s heatmap into the overlay field of the samples of ``samples`` (those
    with segments) and clears it everywhere else in their dataset.

    Returns:
        ``{"field", "concept", "samples": heatmaps written, "cleared": stale ones removed,
        "new_field": whether the field was created (an App must reload its schema), "range":
        [low, high]: the similarities the colours span (clear below low)}``
    """
    require_own_samples(samples, "heatmaps")
    text = concept_text_embedding(samples, concept, field)  # refuses unknown concepts first
    dataset = fresh_dataset(samples)
    path = overlay_field(field)
    new_field = not dataset.has_sample_field(path)
    if not new_field:
        _require_overlay(dataset, path, field)
    index = open_index(dataset, field)
    heatmaps = index.heatmaps(text, index.rows_of(samples))
    if new_field:
        dataset.add_sample_field(
            path, fo.EmbeddedDocumentField, embedded_doc_type=fo.Heatmap,
            description=f"The heatmap of one concept of '{field}' (InFiConD: the concept shown last)",
            info={_MARKER: field},
        )
        dataset.add_sample_field(f"{path}.concept", fo.StringField, description="The concept it shows")
    stale = dataset.exists(path).exclude(list(heatmaps))
    cleared = stale.count()
    if cleared:
        stale.clear_sample_field(path)
    span = colour_range([found["map"] for found in heatmaps.values()])
    update_samples(dataset, {
        sample_id: {path: _heatmap(found["map"], concept, span)} for sample_id, found in heatmaps.items()
    })
    return {"field": path, "concept": concept, "samples": len(heatmaps), "cleared": cleared, "new_field": new_field,
            "range": span}


SHOWN_SHARE = 0.25  # of the shown images' patches, the most similar are coloured


def colour_range(maps):
    """``[low, high]`` of similarity maps (each ``(rows, cols)``): the top quarter's least
    similarity and the largest one, both positive (``[0.0, 1.0]`` without a positive value)."""
    values = np.concatenate([np.ravel(m) for m in maps]) if maps else np.zeros(0)
    values = values[values > 0]
    if not len(values):
        return [0.0, 1.0]
    low, high = float(np.quantile(values, 1 - SHOWN_SHARE)), float(values.max())
    return [low, max(high, np.nextafter(np.float32(low), np.float32(1)).item())]


def _require_overlay(dataset, path, field):
    """Refuses field ``path`` unless it is the overlay field this library created for ``field``."""
    existing = dataset.get_field(path)
    ours = (isinstance(existing, fo.EmbeddedDocumentField) and existing.document_type is fo.Heatmap
            and (existing.info or {}).get(_MARKER) == field)
    if not ours:
        raise InvalidRequest(
            f"Field '{path}' holds data that is not a concept overlay, and the heatmaps of concept run "
            f"'{field}' can only be drawn in '{path}': rename your field (e.g. "
            f"dataset.rename_sample_field('{path}', 'my_{path}')) to draw them"
        )


def _heatmap(similarity, concept, span):
    """A stored ``Heatmap`` document: similarities on the patch grid within ``span``, those below
    it 0 (clear in the App)."""
    low, high = span
    shown = np.where(similarity >= low, np.minimum(similarity, high), 0)
    return {
        "_id": ObjectId(),
        "_cls": "Heatmap",
        "tags": [],
        "map": encode_array(shown.astype(np.float32)),
        "range": [low, high],
        "concept": concept,
    }
