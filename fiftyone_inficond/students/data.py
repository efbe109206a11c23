"""The arrays students learn from, read out of a FiftyOne collection.

Training reads the samples of a view; loading a run reads exactly the samples it was trained
on (recorded by id with the run), so a run keeps its samples whatever view it is opened from.
"""

from dataclasses import dataclass

import numpy as np

from fiftyone_inficond.corpus import corpus_id
from fiftyone_inficond.errors import InvalidRequest, RunInputsChanged
from fiftyone_inficond.fiftyone_api import dataset_of, decode_array, exact_count, stream_documents
from fiftyone_inficond.labels import label_items, require_label_field
from fiftyone_inficond.runs import CONCEPTS_METHOD, CORPUS_ATTRIBUTES, TEACHER_METHOD, fingerprint, require_run


@dataclass
class DistillationData:
    """Aligned arrays for the samples that have both concepts and teacher scores.

    Attributes:
        ids: sample ids, row order
        concepts: ``(n, n_concepts)`` concept vectors
        teacher: ``(n, k)`` teacher probabilities
        truth: ``(n, k)`` bool ground truth, or ``None``
        train: ``(n,)`` bool, the rows students are trained on
    """

    ids: list
    concepts: np.ndarray
    teacher: np.ndarray
    truth: np.ndarray
    train: np.ndarray


@dataclass
class Inputs:
    """The concept and teacher runs a student run learns from (their configs)."""

    concepts: dict
    teacher: dict

    @property
    def classes(self):
        return list(self.teacher["classes"])

    @property
    def concept_names(self):
        return list(self.concepts["concepts"])

    def record(self):
        """What a student run records to notice later that its inputs changed."""
        return dict(
            classes=self.classes,
            corpus_id=self.concepts["corpus_id"],
            concepts_fingerprint=fingerprint(self.concepts, ignore=CORPUS_ATTRIBUTES),
            teacher_digest=_teacher_digest(self.teacher),
        )



def _teacher_digest(teacher_run):
    return teacher_run.get("digest") or fingerprint(teacher_run)


def read_inputs(samples, concepts_field, teacher_field):
    return Inputs(
        concepts=require_run(samples, concepts_field, CONCEPTS_METHOD, "concepts"),
        teacher=require_run(samples, teacher_field, TEACHER_METHOD, "teacher scores"),
    )


def check_inputs(key, config, inputs):
    """Refuses a run whose concepts or teacher changed since it was trained, saying how to recover."""
    then, now = config, inputs.record()
    teacher, concepts = config["teacher_field"], config["concepts_field"]
    if now["classes"] != then["classes"]:
        if sorted(now["classes"]) == sorted(then["classes"]):
            change = "changed order"
        else:
            added = sorted(set(now["classes"]) - set(then["classes"]))
            removed = sorted(set(then["classes"]) - set(now["classes"]))
            change = f"changed (added {added or 'none'}, removed {removed or 'none'})"
        raise RunInputsChanged(
            f"The teacher classes in '{teacher}' {change} since run '{key}' was trained: "
            f"retrain it, or restore the teacher it was trained on"
        )
    trained_on = inputs.concept_names[: len(config["concept_mean"])]
    if corpus_id(trained_on) != then["corpus_id"]:  # an extension appends columns: still fine
        raise RunInputsChanged(
            f"The concept corpus of '{concepts}' changed since run '{key}' was trained "
            f"({len(inputs.concept_names)} concepts now): retrain it, or recompute '{concepts}' "
            f"with the corpus it was trained on"
        )
    if now["concepts_fingerprint"] != then["concepts_fingerprint"]:
        raise RunInputsChanged(
            f"The concepts in '{concepts}' were recomputed with other settings (model, template or "
            f"segments) since run '{key}' was trained: retrain it, or recompute them as before"
        )
    if now["teacher_digest"] != then["teacher_digest"]:
        raise RunInputsChanged(
            f"The teacher scores in '{teacher}' were replaced by other scores since run '{key}' was "
            f"trained: retrain it, or import the scores it was trained on again"
        )


def truth_matrix(labels, classes):
    """``(n, k)`` bool multi-label matrix from label field values (``None`` = no label)."""
    column = {c: j for j, c in enumerate(classes)}
    truth = np.zeros((len(labels), len(classes)), dtype=bool)
    for i, label in enumerate(labels):
        for item in label_items(label):
            if item.label in column:
                truth[i, column[item.label]] = True
    return truth


def train_mask(samples, train_tag=None, split_field=None):
    """Which samples train the students: those tagged ``train_tag``, or whose
    ``split_field`` is ``"train"``; all of them when neither is given."""
    if train_tag is not None and split_field is not None:
        raise InvalidRequest("Give train_tag or split_field, not both")
    if train_tag is not None:
        return np.array([train_tag in tags for tags in samples.values("tags")])
    if split_field is not None:
        if not samples.has_field(split_field):
            raise InvalidRequest(f"The dataset has no field '{split_field}' to split by")
        return np.array([value == "train" for value in samples.values(split_field)])
    return np.ones(exact_count(samples), dtype=bool)


