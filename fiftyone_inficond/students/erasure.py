"""Concept erasure for tuning: a class retrained on concept vectors from which its 👎'd concepts
are linearly unpredictable, so that what a 👎 took away cannot come back through correlates.

Why: over Broden's 1,153 concepts a 👎 on "cloud" left the bicycle student free to find cloud
again in "white", "snow" and many weaker correlates; bounds on the named concepts cannot stop
that, and neither can bounding a list of correlates (cloud is rebuilt from many small ones).
Erasure removes, from every concept, the part that the erased ones explain linearly on the
training rows; whatever a student of the erased vectors learns is, by construction, uncorrelated
with them (LEACE's guarantee: no linear function of them predicts an erased concept better than
a constant).

Which eraser: the residual of each concept on the erased ones,
``x' = x - (z - mean(z)) Σ_zz⁺ Σ_zx`` (``z = x[:, columns]``), not LEACE's whitened projection.
Both leave ``Cov(x', z) = 0``; this one changes each concept only by a multiple of the erased
ones, so a student over ``x'`` folds back (:func:`fold`) into one over ``x`` that uses the same
concepts plus the erased ones: the student stays sparse and readable. LEACE's projection mixes
every concept into every other, and the folded student would use all of them.

What the user then sees: an erased concept's weight is minus its share in the concepts the
student uses ("cloud −0.12": what white and snow say of cloud is taken back out), so it may be
negative where the 👎 alone would have held it at 0.

Pure array functions and one row source; shapes: ``n`` rows, ``d`` concepts, ``m`` erased
concepts, ``k`` classes.
"""

from dataclasses import dataclass

import numpy as np

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.training import CHUNK_ROWS, fit


@dataclass(frozen=True)
class Eraser:
    """``x - (x[:, columns] - mean) @ coef``: ``columns`` ``(m,)`` erased concepts, ``mean``
    ``(m,)`` their mean and ``coef`` ``(m, d)`` each concept's regression on them (training rows)."""

    columns: np.ndarray
    mean: np.ndarray
    coef: np.ndarray

    def __call__(self, x):
        """``(b, d)`` vectors with the erased concepts' linear share taken out, float32."""
        x = np.asarray(x, np.float32)
        erased = x - (x[:, self.columns] - self.mean) @ self.coef
        erased[:, self.columns] = self.mean  # what they are in exact arithmetic, without float32's rounding of z - z
        return erased


def fit_eraser(inputs, columns, rows):
    """The :class:`Eraser` of ``columns`` fit on ``inputs[rows]`` (``(n, d)``: an array or a row
    source indexed like one), :data:`CHUNK_ROWS` rows at a time, moments in float64."""
    columns, rows = np.asarray(columns), np.asarray(rows)
    d = inputs.shape[1]
    if len(columns) >= d:
        raise InvalidRequest(f"Every one of the {d} concepts would be erased, which leaves the student nothing "
                             f"to learn from: 👎 fewer concepts")
    total_z, total_x = np.zeros(len(columns)), np.zeros(d)
    zz, zx = np.zeros((len(columns), len(columns))), np.zeros((len(columns), d))
    for start in range(0, len(rows), CHUNK_ROWS):
        x = np.asarray(inputs[rows[start : start + CHUNK_ROWS]], np.float64)
        z = x[:, columns]
        total_z += z.sum(axis=0)
        total_x += x.sum(axis=0)
        zz += z.T @ z
        zx += z.T @ x
    mean_z, mean_x = total_z / len(rows), total_x / len(rows)
    cov_zz = zz / len(rows) - np.outer(mean_z, mean_z)
    cov_zx = zx / len(rows) - np.outer(mean_z, mean_x)
    coef = np.linalg.pinv(cov_zz, hermitian=True) @ cov_zx
    return Eraser(columns, mean_z.astype(np.float32), coef.astype(np.float32))


def fold(weight, bias, eraser):
    """Students over erased vectors as the same functions of the vectors themselves.

    Args:
        weight: ``(k, d)`` weights over ``eraser(x)``
        bias: ``(k,)``

    Returns:
        ``(weight, bias)`` over ``x``: the same concepts' weights, the erased ones' less their
        share ``weight @ coef.T`` ``(k, m)``, and the bias that keeps every logit
    """
    share = weight @ eraser.coef.T
    folded = np.array(weight, np.float32)
    folded[:, eraser.columns] -= share
    return folded, (bias + share @ eraser.mean).astype(np.float32)


class ErasedInputs:
    """A row source (as :func:`fiftyone_inficond.students.training.fit` reads one): ``inputs``
    with ``eraser`` applied to the rows asked for, never to the whole matrix."""

    def __init__(self, inputs, eraser):
        self.inputs, self.eraser = inputs, eraser
        self.shape = inputs.shape

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        return self.eraser(self.inputs[rows])

    def batches(self, targets, batch_size, seed, rows=None):
        """The batches of :class:`fiftyone_inficond.students.cache.DiskBatches`, erased."""
        from fiftyone_inficond.students.cache import DiskBatches  # its module loads FiftyOne: only when training

        return DiskBatches(self, targets, np.arange(len(self)) if rows is None else rows, batch_size, seed)


def erased_columns(upper):
    """``(m,)`` the concepts a class's bounds say were 👎'd (those with a finite upper bound;
    ``upper``: ``(d,)``, see :mod:`fiftyone_inficond.students.tuning`)."""
    return np.flatnonzero(np.isfinite(upper))


def fit_tuned(inputs, targets, weight, bias, lower, upper, config, rows=None, budgets=None, erase=False):
    """:func:`fiftyone_inficond.students.training.fit` for tuned classes; with ``erase``, each class
    that has 👎'd concepts (:func:`erased_columns`) is retrained on the vectors with them erased,
    then folded back (:func:`fold`).

    Arguments as ``fit``'s (``inputs`` an array or a row source). During an erased fit the erased
    concepts are held at 0 (erased, they are constant) and take their share of the budget, so the
    folded student uses at most its budget where that exceeds the erased concepts.

    Returns:
        ``(weight, bias, lower, upper)``: the erased concepts' bounds widened to hold their folded
        weights (still finite, so they stay 👎'd)
    """
    weight, bias = np.array(weight, np.float32), np.array(bias, np.float32)
    lower, upper = np.array(lower, np.float32), np.array(upper, np.float32)
    if not erase:
        return (*fit(inputs, targets, weight, bias, lower, upper, config, rows=rows, budgets=budgets), lower, upper)
    rows = np.arange(len(inputs)) if rows is None else np.asarray(rows)
    targets = np.asarray(targets)
    for j in range(len(weight)):
        columns = erased_columns(upper[j])
        eraser = fit_eraser(inputs, columns, rows) if len(columns) else None
        low, up = lower[[j]], upper[[j]]
        low[:, columns] = up[:, columns] = 0.0
        budget = None if budgets is None else np.array([max(1, int(budgets[j]) - len(columns))])
        trained = fit(inputs if eraser is None else ErasedInputs(inputs, eraser), targets[:, [j]],
                      np.clip(weight[[j]], low, up), bias[[j]], low, up, config, rows=rows, budgets=budget)
        (weight[j],), (bias[j],) = trained if eraser is None else fold(*trained, eraser)
        lower[j, columns] = np.minimum(lower[j, columns], weight[j, columns])
        upper[j, columns] = np.maximum(upper[j, columns], weight[j, columns])
    return weight, bias, lower, upper
