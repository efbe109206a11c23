"""How many concepts each student may use: its *budget* (the number of effective concepts).

A budget is what a domain expert can ask for ("at most 10 concepts per class") and what makes
a student readable: the few concepts it uses explain it whole. Left to the data (``"auto"``),
each class's budget is chosen on a regularization path: students are fit at decreasing budgets
(:data:`PATH`, each warm-started from the last) on most of the training rows, and each class
takes the smallest budget whose agreement AP with the teacher, on the training rows held out
of that fit, is within :data:`TOLERANCE` of its best on the path. The run's own validation
split is never used to choose, so the metrics it shows stay honest.

Pure array functions: ``(k, p)`` matrices of path metrics in, ``(k,)`` budgets out.
"""

import numbers

import numpy as np

from fiftyone_inficond.errors import InvalidRequest

AUTO = "auto"
PATH = (64, 48, 32, 24, 16, 12, 8, 4)  # budgets tried, largest first
TOLERANCE = 0.005  # agreement AP a smaller budget may lose to the best on the path
HOLDOUT_FRACTION = 0.2  # of the training rows, held out of the path's fits to choose on
PATH_EPOCHS = 3  # epochs per path point after the first (warm-started from the one before)


def check_budget(budget, n_concepts=None):
    """``budget`` if it is ``"auto"``, ``None`` (every concept) or a whole number from 1 to
    ``n_concepts``; otherwise the library's message saying what to give."""
    if budget is None or budget == AUTO:
        return budget
    limit = "" if n_concepts is None else f" and at most {n_concepts}, the number of concepts"
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 1 or (
        n_concepts is not None and budget > n_concepts
    ):
        raise InvalidRequest(
            f"The concept budget is how many concepts each class's student may use: a whole number of at "
            f"least 1{limit}, 'auto' to choose it from the data, or None for all; got {budget!r}"
        )
    return int(budget)


def path_points(n_concepts):
    """The budgets a path tries for ``n_concepts`` concepts, largest first: :data:`PATH`'s
    below ``n_concepts``, after ``n_concepts`` itself where that is fewer than :data:`PATH`'s first."""
    below = [b for b in PATH if b < n_concepts]
    return ([n_concepts] if n_concepts < PATH[0] else []) + below or [n_concepts]


def pick_budgets(points, agreement_ap, tolerance=TOLERANCE):
    """Each class's smallest budget within ``tolerance`` of its best agreement AP on the path.

    Args:
        points: ``(p,)`` budgets, largest first
        agreement_ap: ``(k, p)`` agreement AP of each class at each budget (NaN where the
            held-out rows have no teacher positive or no negative: such a class takes the
            smallest budget, since nothing shows it needs more)

    Returns:
        ``(k,)`` int budgets
    """
    points, agreement_ap = np.asarray(points), np.asarray(agreement_ap, dtype=float)
    best = np.nanmax(np.where(np.isnan(agreement_ap), -np.inf, agreement_ap), axis=1, keepdims=True)
    good = agreement_ap >= best - tolerance
    smallest = np.where(good, points[None, :], np.iinfo(np.int64).max).min(axis=1)
    return np.where(np.isfinite(best[:, 0]), smallest, points.min()).astype(np.int64)


def holdout_rows(rows, seed):
    """``(fit_rows, held_rows)``: a seeded :data:`HOLDOUT_FRACTION` of ``rows`` held out of the path's fits."""
    rows = np.asarray(rows)
    order = np.random.default_rng(seed).permutation(len(rows))
    held = max(1, int(round(HOLDOUT_FRACTION * len(rows))))
    return np.sort(rows[order[held:]]), np.sort(rows[order[:held]])


def usage(weight):
    """``(k,)`` how many concepts each student uses: its nonzero weights."""
    return (np.asarray(weight) != 0).sum(axis=1)
