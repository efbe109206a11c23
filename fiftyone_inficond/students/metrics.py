"""How well students mimic the teacher and the ground truth, with sklearn's metrics."""

import warnings
from dataclasses import dataclass, fields, replace

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from fiftyone_inficond.errors import InvalidRequest

SORT_KEYS = ("ap_gap", "agreement_ap", "recall", "precision", "f1")


@dataclass
class ClassMetrics:
    """Per-class metrics as arrays of length k (NaN where undefined)."""

    teacher_ap: np.ndarray  # teacher scores vs ground truth
    student_ap: np.ndarray  # student scores vs ground truth
    agreement_ap: np.ndarray  # student scores vs the teacher's decisions
    precision: np.ndarray  # student decisions vs teacher decisions
    recall: np.ndarray
    f1: np.ndarray

    @classmethod
    def concatenate(cls, parts):
        """The metrics of the classes of ``parts`` (each of a few classes), in their order."""
        return cls(**{field.name: np.concatenate([getattr(part, field.name) for part in parts])
                      for field in fields(cls)})

    def with_columns(self, columns, partial):
        """A copy with ``columns`` taken from ``partial`` (metrics of just those classes)."""
        updated = {}
        for field in fields(self):
            values = getattr(self, field.name).copy()
            values[columns] = getattr(partial, field.name)
            updated[field.name] = values
        return replace(self, **updated)

    @property
    def ap_gap(self):
        """How much AP against the ground truth the student loses to the teacher."""
        return self.teacher_ap - self.student_ap

    def summary(self):
        """Means over classes where defined."""
        names = ("teacher_ap", "student_ap", "agreement_ap", "precision", "recall", "f1")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            return {name: _float(np.nanmean(getattr(self, name))) for name in names}

    def rows(self, classes):
        """One dict per class, for tables and provenance."""
        return [
            {
                "class": name,
                "teacher_ap": _float(self.teacher_ap[j]),
                "student_ap": _float(self.student_ap[j]),
                "ap_gap": _float(self.ap_gap[j]),
                "agreement_ap": _float(self.agreement_ap[j]),
                "precision": _float(self.precision[j]),
                "recall": _float(self.recall[j]),
                "f1": _float(self.f1[j]),
            }
            for j, name in enumerate(classes)
        ]

    def order(self, by="ap_gap"):
        """Class indices sorted worst first: largest AP gap, or lowest agreement/recall/..."""
        if by not in SORT_KEYS:
            raise InvalidRequest(f"Sort by one of {SORT_KEYS}; got {by!r}")
        values = getattr(self, by)
        key = -values if by == "ap_gap" else values
        return np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")


def _float(value):
    return None if np.isnan(value) else float(value)


def per_class_ap(truth, scores):
    """Average precision per column; NaN for columns without positives."""
    ap = np.full(truth.shape[1], np.nan)
    defined = truth.any(axis=0)
    if defined.any():
        ap[defined] = average_precision_score(truth[:, defined], scores[:, defined], average=None)
    return ap


def per_class_prf(truth, decisions):
    """Precision, recall and F1 per column of bool matrices (0 where undefined)."""
    if truth.shape[1] == 1:  # sklearn reads a single column as a binary, not multilabel, target
        scores = precision_recall_fscore_support(truth[:, 0], decisions[:, 0], average="binary", zero_division=0)
        return tuple(np.array([value]) for value in scores[:3])
    return precision_recall_fscore_support(truth, decisions, average=None, zero_division=0)[:3]


def class_metrics(teacher, student, truth=None, threshold=0.5):
    """Per-class metrics of student probabilities against teacher probabilities and truth.

    Args:
        teacher, student: ``(n, k)`` probabilities
        truth: optional ``(n, k)`` bool ground truth
        threshold: the probability at which a teacher or student says "positive"
    """
    decisions = teacher >= threshold
    precision, recall, f1 = per_class_prf(decisions, student >= threshold)
    missing = np.full(teacher.shape[1], np.nan)
    return ClassMetrics(
        teacher_ap=missing if truth is None else per_class_ap(truth, teacher),
        student_ap=missing if truth is None else per_class_ap(truth, student),
        agreement_ap=per_class_ap(decisions, student),
        precision=precision,
        recall=recall,
        f1=f1,
    )


SUBSETS = ("both_right", "student_wrong", "both_wrong", "student_right")
GROUPS = ("positives", "negatives")


def _subset_masks(teacher, student, truth, threshold):
    """``(reference, {subset: mask})`` for ``(n, k)`` or ``(n,)`` scores: the reference is the
    ground truth (the teacher's decisions without it); "right" means deciding as it does."""
    teacher_says, student_says = teacher >= threshold, student >= threshold
    reference = teacher_says if truth is None else truth.astype(bool)
    teacher_right, student_right = teacher_says == reference, student_says == reference
    return reference, {
        "both_right": teacher_right & student_right,
        "student_wrong": teacher_right & ~student_right,
        "both_wrong": ~teacher_right & ~student_right,
        "student_right": ~teacher_right & student_right,
    }


def _by_group(reference, masks, summarize):
    """``{group: {subset: summarize(subset mask within the group)}}`` for both groups."""
    return {
        group: {name: summarize(mask & members) for name, mask in masks.items()}
        for group, members in zip(GROUPS, (reference, ~reference))
    }


def agreement_counts(teacher, student, truth, threshold=0.5):
    """Sizes of the agreement subsets of every class: ``{group: {subset: (k,) counts}}``.

    Args:
        teacher, student: ``(n, k)`` probabilities
        truth: ``(n, k)`` bool ground truth, or ``None``
    """
    return _by_group(*_subset_masks(teacher, student, truth, threshold), lambda rows: rows.sum(axis=0))


def agreement_subsets(teacher, student, truth, threshold=0.5):
    """The four agreement subsets of one class, among its positives and its negatives.

    Args:
        teacher, student: ``(n,)`` probabilities of the class
        truth: ``(n,)`` bool ground truth of the class, or ``None``

    A sample is a positive when the ground truth says so (the teacher's decision when there is
    no ground truth). "Right" means deciding as the reference does. Returns
    ``{"positives": {subset: row indices}, "negatives": {...}}``; the eight sets partition
    the samples.
    """
    return _by_group(*_subset_masks(teacher, student, truth, threshold), np.flatnonzero)
