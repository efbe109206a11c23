"""The students estimator in scikit-learn's shape (issue 27): clone and get_params as sklearn's, exact zeros
outside each budget, bounds kept, probabilities that are the sigmoid of its own weights, a run's very
weights on the same rows, the streamed path through the same entry point, and bad input refused first."""

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone

from fiftyone_inficond import InvalidRequest, SparseStudents, train_students
from fiftyone_inficond.students import estimator
from fiftyone_inficond.students.budget import path_points, usage
from fiftyone_inficond.students.cache import write_cache
from fiftyone_inficond.students.tuning import no_bounds

N, D, K = 400, 60, 3


def problem(seed=0):
    """``(400, 60)`` raw concept vectors and ``(400, 3)`` teacher probabilities that depend on 4 concepts each."""
    rng = np.random.default_rng(seed)
    concepts = (0.2 + 0.05 * rng.normal(size=(N, D))).astype(np.float32)
    standardized = (concepts - concepts.mean(0)) / concepts.std(0)
    truth = np.zeros((K, D))
    for j in range(K):
        truth[j, rng.choice(D, 4, replace=False)] = rng.choice([-2.0, 2.0], 4)
    return concepts, expit(standardized @ truth.T).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    X, Y = problem()
    return X, Y, SparseStudents(budget=5, epochs=3).fit(X, Y)


def test_a_clone_is_an_unfitted_copy_with_the_same_params(fitted):
    *_, students = fitted
    students_params = students.get_params()
    copy = clone(students)
    assert copy.get_params() == students_params == dict(budget=5, epochs=3, l1=1e-4, lr=1e-2, batch_size=None, seed=0)
    assert not hasattr(copy, "coef_")
    assert copy.set_params(l1=0.0).get_params()["l1"] == 0.0 and students.l1 == 1e-4


def test_fit_returns_the_estimator_and_no_weight_outside_a_budget_is_nonzero(fitted):
    X, Y, students = fitted
    assert students.coef_.shape == (K, D) and students.intercept_.shape == (K,) and students.n_features_in_ == D
    assert students.budgets_.tolist() == [5, 5, 5] and usage(students.coef_).tolist() == [5, 5, 5]
    chosen = SparseStudents(epochs=2)  # budget="auto": chosen per class on the path
    assert chosen.fit(X, Y) is chosen
    assert set(chosen.budgets_.tolist()) <= set(path_points(D))
    assert (usage(chosen.coef_) <= chosen.budgets_).all()


def test_the_bounds_hold_after_a_fit():
    X, Y = problem()
    lower, upper = no_bounds((K, D))
    lower[0, 10], upper[1, 20], upper[2, :30] = 0.5, -0.4, 0.0  # two that must be used, thirty capped at 0
    students = SparseStudents(budget=4, epochs=3).fit(X, Y, bounds=(lower, upper))
    assert (students.coef_ >= lower).all() and (students.coef_ <= upper).all()
    assert students.coef_[0, 10] >= 0.5 and students.coef_[1, 20] <= -0.4
    assert usage(students.coef_).tolist() == [4, 4, 4]


def test_the_probabilities_are_the_sigmoid_of_the_standardized_concepts_weighed(fitted):
    X, Y, students = fitted
    assert np.allclose(students.mean_, X.mean(0), atol=1e-6) and np.allclose(students.scale_, X.std(0), rtol=1e-4)
    standardized = (X - students.mean_) / students.scale_
    logits = standardized @ students.coef_.T + students.intercept_
    assert np.array_equal(students.decision_function(X), logits)
    assert np.array_equal(students.predict_proba(X), expit(logits))
    assert np.array_equal(students.predict(X), (expit(logits) > 0.5).astype(int))
    assert np.corrcoef(students.predict_proba(X).ravel(), Y.ravel())[0, 1] > 0.9


def test_the_estimator_s_weights_are_a_run_s_on_the_same_rows_and_settings(distilled):
    distilled.take(96, seed=0).tag_samples("train")
    # the arrays name no class: the run keeps every concept, as the estimator does
    run = train_students(distilled, key="s", train_tag="train", budget=8, epochs=2, keep_class_concepts=True)
    ids, concepts, teacher, tags = distilled.values(["id", "concepts", "teacher", "tags"])
    row = {sample_id: i for i, sample_id in enumerate(ids)}
    order = [row[sample_id] for sample_id in run.ids]  # the run's row order, its training rows only
    train = [i for i in order if "train" in tags[i]]
    assert len(train) == 96 and np.array_equal(np.array(["train" in tags[i] for i in order]), run.data.train)
    X = np.stack([concepts[i] for i in train]).astype(np.float32)
    Y = np.stack([teacher[i] for i in train]).astype(np.float32)

    students = SparseStudents(budget=8, epochs=2).fit(X, Y)

    assert np.array_equal(students.coef_, run.weight) and np.array_equal(students.intercept_, run.bias)
    assert students.budgets_.tolist() == run.config["class_budgets"]
    assert students.mean_.tolist() == run.config["concept_mean"] and students.scale_.tolist() == run.config[
        "concept_std"]


