"""Concept students on arrays, in scikit-learn's shape: :class:`SparseStudents`.

Why an estimator beside :func:`fiftyone_inficond.students.registry.train_students`:

- scikit-learn's shape: hyper-parameters are stored by ``__init__`` and checked by ``fit``, so
  ``get_params``/``set_params`` and ``sklearn.base.clone`` work, and so does a script's own loop
  over ``l1`` or ``budget``; fitted values end in ``_`` (``coef_``, ``intercept_``, ...);
- usable without FiftyOne: concept vectors and teacher probabilities from any source, no
  dataset, no database, no run (this module does not import FiftyOne);
- the engine stays Lightning: ``fit`` standardizes and trains with the very functions a run
  does (:func:`fit_students`, which :func:`train_students` calls too), with the same seeds, so
  on the same rows and settings the estimator's weights are the run's, bit for bit.

Rows too many for memory go through the same entry point: an
:class:`fiftyone_inficond.students.cache.InputsCache` as ``X`` (the cache holds the teacher
probabilities and the training rows, so ``Y`` is ``None``) trains through
:func:`fiftyone_inficond.students.streaming.fit_streamed`, one batch in memory at a time.
"""

import sys

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.budget import check_budget
from fiftyone_inficond.students.training import (
    class_budgets,
    fit_to_budgets,
    initial_weights,
    standardization,
    training_config,
)
from fiftyone_inficond.students.tuning import no_bounds

THRESHOLD = 0.5  # the probability at which teacher and students say "positive" (train_students' default)
_CACHE = "fiftyone_inficond.students.cache"  # imports FiftyOne: looked up only once it is loaded


def fit_students(inputs, targets, lower, upper, config, threshold=THRESHOLD, rows=None):
    """Students fit from their seeded start as a run fits them: the start clamped into the
    bounds, each class's budget (:func:`fiftyone_inficond.students.training.class_budgets`),
    then the path down to it (:func:`fiftyone_inficond.students.training.fit_to_budgets`).

    Args:
        inputs: ``(n, d)`` standardized concept vectors
        targets: ``(n, k)`` teacher probabilities
        lower, upper: ``(k, d)`` weight bounds
        config: a :class:`fiftyone_inficond.students.training.TrainingConfig`
        threshold: the teacher's decision threshold, which ``budget="auto"`` chooses against
        rows: train on these rows only (indices; all by default)

    Returns:
        ``(weight (k, d), bias (k,), budgets (k,) or None, path)``, ``path`` as
        :func:`fiftyone_inficond.students.training.class_budgets` gives it
    """
    weight, bias = initial_weights(targets if rows is None else targets[rows], inputs.shape[1], config.seed)
    weight = np.clip(weight, lower, upper)
    budgets, path = class_budgets(inputs, targets, weight, bias, lower, upper, config, threshold, rows=rows)
    weight, bias = fit_to_budgets(inputs, targets, weight, bias, lower, upper, config, budgets, rows=rows)
    return weight, bias, budgets, path


