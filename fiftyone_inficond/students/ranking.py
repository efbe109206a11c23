"""Which concepts matter for a class: by weight, and by where the student fails."""

import numpy as np

from fiftyone_inficond.errors import InvalidRequest


def top_by_weight(weight, column, n=10, sign="positive"):
    """The ``n`` concepts with the largest (``"positive"``), smallest (``"negative"``) or
    largest absolute (``"absolute"``) weight in a class's student, as ``(indices, weights)``."""
    row = weight[column]
    keys = {"positive": -row, "negative": row, "absolute": -np.abs(row)}
    if sign not in keys:
        raise InvalidRequest(f"Rank weights by sign 'positive', 'negative' or 'absolute'; got {sign!r}")
    order = np.argsort(keys[sign], kind="stable")[:n]
    return order, row[order]


def presence_discrepancy(concepts, teacher_says, student_says):
    """Per concept, mean presence in misaligned minus aligned samples, among the teacher's
    positives and among its negatives.

    Args:
        concepts: ``(n, n_concepts)`` concept vectors
        teacher_says, student_says: ``(n,)`` bool decisions for one class

    Returns:
        ``{"positives": array, "negatives": array}`` of length ``n_concepts`` (NaN where a
        group is empty):
        large absolute values mark concepts whose presence separates the samples the student
        gets wrong from those it gets right.
    """
    aligned = teacher_says == student_says
    masks = {}
    for group, members in (("positives", teacher_says), ("negatives", ~teacher_says)):
        masks[group, "right"], masks[group, "wrong"] = members & aligned, members & ~aligned
    means = _masked_means(concepts, masks)
    result = {}
    for group in ("positives", "negatives"):
        if masks[group, "right"].any() and masks[group, "wrong"].any():
            result[group] = (means[group, "wrong"] - means[group, "right"]).astype(concepts.dtype)
        else:
            result[group] = np.full(concepts.shape[1], np.nan)
    return result


def _masked_means(concepts, masks, chunk=8192):
    """Per concept, the mean over the rows of each bool mask: one pass over the matrix in chunks,
    one matrix product per chunk (summed in float64 across chunks), no copy of the selected rows."""
    names = list(masks)
    selectors = np.stack([masks[name] for name in names]).astype(np.float32)  # (m, n)
    sums = np.zeros((len(names), concepts.shape[1]))
    for start in range(0, len(concepts), chunk):
        part = np.asarray(concepts[start : start + chunk], dtype=np.float32)
        sums += selectors[:, start : start + chunk] @ part  # float32 within a chunk, float64 across
    counts = np.maximum(selectors.sum(axis=1), 1)
    return {name: sums[i] / counts[i] for i, name in enumerate(names)}


def top_by_discrepancy(discrepancy, n=10):
    """The ``n`` concepts with the largest absolute discrepancy, as ``(indices, values)``."""
    if np.isnan(discrepancy).all():
        return np.array([], dtype=int), np.array([])
    order = np.argsort(-np.abs(np.nan_to_num(discrepancy)), kind="stable")[:n]
    return order, discrepancy[order]
