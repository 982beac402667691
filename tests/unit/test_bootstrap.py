"""The bootstraps (agreement CIs, metric CIs, the hierarchical seeds x clips bootstrap) give bit-identical
numbers for fixed inputs and seeds: pinned here so that moving them onto one resampling core
(``vqalib.core.bootstrap``) cannot change a draw, its order or the interval."""

from __future__ import annotations

import hashlib

import numpy as np

from test_hierarchical_bootstrap import frame
from vqalib.core.bootstrap import bootstrap_values, hierarchical_values, percentile_ci, unit_bootstrap_ci
from vqalib.data import agreement as A
from vqalib.eval.metrics import bootstrap_ci
from vqalib.eval.tables import hierarchical_bootstrap
from vqalib.schema import levels as L


def _counts(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lat = rng.choice(L.LEVELS, size=n)
    c = np.zeros((n, 9))
    for _ in range(3):
        np.add.at(c, (np.arange(n), L.level_index(L.snap_to_grid(lat + rng.normal(0, 0.6, size=n)))), 1)
    return c


def _hex(values) -> list[str]:
    return [float(v).hex() for v in values]


def test_agreement_bootstrap_is_pinned():
    c = _counts(40, 1)
    alpha = lambda x: A._alpha_from_counts(x, "interval")  # noqa: E731
    assert _hex(unit_bootstrap_ci(c, alpha, n_boot=60, seed=3)) == PIN["agreement"]
    # a statistic that is NaN on some resamples: those are left out
    odd = lambda x: float("nan") if x[0, 4] > 0 else float(x[:, 4].mean())  # noqa: E731
    assert _hex(unit_bootstrap_ci(c, odd, n_boot=60, seed=3)) == PIN["agreement_nan"]
    assert all(np.isnan(unit_bootstrap_ci(c, lambda x: float("nan"), n_boot=10)))
    assert all(np.isnan(unit_bootstrap_ci(c[:1], alpha, n_boot=10)))


def test_metric_bootstrap_is_pinned():
    rng = np.random.default_rng(5)
    y = rng.normal(size=50)
    p = y + rng.normal(0, 0.8, 50)
    ci = bootstrap_ci("srcc", y, p, n_boot=200, seed=7)
    assert (_hex([ci.low, ci.high]), ci.n_boot, ci.n_undefined, ci.reason) == PIN["metric"]
    # on 4 items with a near-constant prediction many resamples are undefined
    few = bootstrap_ci("srcc", [1, 2, 3, 4], [2, 2, 2, 3], n_boot=40, seed=1)
    assert (few.n_undefined, few.reason) == PIN["metric_few"]
    most = bootstrap_ci("srcc", [1, 1, 1, 2, 1, 1], [2, 2, 2, 2, 2, 3], n_boot=40, seed=1)
    assert (np.isnan(most.low), most.n_undefined, most.reason) == (True, 24, "metric undefined on 24 of 40 resamples")
    const = bootstrap_ci("srcc", [1, 2, 3, 4], [2, 2, 2, 2], n_boot=40, seed=1)
    assert (const.n_undefined, const.reason) == (40, "prediction is constant (2 for all 4 items)")
    mae = bootstrap_ci("mae", y, p, n_boot=100, level=0.9, seed=2)
    assert _hex([mae.low, mae.high]) == PIN["metric_mae"]


def test_hierarchical_bootstrap_is_pinned():
    runs = {"sft": [frame(30, 0.9, 1)], "grpo": [frame(30, 0.7, 2), frame(30, 0.7, 3)],
            "aso": [frame(30, 0.5, 4), frame(30, 0.6, 5, fail=(3, 7)), frame(30, 0.5, 6)]}
    res = hierarchical_bootstrap(runs, [("aso", "grpo"), ("aso", "sft")], metrics=["srcc", "mae"], n_boot=120, seed=4)
    assert hashlib.sha256(res.to_csv().encode()).hexdigest() == PIN["hierarchical"]
    ex = hierarchical_bootstrap(runs, [("aso", "grpo")], metrics=["srcc"], n_boot=50, seed=0, failures="exclude")
    assert hashlib.sha256(ex.to_csv().encode()).hexdigest() == PIN["hierarchical_exclude"]


#: Computed on the code before the bootstraps shared one core (commit a07cff8); a change here is a change of results.
PIN: dict = {
    "agreement": ["0x1.ab46b87e0dbb4p-1", "0x1.d69e053c0d44ep-1"],
    "agreement_nan": ["0x1.75c28f5c28f5ep-3", "0x1.3147ae147ae15p-1"],
    "metric": (["0x1.56ed0d96ab80cp-1", "0x1.c38b3f2eeaafcp-1"], 200, 0, None),
    "metric_few": (7, None),
    "metric_mae": ["0x1.03fedea6327fbp-1", "0x1.5c2dd9c939eb7p-1"],
    "hierarchical": "7761e45d02c10c6c9a7ed510b8c6e8002d275d911dd5ce7e5e2f4fec7c42368e",
    "hierarchical_exclude": "be387509217d6c1267d9f3639ade35c9b8166eef6b514ab318c54bc45399ff4e",
}


def test_core_percentile_interval_counts_and_names_undefined_resamples():
    ci = percentile_ci([1.0, 2.0, 3.0, np.nan, 5.0], level=0.5)
    assert (ci.low, ci.high, ci.n_boot, ci.n_undefined, ci.reason) == (1.75, 3.5, 5, 1, None)
    half = percentile_ci([np.nan, np.inf, 1.0, 2.0, np.nan])
    assert np.isnan(half.low) and (half.n_undefined, half.reason) == (3, "metric undefined on 3 of 5 resamples")
    assert percentile_ci([np.nan, np.nan, 1.0], min_defined=0.0).low == 1.0  # at least one finite is enough
    assert percentile_ci([]).reason == "no resamples"


def test_core_draws_are_seeded_and_shared_by_the_groups():
    draws = bootstrap_values(lambda idx: float(idx.sum()), 7, 5, seed=3)
    rng = np.random.default_rng(3)
    assert draws.tolist() == [float(rng.integers(0, 7, 7).sum()) for _ in range(5)]
    # two groups with one run each see the same units in every resample: their difference is paired
    seen: dict[str, list] = {"a": [], "b": []}

    def stat(g, idx):
        seen[g].append(idx.copy())
        return idx[None, :3].astype(float)  # one run; value = the first three unit indices

    out = hierarchical_values(stat, 10, {"a": 1, "b": 1}, 4, seed=0)
    assert all((x == y).all() for x, y in zip(seen["a"], seen["b"]))
    assert out["a"].shape == (4, 3) and (out["a"] == out["b"]).all()
    assert hierarchical_values(stat, 10, {"a": 1}, 0)["a"].shape == (0,)
