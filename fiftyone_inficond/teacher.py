"""Teacher scores: any model's per-class probabilities, stored as a sample field.

Distillation here is response-based and model-agnostic: all a teacher contributes is a
``(n_samples, n_classes)`` matrix of probabilities. Every source (an array, a score file,
a label field, a FiftyOne model, an open_clip zero-shot classifier) ends in
:func:`set_teacher_scores`, which validates, converts logits and records the class list.
"""

import hashlib
import json
import logging
import os
import uuid
from collections import Counter

import fiftyone as fo
import numpy as np
import torch
import torch.nn.functional as F
from open_clip.zero_shot_classifier import build_zero_shot_classifier
from scipy.special import expit, softmax

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.crashpoints import crashpoint
from fiftyone_inficond.errors import InvalidRequest, MissingFile
from fiftyone_inficond.fiftyone_api import dataset_of, exact_count, label_path, require_own_samples
from fiftyone_inficond.images import image_batches
from fiftyone_inficond.labels import label_items, require_label_field
from fiftyone_inficond.runs import TEACHER_METHOD, claim_field, mark_complete, record_run, require_run
from fiftyone_inficond.validation import field_name

logger = logging.getLogger(__name__)

SCORE_KINDS = ("auto", "probabilities", "logits")
# Samples per write: one write of every sample held FiftyOne's encoded copy of all of them (+50 MB of
# peak memory at 100,000 samples x 80 classes, measured); chunks keep that copy to a chunk's.
WRITE_ROWS = 4096
_KEY_NAMES = {"filename": "file name", "filepath": "file path"}


def _require_samples(samples):
    require_own_samples(samples, "teacher scores")
    if exact_count(samples) == 0:
        raise InvalidRequest("The view is empty: select at least one sample to score")


def _check_classes(classes):
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple)):
        raise InvalidRequest(f"Give the teacher's classes as a list of names, one per score column; got {classes!r}")
    classes = [str(c) for c in classes]
    if not classes:
        raise InvalidRequest("The teacher's class list is empty: give one name per score column")
    if any(not c.strip() for c in classes):
        raise InvalidRequest("A teacher class name is blank: give every score column a name")
    with_nul = [c for c in classes if "\x00" in c]
    if with_nul:
        raise InvalidRequest(
            f"The teacher class name {with_nul[0]!r} holds a NUL character (\\x00), which the database cannot "
            f"store: remove it from the name"
        )
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise InvalidRequest(f"Duplicate class names in the teacher's class list: {duplicates}")
    return classes


def _check_scores(scores, n_rows, classes):
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (ValueError, TypeError):
        raise InvalidRequest("Teacher scores must be a matrix of numbers, one row per sample") from None
    if scores.ndim != 2:
        raise InvalidRequest(f"Teacher scores must be a 2-D matrix; got shape {scores.shape}")
    if scores.shape[0] != n_rows:
        raise InvalidRequest(
            f"Teacher scores have {scores.shape[0]} rows but {n_rows} samples are given: "
            f"give one row per sample"
        )
    if scores.shape[1] != len(classes):
        raise InvalidRequest(
            f"Teacher scores have {scores.shape[1]} columns but {len(classes)} classes are "
            f"given: give one column per class"
        )
    bad = ~np.isfinite(scores)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InvalidRequest(
            f"Teacher scores contain {bad.sum()} NaN or infinite values "
            f"(first at row {row}, class '{classes[col]}'): fix or drop those rows"
        )
    return scores


ROUNDING = 1e-4  # how far outside [0, 1] a probability may be and still be one (float32, JSON round trips)


def to_probabilities(scores, scores_are="auto"):
    """Probabilities from scores; logits go through a sigmoid (multi-label teachers).

    ``"auto"`` takes scores within [0, 1] as probabilities and anything else as logits; a
    probability a rounding error (:data:`ROUNDING`) outside [0, 1], like 1.0000001, is clipped to it:
    read as logits, one such score turned 142 positives of 630 into 578.
    """
    if scores_are not in SCORE_KINDS:
        raise InvalidRequest(f"scores_are must be one of {SCORE_KINDS}; got '{scores_are}'")
    in_unit_range = scores.min() >= -ROUNDING and scores.max() <= 1 + ROUNDING
    if scores_are == "auto":
        scores_are = "probabilities" if in_unit_range else "logits"
    if scores_are == "logits":
        return expit(scores), scores_are
    if not in_unit_range:
        raise InvalidRequest(
            "Scores said to be probabilities fall outside [0, 1]: pass scores_are='logits'"
        )
    return np.clip(scores, 0, 1), scores_are


def _match_keys(samples, keys, key_field):
    """Sample ids for each key (``None`` where no sample matches); refuses keys several samples
    share, whose row would land on only one of them."""
    ids, values = samples.values(["id", "filepath" if key_field == "filename" else key_field])
    if key_field == "filename":
        values = [os.path.basename(v) for v in values]
    repeated = sorted(str(value) for value, count in Counter(values).items() if count > 1)
    if repeated:
        instead = "'filepath' or 'id'" if key_field == "filename" else "'id'"
        raise InvalidRequest(
            f"Several samples share the {_KEY_NAMES.get(key_field, key_field)}(s) {repeated[:5]}: match by "
            f"{instead} instead, or remove the duplicate samples from the view"
        )
    lookup = dict(zip(values, ids))
    return [lookup.get(str(k)) for k in keys]


