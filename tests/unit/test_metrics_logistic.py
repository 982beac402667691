"""Logistic-fitted PLCC on exact fits (issue 9, item 10).

A prediction that separates the levels perfectly is fitted exactly by a steep logistic; curve_fit
then cannot estimate the parameter covariance (singular Jacobian) and warns. That warning is not a
failed fit: the fitted PLCC is 1, not NaN."""

import math

import numpy as np
import pytest

from vqalib.eval.metrics import fit_logistic4, logistic4, plcc_fitted

CASES = [
    ([1, 1, 1, 5, 5, 5], [1, 1, 1, 5, 5, 5]),  # two clusters, perfectly separated
    ([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], [1, 1, 1, 5, 5, 1, 1, 1, 5, 5]),  # a step the logistic fits exactly
    ([1, 2, 3, 4, 5, 6], [1, 1, 3, 5, 5, 5]),
]


@pytest.mark.parametrize("p, y", CASES)
def test_exact_logistic_fit_gives_plcc_one_not_nan(p, y):
    p, y = np.asarray(p, float), np.asarray(y, float)
    params, why = fit_logistic4(y, p)
    assert why is None
    assert np.abs(logistic4(p, *params) - y).max() < 1e-6
    r = plcc_fitted(y, p)
    assert r.reason is None and math.isclose(r.value, 1.0, abs_tol=1e-9)


def test_a_fit_that_does_not_converge_still_fails():
    rng = np.random.default_rng(0)
    p = rng.normal(size=50)
    y = logistic4(p, 4.8, 1.2, 0.0, 0.4) + rng.normal(0, 0.3, 50)
    r = plcc_fitted(y, p, maxfev=3)
    assert math.isnan(r.value) and "fit failed" in r.reason
