"""Worst-group measures: how a student and its teacher do on the four groups that a class and a
concept define (class present or absent in the ground truth × concept present or absent in the
image), the measure of a shortcut's harm (worst-group accuracy, Sagawa et al. 2020; CBDebug, ICLR
2026). A teacher that learnt "car ↔ cloud" is right on cars with clouds and wrong on cars without:
its mean AP hides it, the group of cloudless cars shows it.

A concept's value is a similarity (the max cosine over an image's segments, negatives 0), not a
yes/no: it is called present above the threshold that best splits its values in two (Otsu's, on the
samples measured), so that a rare concept is not cut at its median.

Pure array functions: vectors in, JSON-safe dicts out.
"""

import numpy as np

GROUPS = ((True, True), (True, False), (False, True), (False, False))  # (class present, concept present)


def presence_threshold(values, bins=64):
    """The value from which ``values`` (``(n,)``) are high: the cut between the two groups with the
    largest between-group variance over ``bins`` candidate cuts (Otsu); above them all when they are
    all equal (nothing is present)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return float(np.nextafter(high, np.inf))
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)[:-1]
    weight_high = len(values) - weight_low
    mass = np.cumsum(counts * centres)[:-1]
    valid = (weight_low > 0) & (weight_high > 0)
    mean_low = np.divide(mass, weight_low, out=np.zeros_like(mass), where=valid)
    mean_high = np.divide(mass[-1] + counts[-1] * centres[-1] - mass, weight_high, out=np.zeros_like(mass),
                          where=valid)
    between = np.where(valid, weight_low * weight_high * (mean_low - mean_high) ** 2, -1.0)
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # every cut in an empty gap splits alike:
    return float(edges[1:-1][best[len(best) // 2]])  # the one in its middle


def group_accuracies(truth, teacher, student, present):
    """Each of the four groups' size and the share of it teacher and student decide right.

    Args:
        truth: ``(n,)`` bool, the class in the ground truth
        teacher, student: ``(n,)`` bool, each one's decision that the class is there
        present: ``(n,)`` bool, the concept present

    Returns:
        ``[{"class": bool, "concept": bool, "samples": int, "teacher": float | None, "student": ...}]``
        in :data:`GROUPS` order (``None``: an empty group)
    """
    truth, teacher, student, present = (np.asarray(a, dtype=bool) for a in (truth, teacher, student, present))
    rows = []
    for has_class, has_concept in GROUPS:
        members = (truth == has_class) & (present == has_concept)
        n = int(members.sum())
        rows.append({
            "class": has_class, "concept": has_concept, "samples": n,
            "teacher": float((teacher[members] == has_class).mean()) if n else None,
            "student": float((student[members] == has_class).mean()) if n else None,
        })
    return rows


def worst(rows, who):
    """The lowest accuracy of ``who`` (``"teacher"``/``"student"``) over the non-empty groups."""
    shares = [row[who] for row in rows if row[who] is not None]
    return min(shares) if shares else None


def balanced_rows(rows, truth, present, seed=0):
    """Training ``rows`` (``(m,)`` indices, ``truth`` and ``present`` ``(m,)`` bool beside them)
    resampled so that the four groups weigh alike: each non-empty group drawn, with replacement, up
    to the size of the largest. A retraining on them no longer learns that the class comes with the
    concept from the groups where it mostly did (CBDebug's reweighting, by resampling)."""
    rows, truth, present = np.asarray(rows), np.asarray(truth, dtype=bool), np.asarray(present, dtype=bool)
    groups = [rows[(truth == has_class) & (present == has_concept)] for has_class, has_concept in GROUPS]
    size = max(len(group) for group in groups)
    rng = np.random.default_rng(seed)
    return np.concatenate([group if len(group) == size else rng.choice(group, size)
                           for group in groups if len(group)])
