"""The arrays students learn from, read out of a FiftyOne collection."""

from dataclasses import dataclass

import numpy as np

from fiftyone_inficond.runs import CONCEPTS_METHOD, TEACHER_METHOD, require_run


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


def truth_matrix(labels, classes):
    """``(n, k)`` bool multi-label matrix from ``Classifications`` labels (``None`` = none)."""
    column = {c: j for j, c in enumerate(classes)}
    truth = np.zeros((len(labels), len(classes)), dtype=bool)
    for i, label in enumerate(labels):
        for item in label.classifications if label is not None else []:
            if item.label in column:
                truth[i, column[item.label]] = True
    return truth


def train_mask(samples, train_tag=None, split_field=None):
    """Which samples train the students: those tagged ``train_tag``, or whose
    ``split_field`` is ``"train"``; all of them when neither is given."""
    if train_tag is not None and split_field is not None:
        raise ValueError("Give train_tag or split_field, not both")
    if train_tag is not None:
        return np.array([train_tag in tags for tags in samples.values("tags")])
    if split_field is not None:
        if not samples.has_field(split_field):
            raise ValueError(f"The dataset has no field '{split_field}' to split by")
        return np.array([value == "train" for value in samples.values(split_field)])
    return np.ones(len(samples), dtype=bool)


def load_data(samples, concepts_field, teacher_field, gt_field=None, train_tag=None, split_field=None):
    """Reads concept vectors, teacher scores and ground truth; returns data and class names."""
    concept_run = require_run(samples, concepts_field, CONCEPTS_METHOD, "concepts")
    teacher_run = require_run(samples, teacher_field, TEACHER_METHOD, "teacher scores")
    usable = samples.exists(concepts_field).exists(teacher_field)
    if len(usable) == 0:
        raise ValueError(
            f"No sample has both '{concepts_field}' and '{teacher_field}': compute concepts "
            f"and teacher scores for the same samples first"
        )
    classes = teacher_run["classes"]
    ids, concepts, teacher = usable.values(["id", concepts_field, teacher_field])
    truth = None
    if gt_field is not None:
        truth = truth_matrix(usable.values(gt_field), classes)
    train = train_mask(usable, train_tag, split_field)
    if not train.any():
        raise ValueError("The training split is empty: tag some samples for training")
    data = DistillationData(
        ids=ids,
        concepts=np.stack(concepts).astype(np.float32),
        teacher=np.stack(teacher).astype(np.float32),
        truth=truth,
        train=train,
    )
    return data, classes, concept_run