def _refuse_repeated(keys, key_field):
    seen = {}
    for row, key in enumerate(keys):
        if key in seen:
            raise InvalidRequest(
                f"Teacher rows {seen[key]} and {row} both belong to {key_field} '{key}': give one row per sample"
            )
        seen[key] = row


def scores_digest(ids, probabilities):
    """A digest of what a teacher run wrote, independent of row order: equal scores, equal digest."""
    order = np.argsort(ids)
    digest = hashlib.sha256()
    for i in order:
        digest.update(ids[i].encode("ascii"))
    digest.update(np.ascontiguousarray(probabilities[order], dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def set_teacher_scores(
    samples,
    scores,
    classes,
    field="teacher",
    keys=None,
    key_field="id",
    scores_are="auto",
    source="array",
    overwrite=False,
):
    """Stores teacher scores as a ``VectorField`` of probabilities and records the run.

    Args:
        samples: a FiftyOne collection
        scores: ``(n, n_classes)`` probabilities or logits
        classes: the class name of each column
        field: the sample field to write
        keys: what each row belongs to (values of ``key_field``); ``None`` means the rows
            follow the order of ``samples``
        key_field: ``"id"``, ``"filepath"`` or ``"filename"`` (file base names)
        scores_are: ``"auto"``, ``"probabilities"`` or ``"logits"`` (sigmoid applied)
        source: a short description recorded in the run
        overwrite: replace an earlier teacher run in ``field``

    Returns:
        the number of samples written
    """
    field = field_name(field, "the teacher field")
    _require_samples(samples)
    classes = _check_classes(classes)
    if keys is None:
        ids = samples.values("id")
        scores = _check_scores(scores, len(ids), classes)
    else:
        keys = [str(k) for k in keys]
        scores = _check_scores(scores, len(keys), classes)
        _refuse_repeated(keys, key_field)
        ids = _match_keys(samples, keys, key_field)
        matched = [i for i, sample_id in enumerate(ids) if sample_id is not None]
        if not matched:
            raise InvalidRequest(
                f"None of the {len(keys)} teacher rows match a sample by {key_field} "
                f"(e.g. '{keys[0]}'): check the score file belongs to this dataset"
            )
        if len(matched) < len(keys):
            logger.warning("%d teacher rows match no sample and are ignored", len(keys) - len(matched))
        ids, scores = [ids[i] for i in matched], scores[matched]
    probabilities, scores_are = to_probabilities(scores, scores_are)

    probabilities = probabilities.astype(np.float32)
    claim_field(samples, field, TEACHER_METHOD, overwrite, what="teacher scores")
    # Recorded as incomplete first: a writer killed midway leaves a run that says so, never
    # unlabelled scores or a run that claims scores it does not have.
    record_run(
        samples, field, TEACHER_METHOD, classes=classes, source=source, scores_are=scores_are,
        digest=scores_digest(ids, probabilities), complete=False,
    )
    dataset = dataset_of(samples)
    dataset.add_sample_field(field, fo.VectorField)
    crashpoint("teacher:run-recorded")
    for start in range(0, len(ids), WRITE_ROWS):  # the run says incomplete until the last chunk lands
        rows = slice(start, start + WRITE_ROWS)
        dataset.set_values(field, dict(zip(ids[rows], probabilities[rows])), key_field="id")
    mark_complete(samples, field)
    return len(ids)


def read_score_file(path):
    """Reads a JSON score file with keys ``classes``, ``files`` and ``scores``."""
    if not os.path.isfile(path):
        raise MissingFile(f"Teacher score file '{path}' does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"Teacher score file '{path}' is not valid JSON: {e}") from e
        except UnicodeDecodeError:
            raise InvalidRequest(f"Teacher score file '{path}' is not UTF-8 text: save it as UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"Teacher score file '{path}' holds {type(data).__name__} JSON, not an object with the "
                             'keys "classes", "files" and "scores"')
    missing = {"classes", "files", "scores"} - set(data)
    if missing:
        raise InvalidRequest(f"Teacher score file '{path}' lacks the key(s) {sorted(missing)}")
    return data["scores"], data["classes"], data["files"]


def teacher_from_file(samples, path, field="teacher", scores_are="auto", overwrite=False):
    """Teacher scores from a JSON file whose ``files`` are image file names."""
    scores, classes, files = read_score_file(path)
    return set_teacher_scores(
        samples,
        scores,
        classes,
        field=field,
        keys=files,
        key_field="filename",
        scores_are=scores_are,
        source=f"file:{os.path.basename(path)}",
        overwrite=overwrite,
    )


def scores_from_labels(labels, classes):
    """Per class, the highest confidence among a sample's labels; 0 where the class is absent.

    Works for ``Classification``, ``Classifications`` and ``Detections`` labels, so a
    detector is a teacher too (its best box per class).
    """
    column = {c: j for j, c in enumerate(classes)}
    scores = np.zeros((len(labels), len(classes)))
    for i, label in enumerate(labels):
        for item in label_items(label):
            j = column.get(item.label)
            if j is not None and item.confidence is not None:
                scores[i, j] = max(scores[i, j], item.confidence)
    return scores


def teacher_from_labels(samples, label_field, classes=None, field="teacher", overwrite=False):
    """Teacher scores from the confidences of an existing label field, for the samples the field
    labels: a sample whose field is empty has no prediction, not a confident "no class" (its
    scores would be zeros), so it gets no teacher scores, like a sample missing from a score file."""
    _require_samples(samples)
    require_label_field(samples, label_field, "teacher")
    if classes is None:
        classes = samples.distinct(label_path(samples, label_field))
    ids, labels = samples.exists(label_field).values(["id", label_field])
    if not ids:
        raise InvalidRequest(f"No sample of the view has a label in '{label_field}': choose the field that holds "
                             "the model's predictions")
    return set_teacher_scores(
        samples,
        scores_from_labels(labels, _check_classes(classes)),
        classes,
        field=field,
        keys=ids,
        scores_are="probabilities",
        source=f"labels:{label_field}",
        overwrite=overwrite,
    )


def teacher_from_model(samples, model, classes=None, field="teacher", batch_size=None, overwrite=False):
    """Teacher scores from any model :meth:`fiftyone.core.collections.SampleCollection.apply_model` accepts.

    Classifiers that keep logits give softmax probabilities over all classes; otherwise
    each class's score is its best prediction confidence.
    """
    _require_samples(samples)
    classes = _check_classes(classes or getattr(model, "classes", None) or [])
    store_logits = bool(getattr(model, "has_logits", False))
    scratch = f"inficond_scratch_{uuid.uuid4().hex[:8]}"
    try:
        samples.apply_model(model, label_field=scratch, store_logits=store_logits, batch_size=batch_size)
        ids, labels = samples.exists(scratch).values(["id", scratch])
    finally:
        if dataset_of(samples).has_sample_field(scratch):
            dataset_of(samples).delete_sample_field(scratch)
    if not ids:
        raise InvalidRequest("The model predicted nothing for any sample of the view: nothing to score")
    if store_logits:
        scores = np.stack([softmax(np.asarray(label.logits), axis=-1) for label in labels])
    else:
        scores = scores_from_labels(labels, classes)
    return set_teacher_scores(
        samples,
        scores,
        classes,
        field=field,
        keys=ids,
        scores_are="probabilities",
        source=f"model:{type(model).__name__}",
        overwrite=overwrite,
    )


def teacher_from_clip(
    samples,
    classes,
    model="ViT-B-16",
    pretrained=None,
    field="teacher",
    template="a photo of a {}.",
    batch_size=32,
    device=None,
    overwrite=False,
):
    """An open_clip zero-shot teacher over the class names.

    CLIP's logits become a softmax over the classes; a model with a logit bias (SigLIP)
    is a sigmoid classifier, so each class gets its own sigmoid.
    """
    _require_samples(samples)
    classes = _check_classes(classes)
    clip = load_clip(model, pretrained, device=device, resize_mode="shortest")
    classifier = build_zero_shot_classifier(clip.model, clip.tokenizer, classes, [template], device=clip.device)
    ids, paths = samples.values(["id", "filepath"])
    scored_ids, rows = [], []
    for indices, images, failures in image_batches(paths, clip.preprocess, batch_size):
        for index, error in failures.items():
            logger.warning("Skipping unreadable image %s (%s)", paths[index], error)
        if images is not None:
            rows.append(_zero_shot(clip.model, images.to(clip.device), classifier))
            scored_ids.extend(ids[i] for i in indices)
    if not rows:
        raise InvalidRequest("No image of the view could be read: nothing to score")
    return set_teacher_scores(
        samples,
        np.concatenate(rows),
        classes,
        field=field,
        keys=scored_ids,
        scores_are="probabilities",
        source=f"open_clip:{model}:{pretrained}",
        overwrite=overwrite,
    )


@torch.no_grad()
def _zero_shot(model, images, classifier):
    """Class probabilities of ``images`` under open_clip's ``(embed_dim, k)`` zero-shot ``classifier``,
    at the model's own logit scale and bias (open_clip's zero-shot evaluation ranks classes at a
    fixed scale of 100: it gives no probabilities)."""
    image = F.normalize(model.encode_image(images).float(), dim=-1)
    logits = model.logit_scale.exp() * image @ classifier.float()
    if getattr(model, "logit_bias", None) is not None:
        return torch.sigmoid(logits + model.logit_bias).cpu().numpy()
    return logits.softmax(dim=-1).cpu().numpy()


def teacher_scores(samples, field="teacher"):
    """``(scores, classes)`` of a teacher field: an ``(n, k)`` float32 matrix in ``samples`` order."""
    config = require_run(samples, field, TEACHER_METHOD, "teacher scores")
    return np.stack(samples.values(field)).astype(np.float32), config["classes"]