class SparseStudents(BaseEstimator):
    """One sparse linear student per class, fit to a teacher's per-class probabilities.

    Multi-label: each class has its own student (a logistic model over the standardized
    concepts), so :meth:`predict_proba` gives one probability per class, ``(n, k)``, not
    scikit-learn's ``(n, 2)`` layout of one binary classifier.

    Args:
        budget: how many concepts each class's student may use: a number, ``"auto"`` (each
            class's chosen on a regularization path, see :mod:`fiftyone_inficond.students.budget`;
            from a cache: :data:`fiftyone_inficond.students.streaming.STREAMED_AUTO`) or ``None`` (every concept)
        epochs, l1, lr, batch_size, seed: as :class:`fiftyone_inficond.students.training.TrainingConfig`

    Attributes (after :meth:`fit`):
        coef_: ``(k, d)`` weights over the standardized concepts, exactly zero outside each
            class's budget (the weights the App shows)
        intercept_: ``(k,)`` biases
        mean_, scale_: ``(d,)`` the standardization the weights expect
        budgets_: ``(k,)`` each class's budget, or ``None`` (every concept)
        n_features_in_: ``d``, the concepts per row
    """

    def __init__(self, budget="auto", epochs=10, l1=1e-4, lr=1e-2, batch_size=None, seed=0):
        self.budget = budget
        self.epochs = epochs
        self.l1 = l1
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X, Y=None, bounds=None):
        """Fits the students and returns ``self``.

        Args:
            X: ``(n, d)`` concept vectors (standardized here, on these rows, as a run does on its
                training rows), or an :class:`fiftyone_inficond.students.cache.InputsCache`
                (its training rows, read from disk)
            Y: ``(n, k)`` teacher probabilities in [0, 1]; ``None`` with a cache, which holds them
            bounds: ``(lower, upper)``, ``(k, d)`` each, as tuning sets them
                (:func:`fiftyone_inficond.students.tuning.apply_instructions`); none by default
        """
        config = training_config(self.epochs, self.l1, self.lr, self.batch_size, self.seed, self.budget)
        if _is_cache(X):
            return self._fit_cache(X, Y, bounds, config)
        X = _matrix(X, "X", "concept vectors")
        if Y is None:
            raise InvalidRequest("Give Y, the (n, k) teacher probabilities of X's rows: fit(X, Y)")
        Y = _matrix(Y, "Y", "teacher probabilities")
        if len(Y) != len(X):
            raise InvalidRequest(f"X has {len(X)} rows but Y has {len(Y)}: give one row of teacher probabilities "
                                 f"per concept vector")
        outside = int(((Y < 0) | (Y > 1)).sum())
        if outside:
            raise InvalidRequest(f"Y holds {outside} values outside [0, 1]: give the teacher's probabilities "
                                 f"(a sigmoid of its logits)")
        check_budget(config.budget, X.shape[1])
        lower, upper = _bounds(bounds, (Y.shape[1], X.shape[1]))
        mean, scale = standardization(X)
        X -= mean  # X is this call's own float32 copy: standardized in place, as a run does
        X /= scale
        weight, bias, budgets, _ = fit_students(X, Y, lower, upper, config)
        return self._fitted(weight, bias, mean, scale, budgets)

    def _fit_cache(self, cache, Y, bounds, config):
        if Y is not None:
            raise InvalidRequest("A training cache holds its own teacher probabilities: call fit(cache) without Y")
        check_budget(config.budget, cache.n_concepts)
        lower, upper = _bounds(bounds, (cache.n_classes, cache.n_concepts))
        from fiftyone_inficond.students.streaming import fit_streamed  # a cache exists: FiftyOne is loaded

        students = fit_streamed(cache, config, lower=lower, upper=upper)
        return self._fitted(students.weight, students.bias, students.mean, students.std, students.budgets)

    def _fitted(self, weight, bias, mean, scale, budgets):
        self.coef_, self.intercept_ = weight, bias
        self.mean_, self.scale_ = mean, scale
        self.budgets_ = budgets
        self.n_features_in_ = len(mean)
        return self

    def decision_function(self, X):
        """``(n, k)`` logits of ``X``'s ``(n, d)`` concept vectors, one column per class."""
        X = self._standardized(X)
        return X @ self.coef_.T + self.intercept_

    def predict_proba(self, X):
        """``(n, k)`` probabilities, each class's own sigmoid (multi-label: not ``(n, 2)``)."""
        return expit(self.decision_function(X))

    def predict(self, X):
        """``(n, k)`` 0/1 ints: 1 where a class's probability is above 0.5."""
        return (self.predict_proba(X) > THRESHOLD).astype(int)

    def _standardized(self, X):
        if not hasattr(self, "coef_"):
            raise InvalidRequest("These students are not fitted yet: call fit(X, Y) first")
        X = _matrix(X, "X", "concept vectors")
        if X.shape[1] != self.n_features_in_:
            raise InvalidRequest(f"X has {X.shape[1]} concepts per row but the students were fit on "
                                 f"{self.n_features_in_}: give vectors of the same concepts")
        X -= self.mean_
        X /= self.scale_
        return X


def _is_cache(X):
    """Whether ``X`` is an ``InputsCache``: only once its module is loaded can one exist."""
    cache = sys.modules.get(_CACHE)
    return cache is not None and isinstance(X, cache.InputsCache)


def _matrix(values, name, what):
    """A float32 copy of ``values``, refused unless it is a finite ``(n, width)`` matrix of numbers."""
    try:
        array = np.array(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be a matrix of numbers ({what}, one row per sample); "
                             f"got {type(values).__name__}") from None
    if array.ndim != 2 or 0 in array.shape:
        raise InvalidRequest(f"{name} must be a 2-d array of {what}, one row per sample (reshape(-1, 1) for one "
                             f"column); got shape {array.shape}")
    bad = int((~np.isfinite(array).all(axis=1)).sum())
    if bad:
        raise InvalidRequest(f"{bad} rows of {name} hold NaN or infinite values (in float32): drop or fill them first")
    return array


def _bounds(bounds, shape):
    """``(lower, upper)`` float32 arrays of ``shape`` (none: :func:`no_bounds`), refused unless feasible."""
    if bounds is None:
        return no_bounds(shape)
    try:
        lower, upper = (np.array(bound, dtype=np.float32) for bound in bounds)
    except (TypeError, ValueError):
        raise InvalidRequest(f"bounds must be a pair (lower, upper) of arrays of shape {shape} "
                             f"(classes x concepts); got {type(bounds).__name__}") from None
    if lower.shape != shape or upper.shape != shape:
        raise InvalidRequest(f"bounds must be two arrays of shape {shape} (classes x concepts); got {lower.shape} "
                             f"and {upper.shape}")
    if np.isnan(lower).any() or np.isnan(upper).any():
        raise InvalidRequest("bounds hold NaN: use -inf (lower) or inf (upper) where a weight has no bound")
    crossed = int((lower > upper).sum())
    if crossed:
        raise InvalidRequest(f"{crossed} weights have a lower bound above their upper bound: give lower <= upper")
    return lower, upper
