"""What-if curves: a class's metrics as one concept's weight varies, without retraining."""

import numpy as np
from scipy.special import logit


def what_if(logits, inputs, weight, concepts, teacher_says, values, threshold=0.5, chunk=16384):
    """Accuracy, F1, recall and precision against the teacher's decisions per weight value.

    Args:
        logits: ``(n,)`` cached student logits of the class
        inputs: ``(n, n_concepts)`` standardized concept vectors
        weight: ``(n_concepts,)`` the class's current weights
        concepts: concept indices to vary (one curve each)
        teacher_says: ``(n,)`` bool teacher decisions for the class
        values: ``(m,)`` weight values to try, or ``(len(concepts), m)`` one row per concept
        threshold: the probability at which the student says "positive"
        chunk: samples per step

    Returns:
        a dict of ``(len(concepts), m)`` arrays: ``accuracy``, ``f1``, ``recall``,
        ``precision``
    """
    concepts = np.asarray(concepts)
    values = np.broadcast_to(np.asarray(values, dtype=np.float32), (len(concepts), np.shape(values)[-1]))
    delta = values - weight[concepts][:, None]  # (c, m)
    tp, fp, fn, tn = (np.zeros(values.shape, dtype=np.int64) for _ in range(4))
    for start in range(0, len(logits), chunk):  # samples in chunks: memory bounded by c x m x chunk
        part = slice(start, start + chunk)
        # (c, m, chunk): each sample's logit with one concept's weight replaced
        shifted = logits[None, None, part] + delta[..., None] * inputs[part, concepts].T[:, None, :]
        says = shifted >= logit(threshold)
        truth = teacher_says[None, None, part]
        tp += (says & truth).sum(-1)
        fp += (says & ~truth).sum(-1)
        fn += (~says & truth).sum(-1)
        tn += (~says & ~truth).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"accuracy": (tp + tn) / len(logits), "f1": f1, "recall": recall, "precision": precision}


def weight_range(weight_row, concept, n_values=41, span=3.0):
    """Weight values centred on the current one, ``span`` times the class's largest |weight| wide."""
    scale = max(float(np.abs(weight_row).max()), 1e-3)
    centre = float(weight_row[concept])
    return np.linspace(centre - span * scale, centre + span * scale, n_values)