def training_data(samples, inputs, concepts_field, teacher_field, gt_field=None, train_tag=None, split_field=None):
    """Reads concept vectors, teacher scores and ground truth of the samples that have both."""
    if gt_field is not None:
        require_label_field(samples, gt_field, "ground truth")
    usable = samples.exists(concepts_field).exists(teacher_field)
    if exact_count(usable) == 0:
        raise InvalidRequest(
            f"No sample has both '{concepts_field}' and '{teacher_field}': compute concepts "
            f"and teacher scores for the same samples first"
        )
    ids, *truth = usable.values(["id"] + ([gt_field] if gt_field else []))
    train = train_mask(usable, train_tag, split_field)
    if not train.any():
        raise InvalidRequest("The training split is empty: tag some samples for training")
    concepts, teacher, found = _matrices(usable, ids, concepts_field, teacher_field)
    if not found.all():
        raise RunInputsChanged(
            f"{int((~found).sum())} samples lost their '{concepts_field}' or '{teacher_field}' values "
            f"while they were read: try again"
        )
    return _data(ids, concepts, teacher, truth, inputs.classes, train)


def run_data(samples, key, sample_ids, train, config):
    """Reads the arrays of exactly the samples run ``key`` was trained on, in its row order."""
    concepts_field, teacher_field, gt_field = config["concepts_field"], config["teacher_field"], config["gt_field"]
    dataset = dataset_of(samples)
    if 2 * len(sample_ids) < exact_count(dataset):  # a small part of the dataset: the database picks it
        view = dataset.select(sample_ids).exists(concepts_field).exists(teacher_field)
    else:  # most of it: reading every sample and keeping the run's is cheaper than a select by 100k ids
        view = dataset.exists(concepts_field).exists(teacher_field)
    # Its columns only, whatever was added since.
    concepts, teacher, found = _matrices(view, sample_ids, concepts_field, teacher_field, len(config["concept_mean"]))
    truth = []
    if gt_field:  # a second read: a sample deleted since the first is missing here too
        labels, labelled = _labels_in_order(view, sample_ids, gt_field)
        truth, found = [labels], found & labelled
    if not found.all():
        raise RunInputsChanged(
            f"{int((~found).sum())} of the {len(sample_ids)} samples run '{key}' was trained on were deleted or "
            f"lost their '{concepts_field}' or '{teacher_field}' values since: retrain it"
        )
    return _data(list(sample_ids), concepts, teacher, truth, config["classes"], train)


def _labels_in_order(view, sample_ids, field):
    """The ``field`` labels of the samples ``sample_ids`` in that order (``None`` for a sample not
    in ``view``), and an ``(n,)`` bool of those in it."""
    found, labels = view.values(["id", field])
    row = {sample_id: i for i, sample_id in enumerate(found)}
    rows = [row.get(sample_id) for sample_id in sample_ids]
    return [None if r is None else labels[r] for r in rows], np.array([r is not None for r in rows], dtype=bool)


def _matrices(view, ids, concepts_field, teacher_field, width=None):
    """``(n, n_concepts)`` concept vectors (their first ``width`` columns when given) and
    ``(n, k)`` teacher probabilities, float32, of the samples ``ids`` in that order, and an
    ``(n,)`` bool of the rows found (a row not found is left unset).

    Documents come one at a time from one cursor into matrices allocated once: memory holds
    the matrices, never a list of every sample's arrays (nor a second copy to stack them). The
    ids come from the same cursor: reading them apart (``values("id")``) cost a sixth of a
    100k-sample load."""
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    concepts = teacher = None
    found = np.zeros(len(ids), dtype=bool)
    for doc in stream_documents(view, [concepts_field, teacher_field]):
        i = position.get(str(doc["_id"]))
        if i is None:
            continue
        vector, scores = decode_array(doc[concepts_field]), decode_array(doc[teacher_field])
        if concepts is None:
            concepts = np.empty((len(ids), len(vector) if width is None else width), dtype=np.float32)
            teacher = np.empty((len(ids), len(scores)), dtype=np.float32)
        short = len(vector) < concepts.shape[1] if width is not None else len(vector) != concepts.shape[1]
        if short or len(scores) != teacher.shape[1]:
            raise RunInputsChanged(
                f"The samples' '{concepts_field}' or '{teacher_field}' vectors have different lengths: "
                f"they are being rewritten; try again once that is done"
            )
        concepts[i], teacher[i] = vector[: concepts.shape[1]], scores
        found[i] = True
    return concepts, teacher, found


def _data(ids, concepts, teacher, truth, classes, train):
    return DistillationData(
        ids=list(ids),
        concepts=concepts,
        teacher=teacher,
        truth=truth_matrix(truth[0], classes) if truth else None,
        train=np.asarray(train, dtype=bool),
    )
