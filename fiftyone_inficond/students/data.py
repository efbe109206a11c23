"""The arrays students learn from, read out of a FiftyOne collection.

Training reads the samples of a view; loading a run reads exactly the samples it was trained
on (recorded by id with the run), so a run keeps its samples whatever view it is opened from.
"""

import zlib
from dataclasses import dataclass

import numpy as np

from fiftyone_inficond.corpus import corpus_id
from fiftyone_inficond.errors import InvalidRequest, RunInputsChanged
from fiftyone_inficond.fiftyone_api import dataset_of, decode_array, exact_count, label_path, stream_documents
from fiftyone_inficond.labels import label_items, require_label_field
from fiftyone_inficond.runs import CONCEPTS_METHOD, CORPUS_ATTRIBUTES, TEACHER_METHOD, fingerprint, require_run
from fiftyone_inficond.students.fingerprint import same_values, values_fingerprint


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
    teacher_field, concepts_field = config["teacher_field"], config["concepts_field"]
    if now["classes"] != then["classes"]:
        if sorted(now["classes"]) == sorted(then["classes"]):
            change = "changed order"
        else:
            added = sorted(set(now["classes"]) - set(then["classes"]))
            removed = sorted(set(then["classes"]) - set(now["classes"]))
            change = f"changed (added {added or 'none'}, removed {removed or 'none'})"
        raise RunInputsChanged(
            f"The teacher classes in '{teacher_field}' {change} since run '{key}' was trained: "
            f"retrain it, or restore the teacher it was trained on"
        )
    trained_on = inputs.concept_names[: len(config["concept_mean"])]
    if corpus_id(trained_on) != then["corpus_id"]:  # an extension appends columns: still fine
        raise RunInputsChanged(
            f"The concept corpus of '{concepts_field}' changed since run '{key}' was trained "
            f"({len(inputs.concept_names)} concepts now): retrain it, or recompute '{concepts_field}' "
            f"with the corpus it was trained on"
        )
    if now["concepts_fingerprint"] != then["concepts_fingerprint"]:
        raise RunInputsChanged(
            f"The concepts in '{concepts_field}' were recomputed with other settings (model, template or "
            f"segments) since run '{key}' was trained: retrain it, or recompute them as before"
        )
    # A run that checks its own samples' scores when it loads (or keeps its own copy of them, streamed) goes
    # on after a new import that left them as they were, e.g. one that scored the week's new samples too.
    checks_own_rows = "values" in then or bool(then.get("cache"))
    if now["teacher_digest"] != then["teacher_digest"] and not checks_own_rows:
        raise RunInputsChanged(
            f"The teacher scores in '{teacher_field}' were replaced by other scores since run '{key}' was "
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


MIN_TRAINING_SAMPLES = 10


def check_training_split(train):
    """``train`` (a ``(n,)`` bool mask) if it holds enough samples to fit a student to: with one,
    every concept's spread is 0, and the students' logits on other samples ran to ±10,000."""
    count = int(np.count_nonzero(train))
    if count == 0:
        raise InvalidRequest("The training split is empty: tag some samples for training")
    if count < MIN_TRAINING_SAMPLES:
        raise InvalidRequest(
            f"The training split has {count} sample{'s' * (count != 1)}, too few to learn from: tag at least "
            f"{MIN_TRAINING_SAMPLES} samples for training"
        )
    return train


def require_truth_for(samples, gt_field, classes):
    """Refuses ground truth whose labels are not the teacher's ``classes``: spelled in another case
    ('Car' against 'car'), or none of them at all, either of which left every class without a
    measure against the truth, without a word. A field with no labels yet is accepted."""
    require_label_field(samples, gt_field, "ground truth")
    labels = set(samples.distinct(label_path(samples, gt_field)))
    folded = {label.casefold(): label for label in labels}
    for cls in classes:
        if cls not in labels and cls.casefold() in folded:
            raise InvalidRequest(
                f"The teacher's class '{cls}' is '{folded[cls.casefold()]}' in '{gt_field}': import the teacher "
                f"again with the ground truth's spelling of its classes, or train without ground truth"
            )
    if labels and not labels.intersection(classes):
        shown = ", ".join(f"'{label}'" for label in sorted(labels)[:3])
        raise InvalidRequest(
            f"None of the teacher's {len(classes)} classes is a label in '{gt_field}' (it holds {shown}, ...): "
            f"pick the ground truth field whose labels are the teacher's classes, or train without ground truth"
        )


def training_data(samples, inputs, concepts_field, teacher_field, gt_field=None, train_tag=None, split_field=None):
    """Reads concept vectors, teacher scores and ground truth of the samples that have both."""
    if gt_field is not None:
        require_truth_for(samples, gt_field, inputs.classes)
    usable = samples.exists(concepts_field).exists(teacher_field)
    if exact_count(usable) == 0:
        raise InvalidRequest(
            f"No sample has both '{concepts_field}' and '{teacher_field}': compute concepts "
            f"and teacher scores for the same samples first"
        )
    ids, *truth = usable.values(["id"] + ([gt_field] if gt_field else []))
    train = check_training_split(train_mask(usable, train_tag, split_field))
    n_concepts, n_classes = len(inputs.concept_names), len(inputs.classes)
    concepts, teacher, found = _matrices(usable, ids, concepts_field, teacher_field, (n_concepts, n_concepts),
                                         n_classes)
    if not found.all():
        raise RunInputsChanged(
            f"{int((~found).sum())} samples lost their '{concepts_field}' or '{teacher_field}' values "
            f"while they were read: try again"
        )
    check_values(concepts, teacher, concepts_field, teacher_field)
    return _data(ids, concepts, teacher, truth, inputs.classes, train)


def check_values(concepts, teacher, concepts_field, teacher_field):
    """Refuses concept vectors or teacher scores no extraction or import writes: NaN or infinite
    values, teacher scores outside [0, 1] (hand edits, or another tool's output)."""
    for matrix, field, what in ((concepts, concepts_field, "concept vectors"), (teacher, teacher_field,
                                                                                 "teacher scores")):
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            raise InvalidRequest(
                f"{int(bad.sum())} samples' {what} in '{field}' hold NaN or infinite values: compute or import "
                f"them again (with overwrite=True)"
            )
    outside = ((teacher < 0) | (teacher > 1)).any(axis=1)
    if outside.any():
        raise InvalidRequest(
            f"{int(outside.sum())} samples' teacher scores in '{teacher_field}' are not probabilities (outside "
            f"[0, 1]): import them again (with overwrite=True)"
        )


def run_data(samples, key, sample_ids, train, config, n_concepts):
    """Reads the arrays of the samples run ``key`` was trained on that still exist, in its row order
    (vectors at most ``n_concepts`` long: its concept run's number of concepts now).

    Returns:
        ``(data, deleted)``: the :class:`DistillationData` of the samples left, and how many of the
        run's samples were deleted (or lost their concepts or teacher scores) since
    """
    concepts_field, teacher_field, gt_field = config["concepts_field"], config["teacher_field"], config["gt_field"]
    dataset = dataset_of(samples)
    if 2 * len(sample_ids) < exact_count(dataset):  # a small part of the dataset: the database picks it
        view = dataset.select(sample_ids).exists(concepts_field).exists(teacher_field)
    else:  # most of it: reading every sample and keeping the run's is cheaper than a select by 100k ids
        view = dataset.exists(concepts_field).exists(teacher_field)
    # Its columns only, whatever was added since.
    widths = (len(config["concept_mean"]), n_concepts)
    try:
        concepts, teacher, found = _matrices(view, sample_ids, concepts_field, teacher_field, widths,
                                             len(config["classes"]))
    except InvalidRequest as error:
        raise RunInputsChanged(f"Student run '{key}' cannot be loaded: {error}") from None
    truth = []
    if gt_field:  # a second read: a sample deleted since the first is missing here too
        labels, labelled = labels_in_order(view, sample_ids, gt_field)
        truth, found = [labels], found & labelled
    rows = np.flatnonzero(found)
    if len(rows) < len(found):
        concepts, teacher = concepts[rows], teacher[rows]
        truth = [[truth[0][i] for i in rows]] if truth else []
    if len(rows) == 0:
        raise RunInputsChanged(f"Every sample run '{key}' was trained on was deleted since: train it again")
    if "values" in config:
        same = same_values(config["values"], values_fingerprint(concepts, teacher, rows), np.flatnonzero(~found))
        if same is None:
            raise RunInputsChanged(
                f"{int((~found).sum())} of the {len(sample_ids)} samples run '{key}' was trained on were deleted "
                f"since, and it was trained by an earlier version that cannot check the others: retrain it"
            )
        if not same:
            raise RunInputsChanged(
                f"The concept vectors in '{concepts_field}' or the teacher scores in '{teacher_field}' of the "
                f"samples run '{key}' was trained on were changed since (by hand, by another tool, or by importing "
                f"other scores): retrain it, or compute or import them again as they were"
            )
    ids = [sample_ids[i] for i in rows]
    return _data(ids, concepts, teacher, truth, config["classes"], np.asarray(train)[rows]), int((~found).sum())


def labels_in_order(view, sample_ids, field):
    """The ``field`` labels of the samples ``sample_ids`` in that order (``None`` for a sample not
    in ``view``), and an ``(n,)`` bool of those in it."""
    found, labels = view.values(["id", field])
    row = {sample_id: i for i, sample_id in enumerate(found)}
    rows = [row.get(sample_id) for sample_id in sample_ids]
    return [None if r is None else labels[r] for r in rows], np.array([r is not None for r in rows], dtype=bool)


def _matrices(view, ids, concepts_field, teacher_field, widths, n_classes):
    """``(n, widths[0])`` concept vectors (the first ``widths[0]`` columns of vectors at most
    ``widths[1]`` long, ``None``: any) and ``(n, n_classes)`` teacher probabilities, float32, of the
    samples ``ids`` in that order, and an ``(n,)`` bool of the rows found (a row not found is left
    unset). Vectors of other widths or of no numbers are refused.

    Documents come one at a time from one cursor into matrices allocated once: memory holds
    the matrices, never a list of every sample's arrays (nor a second copy to stack them). The
    ids come from the same cursor: reading them apart (``values("id")``) cost a sixth of a
    100k-sample load."""
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    width, most = widths
    concepts = np.empty((len(ids), width), dtype=np.float32)
    teacher = np.empty((len(ids), n_classes), dtype=np.float32)
    found = np.zeros(len(ids), dtype=bool)
    widths_seen = set()
    for doc in stream_documents(view, [concepts_field, teacher_field]):
        i = position.get(str(doc["_id"]))
        if i is None:
            continue
        vector = _numbers(doc[concepts_field], concepts_field, "concept vectors")
        scores = _numbers(doc[teacher_field], teacher_field, "teacher scores")
        if len(scores) != n_classes:
            raise InvalidRequest(
                f"Field '{teacher_field}' holds teacher scores of {len(scores)} classes where its teacher run names "
                f"{n_classes}: import the teacher scores again (with overwrite=True)"
            )
        widths_seen.add(len(vector))
        if len(vector) < width or (most is not None and len(vector) > most) or len(widths_seen) > 1:
            raise InvalidRequest(_width_problem(concepts_field, widths_seen, width if most is None else most))
        concepts[i], teacher[i] = vector[:width], scores
        found[i] = True
    return concepts, teacher, found


def _numbers(value, field, what):
    """The 1-d numeric array stored in ``value``; anything else (text, lists, a matrix) refused."""
    try:
        array = decode_array(value)
    except (TypeError, ValueError, zlib.error):
        array = None
    if array is None or array.ndim != 1 or array.dtype.kind not in "fiub":
        raise InvalidRequest(
            f"Field '{field}' holds values that are not {what} (vectors of numbers): compute or import them again "
            f"(with overwrite=True)"
        )
    return array


def _width_problem(field, widths_seen, expected):
    if len(widths_seen) > 1:
        return (f"The samples' '{field}' vectors have different lengths: they are being rewritten; try again once "
                f"that is done")
    (seen,) = widths_seen
    return (f"Field '{field}' holds vectors of {seen} values where its concept run names {expected} concepts (written "
            f"by hand or by another tool): compute the concepts again (with overwrite=True)")


def _data(ids, concepts, teacher, truth, classes, train):
    return DistillationData(
        ids=list(ids),
        concepts=concepts,
        teacher=teacher,
        truth=truth_matrix(truth[0], classes) if truth else None,
        train=np.asarray(train, dtype=bool),
    )
