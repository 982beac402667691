"""Metrics against scipy on random data, hand-computed cases, and NaN-with-a-reason for undefined cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vqalib.schema.levels import LEVELS
from vqalib.eval.metrics import (
    acc_at,
    bootstrap_ci,
    calibration,
    fit_logistic4,
    krcc,
    logistic4,
    mae,
    plcc,
    plcc_fitted,
    rmse,
    score_metrics,
    srcc,
)


def test_hand_computed_errors():
    y = [1.0, 2.0, 3.0, 4.0]
    p = [1.5, 2.0, 4.0, 4.0]
    assert acc_at(y, p).value == 0.75  # |0.5| counts as a hit, |1.0| does not
    assert mae(y, p).value == pytest.approx(0.375)
    assert rmse(y, p).value == pytest.approx(math.sqrt(1.25 / 4))
    assert acc_at(y, p, tol=0.0).value == 0.5
    assert srcc([1, 2, 3], [3, 2, 1]).value == pytest.approx(-1.0)
    assert krcc([1, 2, 3, 4], [1, 3, 2, 4]).value == pytest.approx(4 / 6)  # 5 concordant, 1 discordant pair


def test_against_scipy_on_random_data():
    rng = np.random.default_rng(1)
    y = rng.choice(LEVELS, 200)
    p = np.clip(y + rng.normal(0, 0.8, 200), 1, 5)
    assert srcc(y, p).value == pytest.approx(stats.spearmanr(y, p).statistic, abs=1e-12)
    assert krcc(y, p).value == pytest.approx(stats.kendalltau(y, p).statistic, abs=1e-12)
    assert plcc(y, p).value == pytest.approx(stats.pearsonr(y, p).statistic, abs=1e-12)
    assert mae(y, p).value == pytest.approx(np.abs(y - p).mean())
    assert 0.3 < srcc(y, p).value < 0.95


def test_logistic_fit_recovers_a_logistic_relation():
    rng = np.random.default_rng(0)
    p = rng.uniform(1, 5, 300)
    y = logistic4(p, 4.8, 1.2, 3.0, 0.4) + rng.normal(0, 0.05, 300)
    params, why = fit_logistic4(y, p)
    assert why is None
    np.testing.assert_allclose(params[:3], [4.8, 1.2, 3.0], atol=0.1)
    assert abs(abs(params[3]) - 0.4) < 0.05
    fitted = plcc_fitted(y, p).value
    assert fitted > plcc(y, p).value + 0.02  # the map linearises a non-linear relation
    assert fitted > 0.99


def test_logistic_fit_failure_gives_nan_with_reason_and_raw_plcc_stays():
    rng = np.random.default_rng(2)
    p = rng.uniform(1, 5, 40)
    y = np.clip(p + rng.normal(0, 0.5, 40), 1, 5)
    r = plcc_fitted(y, p, maxfev=3)  # the optimiser runs out of evaluations: a failed fit
    assert math.isnan(r.value) and "logistic fit failed" in r.reason and "raw PLCC" in r.reason
    assert plcc(y, p).defined  # raw PLCC still reported, not substituted into the fitted column
    assert plcc_fitted(y, p).defined
    assert "fewer than 5" in plcc_fitted([1, 2, 3, 4], [1, 2, 3, 5]).reason


def test_logistic_fit_on_two_valued_predictions_equals_raw_plcc():
    # Any map of a two-valued prediction is affine, so the fitted PLCC must equal the raw one.
    y = [1.0, 2.0, 1.5, 4.0, 4.5, 3.5]
    p = [2.0, 2.0, 2.0, 4.0, 4.0, 4.0]
    assert plcc_fitted(y, p).value == pytest.approx(plcc(y, p).value, abs=1e-6)


@pytest.mark.parametrize(
    "y, p, name, fragment",
    [
        ([1, 2, 3, 4], [3, 3, 3, 3], "srcc", "prediction is constant"),
        ([1, 2, 3, 4], [3, 3, 3, 3], "plcc", "prediction is constant"),
        ([2, 2, 2, 2], [1, 2, 3, 4], "krcc", "targets are constant"),
        ([1, 2], [1, 2], "srcc", "fewer than 3 items (n=2)"),
        ([1, 2, 3], [1, float("nan"), 3], "srcc", "1 NaN prediction(s)"),
        ([1, 2, 3], [1, float("nan"), 3], "acc", "1 NaN prediction(s)"),
        ([], [], "mae", "no items"),
    ],
)
def test_undefined_cases_are_nan_with_a_reason(y, p, name, fragment):
    r = score_metrics(y, p, [name])[name]
    assert math.isnan(r.value) and not r.defined
    assert fragment in r.reason


def test_score_metrics_returns_all_defined_on_good_data():
    rng = np.random.default_rng(3)
    y = rng.choice(LEVELS, 50)
    p = np.clip(y + rng.normal(0, 0.5, 50), 1, 5)
    out = score_metrics(y, p)
    assert set(out) == {"acc", "mae", "rmse", "srcc", "krcc", "plcc", "plcc_fit"}
    assert all(r.defined for r in out.values()), {k: r.reason for k, r in out.items()}
    with pytest.raises(ValueError, match="unknown metric"):
        score_metrics(y, p, ["auc"])


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(5)
    y = rng.choice(LEVELS, 120)
    p = np.clip(y + rng.normal(0, 0.7, 120), 1, 5)
    a = bootstrap_ci("srcc", y, p, n_boot=300, seed=7)
    b = bootstrap_ci("srcc", y, p, n_boot=300, seed=7)
    c = bootstrap_ci("srcc", y, p, n_boot=300, seed=8)
    assert (a.low, a.high) == (b.low, b.high) and (a.low, a.high) != (c.low, c.high)
    est = srcc(y, p).value
    assert a.low < est < a.high and a.high - a.low < 0.4
    # More items -> narrower interval.
    y2, p2 = np.tile(y, 8), np.tile(p, 8)
    w2 = bootstrap_ci("srcc", y2, p2, n_boot=300, seed=7)
    assert (w2.high - w2.low) < (a.high - a.low) * 0.6
    u = bootstrap_ci("srcc", [1, 2, 3, 4], [2, 2, 2, 2], n_boot=50)
    assert math.isnan(u.low) and "constant" in u.reason


def test_calibration_hand_cases():
    onehot = np.eye(9)[[0, 4, 8]]
    cal = calibration(onehot, [1.0, 3.0, 5.0])
    assert cal.ece.value == pytest.approx(0.0) and cal.brier.value == pytest.approx(0.0)
    assert cal.accuracy == 1.0 and cal.nll.value == pytest.approx(0.0, abs=1e-9)
    uniform = np.full((4, 9), 1 / 9)
    cal = calibration(uniform, [1.0, 1.5, 3.0, 5.0])
    # argmax of a uniform row is level 1.0: right for 1 of 4 items, confidence 1/9 everywhere.
    assert cal.accuracy == 0.25 and cal.mean_confidence == pytest.approx(1 / 9)
    assert cal.ece.value == pytest.approx(0.25 - 1 / 9)
    assert cal.nll.value == pytest.approx(math.log(9))
    assert cal.brier.value == pytest.approx(8 / 81 + (1 - 1 / 9) ** 2)
    rel = cal.reliability
    assert rel["n"].sum() == 4 and rel.loc[rel["n"] > 0, "bin_high"].tolist() == [pytest.approx(0.2)]


def test_calibration_rejects_bad_input_naming_the_row():
    d = np.full((3, 9), 1 / 9)
    d[1, 0] += 0.2
    with pytest.raises(ValueError, match="row 1 is not a probability distribution"):
        calibration(d, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"position 0 \(3.2\) is not on the 9-level grid"):
        calibration(np.full((1, 9), 1 / 9), [3.2])


INF = float("inf")


@pytest.mark.parametrize("name", ["acc", "mae", "rmse", "srcc", "krcc", "plcc", "plcc_fit"])
@pytest.mark.parametrize("y, p, fragment", [
    ([1, 2, 3, 4, 5, 3], [1, 2, 3, 4, INF, 3], "1 non-finite prediction(s) (1 inf)"),
    ([1, 2, 3, 4, 5, 3], [1, -INF, 3, 4, float("nan"), 3], "2 non-finite prediction(s) (1 NaN, 1 inf)"),
    ([1, 2, INF, 4, 5, 3], [1, 2, 3, 4, 5, 3], "1 non-finite target(s) (1 inf)"),
])
def test_infinite_values_are_undefined_like_nan(name, y, p, fragment):
    """Issue 8: a prediction of inf gave PLCC NaN with no reason, MAE/RMSE inf and SRCC 1.0."""
    r = score_metrics(y, p, [name])[name]
    assert math.isnan(r.value) and not r.defined
    assert fragment in r.reason


def test_bootstrap_and_calibration_refuse_infinite_values_with_a_reason():
    ci = bootstrap_ci("srcc", [1, 2, 3, 4, 5], [1, 2, 3, 4, INF], n_boot=20)
    assert math.isnan(ci.low) and "non-finite prediction" in ci.reason
    dists = np.full((2, 9), 1 / 9)
    cal = calibration(dists, [3.0, INF])
    assert math.isnan(cal.ece.value) and "1 non-finite target(s) (1 inf)" in cal.ece.reason
