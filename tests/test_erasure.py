"""Concept erasure (students/erasure.py) on arrays with a known covariance: what it guarantees
(an erased concept is linearly unpredictable from the erased vectors) and that a folded student
is the same function of the vectors themselves."""

import numpy as np
import pytest

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.erasure import ErasedInputs, fit_eraser, fit_tuned, fold
from fiftyone_inficond.students.training import TrainingConfig, initial_weights
from fiftyone_inficond.students.tuning import no_bounds

CLOUD, WHITE, SNOW, WHEEL = 0, 1, 2, 3


def correlated(n=4000, seed=0):
    """Vectors of 6 concepts with a known covariance: white and snow follow cloud (0.9 and 0.6),
    wheel is independent of it, the rest is noise."""
    rng = np.random.default_rng(seed)
    cov = np.eye(6)
    cov[CLOUD, WHITE] = cov[WHITE, CLOUD] = 0.9
    cov[CLOUD, SNOW] = cov[SNOW, CLOUD] = 0.6
    cov[WHITE, SNOW] = cov[SNOW, WHITE] = 0.5
    return rng.multivariate_normal(np.zeros(6), cov, size=n).astype(np.float32)


def r_squared(x, z):
    """How much of ``z`` the best linear function of ``x`` explains."""
    design = np.column_stack([x, np.ones(len(x))]).astype(np.float64)
    fitted = design @ np.linalg.lstsq(design, z, rcond=None)[0]
    return 1 - ((z - fitted) ** 2).sum() / ((z - z.mean()) ** 2).sum()


def test_an_erased_concept_is_linearly_unpredictable_from_the_erased_vectors():
    x = correlated()
    others = np.delete(np.arange(6), CLOUD)
    assert r_squared(x[:, others], x[:, CLOUD]) > 0.8  # white and snow give cloud away
    erased = fit_eraser(x, [CLOUD], np.arange(len(x)))(x)
    covariance = np.cov(erased.T.astype(np.float64), x[:, CLOUD])[-1, :-1]
    assert np.abs(covariance).max() < 1e-5
    assert r_squared(erased, x[:, CLOUD]) < 1e-6


def test_erasure_changes_each_concept_only_by_a_multiple_of_the_erased_ones():
    x = correlated()
    eraser = fit_eraser(x, [CLOUD, SNOW], np.arange(len(x)))
    change = eraser(x) - x
    assert r_squared(x[:, [CLOUD, SNOW]], change[:, WHITE]) > 1 - 1e-6
    # white's regression on cloud and snow under the known covariance: inv([[1, .6], [.6, 1]]) @ [.9, .5]
    np.testing.assert_allclose(eraser.coef[:, WHITE], [0.9375, -0.0625], atol=0.05)
    np.testing.assert_allclose(eraser.coef[:, WHEEL], [0, 0], atol=0.05)  # independent of both: barely touched


def test_a_folded_student_is_the_same_function_of_the_vectors_themselves():
    x = correlated()
    eraser = fit_eraser(x, [CLOUD], np.arange(len(x)))
    rng = np.random.default_rng(1)
    weight, bias = rng.normal(size=(2, 6)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    folded_weight, folded_bias = fold(weight, bias, eraser)
    np.testing.assert_allclose(x @ folded_weight.T + folded_bias, eraser(x) @ weight.T + bias, atol=1e-4)
    assert (folded_weight[:, 1:] == weight[:, 1:]).all()  # only the erased concept's weight differs


def test_an_erased_row_source_reads_the_erased_rows():
    x = correlated(n=50)
    eraser = fit_eraser(x, [CLOUD], np.arange(50))
    np.testing.assert_array_equal(ErasedInputs(x, eraser)[[3, 7]], eraser(x[[3, 7]]))


def test_erasing_every_concept_is_refused():
    with pytest.raises(InvalidRequest, match="Every one of the 6 concepts would be erased"):
        fit_eraser(correlated(n=20), np.arange(6), np.arange(20))


def test_a_student_retrained_with_erasure_cannot_find_a_thumbs_down_concept_in_its_correlates():
    x = correlated()
    teacher = (1 / (1 + np.exp(-(3 * x[:, CLOUD] + 2 * x[:, WHEEL])))).astype(np.float32)[:, None]
    weight, bias = initial_weights(teacher, 6, 0)
    lower, upper = no_bounds((1, 6))
    lower[0, CLOUD] = upper[0, CLOUD] = 0.0  # 👎 cloud
    config = TrainingConfig(epochs=30, l1=0.0)
    plain, _, _, _ = fit_tuned(x, teacher, weight, bias, lower, upper, config)
    erased, erased_bias, erased_lower, erased_upper = fit_tuned(x, teacher, weight, bias, lower, upper, config,
                                                                erase=True)
    cloud = x[:, CLOUD]
    assert np.corrcoef(x @ plain[0], cloud)[0, 1] > 0.5  # white stood in for cloud
    assert abs(np.corrcoef(x @ erased[0] + erased_bias[0], cloud)[0, 1]) < 0.02
    assert erased[0, WHEEL] > 0.5  # what is not cloud is still learnt
    assert erased_lower[0, CLOUD] <= erased[0, CLOUD] <= erased_upper[0, CLOUD]
    assert np.isfinite(erased_upper[0, CLOUD])  # still 👎'd