def test_a_training_cache_trains_through_the_same_entry_point(tmp_path):
    X, Y = problem()
    train = np.arange(N) % 4 != 0
    cache = write_cache(str(tmp_path / "cache"), [([f"{i:024d}" for i in range(N)], X, Y, train)], dtype="float32")
    in_memory = SparseStudents(budget=5, epochs=2).fit(X[train], Y[train])

    streamed = SparseStudents(budget=5, epochs=2).fit(cache)

    assert streamed.budgets_.tolist() == [5, 5, 5] and usage(streamed.coef_).tolist() == [5, 5, 5]
    assert np.array_equal(streamed.mean_, in_memory.mean_) and np.array_equal(streamed.scale_, in_memory.scale_)
    # The same concepts, weights within 0.02: fit_streamed starts from base rates summed in float64, a run in float32.
    assert np.array_equal(streamed.coef_ != 0, in_memory.coef_ != 0)
    assert np.allclose(streamed.coef_, in_memory.coef_, atol=0.02)
    assert (streamed.predict(X) == in_memory.predict(X)).mean() > 0.99
    fitted = streamed.coef_.copy()
    with pytest.raises(InvalidRequest) as refused:
        streamed.fit(cache, Y)
    assert str(refused.value) == (
        "A training cache holds its own teacher probabilities: call fit(cache) without Y"
    )
    assert np.array_equal(streamed.coef_, fitted)  # the refusal kept the fitted students


X_, Y_ = problem()
_with_nan = X_.copy()
_with_nan[3, 7] = np.nan
_infinite = Y_.copy()
_infinite[0, 0] = np.inf
_bounds = no_bounds((K, D))
_crossed = (np.full((K, D), 1.0, np.float32), np.zeros((K, D), np.float32))
BAD_FITS = {
    "rows that disagree": ((X_, Y_[:-1]), {}, "X has 400 rows but Y has 399: give one row of teacher probabilities "
                                              "per concept vector"),
    "NaN in X": ((_with_nan, Y_), {}, "1 rows of X hold NaN or infinite values (in float32): drop or fill them first"),
    "inf in Y": ((X_, _infinite), {}, "1 rows of Y hold NaN or infinite values (in float32): drop or fill them first"),
    "Y outside [0, 1]": ((X_, Y_ * 2 - 0.5), {}, f"Y holds {int(((Y_ * 2 - 0.5 < 0) | (Y_ * 2 - 0.5 > 1)).sum())} "
                                                 f"values outside [0, 1]: give the teacher's probabilities (a sigmoid "
                                                 f"of its logits)"),
    "no Y": ((X_,), {}, "Give Y, the (n, k) teacher probabilities of X's rows: fit(X, Y)"),
    "a vector for X": ((X_[:, 0], Y_), {}, "X must be a 2-d array of concept vectors, one row per sample "
                                           "(reshape(-1, 1) for one column); got shape (400,)"),
    "text for X": (("concepts", Y_), {}, "X must be a matrix of numbers (concept vectors, one row per sample); "
                                         "got str"),
    "bounds of the wrong shape": ((X_, Y_), dict(bounds=(_bounds[0][:, :10], _bounds[1])),
                                  "bounds must be two arrays of shape (3, 60) (classes x concepts); got (3, 10) "
                                  "and (3, 60)"),
    "crossed bounds": ((X_, Y_), dict(bounds=_crossed), "180 weights have a lower bound above their upper bound: "
                                                        "give lower <= upper"),
    "one array for bounds": ((X_, Y_), dict(bounds=_bounds[0]), "bounds must be a pair (lower, upper) of arrays of "
                                                                 "shape (3, 60) (classes x concepts); got ndarray"),
}


@pytest.mark.parametrize("args, kwargs, message", BAD_FITS.values(), ids=BAD_FITS.keys())
def test_a_bad_fit_is_refused_before_any_work_and_keeps_the_fitted_students(fitted, monkeypatch, args, kwargs,
                                                                             message):
    *_, students = fitted
    before = students.coef_.copy()
    inputs = [np.copy(a) if isinstance(a, np.ndarray) else a for a in args]
    monkeypatch.setattr(estimator, "standardization", lambda *a: pytest.fail("standardized before refusing"))
    with pytest.raises(InvalidRequest) as refused:
        students.fit(*args, **kwargs)
    assert str(refused.value) == message
    assert np.array_equal(students.coef_, before)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(args, inputs) if isinstance(a, np.ndarray))


@pytest.mark.parametrize("params, message", [
    (dict(budget=61), "The concept budget is how many concepts each class's student may use: a whole number of at "
                      "least 1 and at most 60, the number of concepts, 'auto' to choose it from the data, or None "
                      "for all; got 61"),
    (dict(epochs=0), "Epochs must be a whole number from 1 to 1,000; got 0"),
    (dict(lr=0.0), "The learning rate must be a number in (0, 10]; got 0.0"),
], ids=["a budget above the concepts", "no epochs", "no learning rate"])
def test_hyper_parameters_are_checked_by_fit_as_training_checks_them(monkeypatch, params, message):
    students = SparseStudents(**params)  # stored as given: sklearn's shape
    assert students.get_params()[next(iter(params))] == next(iter(params.values()))
    monkeypatch.setattr(estimator, "standardization", lambda *a: pytest.fail("standardized before refusing"))
    with pytest.raises(InvalidRequest) as refused:
        students.fit(X_, Y_)
    assert str(refused.value) == message
    assert not hasattr(students, "coef_")


def test_predicting_before_a_fit_or_from_other_concepts_is_refused(fitted):
    X, _, students = fitted
    with pytest.raises(InvalidRequest) as refused:
        SparseStudents().predict_proba(X)
    assert str(refused.value) == "These students are not fitted yet: call fit(X, Y) first"
    for predict in (students.predict, students.predict_proba, students.decision_function):
        with pytest.raises(InvalidRequest) as refused:
            predict(X[:, :50])
        assert str(refused.value) == (
            "X has 50 concepts per row but the students were fit on 60: give vectors of the same concepts"
        )
    assert students.predict(X).shape == (N, K)  # still predicting as fitted
