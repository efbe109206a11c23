"""Students trained in memory bounded by one mini-batch, not by the dataset.

The in-memory path (:mod:`fiftyone_inficond.students.training`) trains from one float32 matrix:
100,000 samples x 1,153 concepts is 0.46 GB, and it grows with the dataset. This path trains from
a disk cache (:mod:`fiftyone_inficond.students.cache`) and never holds more than a batch of rows:

1. :func:`standardization` computes the per-concept mean and standard deviation of the training
   rows chunk by chunk (float64, Chan's pairwise combination), as the in-memory path does at once.
2. :func:`fit_streamed` trains exactly as :func:`fiftyone_inficond.students.training.fit` does
   (the same seeded permutation of the training rows every epoch, the same batches, the same
   module), each batch read from disk and standardized on the fly
   (:class:`fiftyone_inficond.students.cache.DiskBatches`). With a float32 cache and the same
   mean and std its weights are the in-memory ones.
3. :func:`streamed_agreement` aggregates student-vs-teacher counts per class batch by batch, and
   :func:`streamed_agreement_ap` the agreement AP over binned thresholds (constant memory).
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from fiftyone_inficond.students.budget import AUTO, check_budget
from fiftyone_inficond.students.cache import CachedInputs
from fiftyone_inficond.students.training import (
    CHUNK_ROWS,
    TrainingConfig,
    chunked_standardization,
    descend,
    fit_batches,
    initial_weights,
    start_bias,
)
from fiftyone_inficond.students.tuning import no_bounds

STREAMED_AUTO = 24  # concepts per student for budget="auto": a path's typical choice on Broden worlds is fewer


def standardization(cache, rows=None):
    """Per-concept mean and standard deviation (at least 1e-6) of ``rows`` (the training rows by
    default), chunk by chunk off the disk: float32 results as
    :func:`fiftyone_inficond.students.training.standardization`."""
    rows = np.flatnonzero(cache.train) if rows is None else rows
    return chunked_standardization((chunk for _, chunk in cache.chunks("concepts", rows)), cache.n_concepts)


@dataclass
class StreamedStudents:
    """Students trained by :func:`fit_streamed`: ``weight (k, n_concepts)``, ``bias (k,)``, the
    standardization ``mean``, ``std`` they expect and each class's ``budgets`` (``(k,)`` ints, or
    ``None``: every concept)."""

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    budgets: np.ndarray = None


def base_rates(cache, rows):
    """``(k,)`` mean teacher probability of ``rows``, chunk by chunk."""
    total = np.zeros(cache.n_classes)
    for _, chunk in cache.chunks("teacher", rows):
        total += chunk.sum(axis=0, dtype=np.float64)
    return (total / len(rows)).astype(np.float32)


def fit_streamed(cache, config=None, weight=None, bias=None, lower=None, upper=None, mean=None, std=None):
    """Trains students on the training rows of ``cache`` in memory bounded by one batch.

    Each student uses at most ``config.budget`` concepts, reached along the same path as in
    memory (:func:`fiftyone_inficond.students.training.fit_to_budgets`); ``"auto"`` is
    :data:`STREAMED_AUTO` here (choosing on a path needs its held-out rows in memory).

    Starts, like :func:`fiftyone_inficond.students.registry.train_students`, from
    :func:`fiftyone_inficond.students.training.initial_weights` unless ``weight`` and ``bias``
    are given; ``lower``/``upper`` bound the weights (none by default); ``mean``/``std`` default
    to :func:`standardization` of the training rows.

    Returns:
        a :class:`StreamedStudents`
    """
    config = config or TrainingConfig()
    rows = np.flatnonzero(cache.train)
    if mean is None or std is None:
        mean, std = standardization(cache, rows)
    if weight is None or bias is None:
        start_weight, _ = initial_weights(np.zeros((1, cache.n_classes)), cache.n_concepts, config.seed)
        weight = start_weight if weight is None else weight
        bias = start_bias(base_rates(cache, rows)) if bias is None else bias
    if lower is None or upper is None:
        lower, upper = no_bounds(np.shape(weight))
    budget = STREAMED_AUTO if config.budget == AUTO else check_budget(config.budget, cache.n_concepts)
    budgets = None if budget is None else np.full(len(bias), min(budget, cache.n_concepts))

    inputs = CachedInputs(cache, mean, std)

    def fit_once(weight, bias, config, budgets):  # each fit its own batches: the same permutations as in memory
        batches = inputs.batches(None, config.batch_size_for(len(rows)), config.seed, rows)
        return fit_batches(batches, weight, bias, lower, upper, config, budgets)

    weight, bias = descend(fit_once, np.clip(weight, lower, upper), bias, config, budgets)
    return StreamedStudents(weight, bias, mean, std, budgets)


def _student_logits(cache, students, rows, batch_rows):
    """``(student logits (m, k), teacher probabilities (m, k))`` of ``rows`` (all by default), chunk by chunk."""
    for index, concepts in cache.chunks("concepts", rows, batch_rows):
        logits = ((concepts - students.mean) / students.std) @ students.weight.T + students.bias
        yield logits, cache.rows("teacher", index)


def streamed_agreement(cache, students, threshold=0.5, rows=None, batch_rows=CHUNK_ROWS):
    """Teacher-vs-student confusion counts per class, aggregated batch by batch.

    Returns:
        ``{"tp", "fp", "fn", "tn": (k,) int64}`` with the teacher's decisions as truth
    """
    counts = {name: np.zeros(cache.n_classes, np.int64) for name in ("tp", "fp", "fn", "tn")}
    cut = logit(threshold)
    for logits, teacher in _student_logits(cache, students, rows, batch_rows):
        student, teacher = logits >= cut, teacher >= threshold
        counts["tp"] += (student & teacher).sum(axis=0)
        counts["fp"] += (student & ~teacher).sum(axis=0)
        counts["fn"] += (~student & teacher).sum(axis=0)
        counts["tn"] += (~student & ~teacher).sum(axis=0)
    return counts


def streamed_agreement_ap(cache, students, threshold=0.5, rows=None, bins=1001, batch_rows=CHUNK_ROWS):
    """Per class, the average precision of the student's probabilities against the teacher's
    decisions (the panels' agreement AP), aggregated batch by batch.

    Probabilities are counted into ``bins`` equal bins per class, the teacher's positives and
    negatives apart, so memory is ``2 x k x bins`` counts whatever the number of rows; the AP is
    sklearn's over the bins' lower edges (tested within 0.01 of the exact one at 1001 bins).
    (torchmetrics' binned AP does the same, but under the deterministic algorithms Lightning
    turns on it counts through a ``rows x k x bins`` matrix: 51 GB for a batch of 64.)

    Returns:
        ``(k,)`` float64, NaN for classes the teacher never calls positive (as the panels show them)
    """
    k = cache.n_classes
    counts = {True: np.zeros(k * bins, np.int64), False: np.zeros(k * bins, np.int64)}
    offsets = np.arange(k) * bins
    for logits, teacher in _student_logits(cache, students, rows, batch_rows):
        cells = np.minimum((expit(logits) * (bins - 1)).astype(np.int64), bins - 1) + offsets
        decisions = teacher >= threshold
        counts[True] += np.bincount(cells[decisions], minlength=k * bins)
        counts[False] += np.bincount(cells[~decisions], minlength=k * bins)
    return binned_average_precision(counts[True].reshape(k, bins), counts[False].reshape(k, bins))


def binned_average_precision(positives, negatives):
    """Average precision per row from score histograms.

    Args:
        positives, negatives: ``(k, bins)`` counts of positive and negative samples whose score
            falls in each bin, lowest scores first

    Returns:
        ``(k,)``: sum over thresholds (each bin's lower edge, highest first) of the recall gained
        times the precision there, as sklearn's ``average_precision_score``; NaN without positives
    """
    tp = np.cumsum(positives[:, ::-1], axis=1)[:, ::-1]  # at bin i's edge: positives scoring in bins >= i
    fp = np.cumsum(negatives[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / tp[:, :1]
        precision = tp / np.maximum(tp + fp, 1)
    gained = recall - np.concatenate([recall[:, 1:], np.zeros((len(recall), 1))], axis=1)
    return (gained * precision).sum(axis=1)
