"""The hierarchical (seeds x clips) bootstrap of notebook 07's method comparison
(``vqalib.eval.tables.hierarchical_bootstrap``) against cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vqalib.eval.tables import hierarchical_bootstrap
from vqalib.schema.levels import DIMENSION_KEYS, LEVELS


def frame(n: int, noise: float, seed: int, dims=DIMENSION_KEYS, target_seed: int = 0, fail: tuple[int, ...] = ()):
    """Prediction rows: grid targets (shared by every frame of one ``target_seed``) and parsed scores =
    target + Gaussian noise snapped to the grid; clips in ``fail`` did not parse."""
    t_rng, rng = np.random.default_rng(target_seed), np.random.default_rng(seed)
    rows = []
    for dim in dims:
        target = t_rng.choice(LEVELS, n)
        pred = np.clip(np.round((target + rng.normal(0, noise, n)) * 2) / 2, 1, 5)
        for i in range(n):
            ok = i not in fail
            rows.append({"video_id": f"v{i:03d}", "dimension": dim, "target": float(target[i]),
                         "parsed_score": float(pred[i]) if ok else None, "parse_status": "ok" if ok else "unparsable"})
    return pd.DataFrame(rows)


def pick(res, kind, name, dim, metric="srcc"):
    return res[(res["kind"] == kind) & (res["name"] == name) & (res["dimension"] == dim) & (res["metric"] == metric)].iloc[0]


def test_identical_runs_give_an_interval_of_exactly_zero():
    a, b = frame(40, 0.6, 1), frame(40, 0.6, 2)
    for runs in ({"x": [a], "y": [a]}, {"x": [a, a], "y": [a, a, a]}):  # every seed of both methods identical
        res = hierarchical_bootstrap(runs, [("x", "y")], metrics=["srcc", "mae"], n_boot=200)
        diff = res[res["kind"] == "difference"]
        assert len(diff) == 2 * (len(DIMENSION_KEYS) + 1)
        # exactly 0 with one seed each; means over 2 and 3 copies of one value may differ in the last bit
        worst = diff[["estimate", "ci_low", "ci_high"]].abs().to_numpy().max()
        assert worst == 0 if len(runs["x"]) == 1 else worst <= 1e-12
        assert (diff["n_undefined"] == 0).all() and diff["reason"].isna().all()
    # the same two different seeds for both methods: equal on average, but each method's seeds are drawn
    # independently, so the interval carries the spread between seeds
    res = hierarchical_bootstrap({"x": [a, b], "y": [a, b]}, [("x", "y")], metrics=["srcc"], n_boot=200)
    mean = pick(res, "difference", "x − y", "mean")
    assert mean.estimate == 0 and mean.ci_low < 0 < mean.ci_high


def test_seed_resampling_widens_the_interval():
    """Same mean over seeds, but one method's two seeds differ: its interval includes the seed spread,
    so it is wider than the clip-only interval of a single seed."""
    good, bad = frame(60, 0.3, 1), frame(60, 1.5, 2)
    ref = frame(60, 0.8, 3)
    two = hierarchical_bootstrap({"m": [good, bad], "r": [ref]}, [("m", "r")], metrics=["srcc"], n_boot=300)
    one = hierarchical_bootstrap({"m": [good], "r": [ref]}, [("m", "r")], metrics=["srcc"], n_boot=300)
    w2 = pick(two, "method", "m", "mean").pipe(lambda r: r.ci_high - r.ci_low)
    w1 = pick(one, "method", "m", "mean").pipe(lambda r: r.ci_high - r.ci_low)
    assert w2 > 1.5 * w1
    from vqalib.eval.metrics import srcc

    est = np.mean([np.mean([srcc(f[f.dimension == d].target, f[f.dimension == d].parsed_score).value
                            for d in DIMENSION_KEYS]) for f in (good, bad)])
    assert pick(two, "method", "m", "mean").estimate == pytest.approx(est)


def test_one_seed_is_the_paired_clip_bootstrap_of_paired_change():
    from vqalib.report.training import paired_change

    dim = DIMENSION_KEYS[0]
    before, after = frame(50, 1.0, 1, dims=[dim]), frame(50, 0.5, 2, dims=[dim])
    res = hierarchical_bootstrap({"before": [before], "after": [after]}, [("after", "before")], metrics=["srcc"],
                                 n_boot=250, seed=7)
    ref = paired_change(before, after, n_boot=250, seed=7).set_index("dimension").loc[dim]
    got = pick(res, "difference", "after − before", dim)
    assert got.estimate == pytest.approx(ref.delta, abs=1e-12)
    assert got.ci_low == pytest.approx(ref.ci_low, abs=1e-12) and got.ci_high == pytest.approx(ref.ci_high, abs=1e-12)
    assert got.n_clips == ref.n == 50


def test_clips_are_shared_and_failures_scored_by_the_rule():
    a, b = frame(30, 0.5, 1, fail=(0, 1, 2)), frame(30, 0.5, 2)
    res = hierarchical_bootstrap({"a": [a], "b": [b]}, [("a", "b")], metrics=["mae"], n_boot=50)
    assert (res["n_clips"] == 30).all()  # all_items: failures count (as the midpoint 3.0), same clips
    from vqalib.eval.tables import FAILURE_SCORE
    from vqalib.eval.metrics import mae

    sub = a[a.dimension == DIMENSION_KEYS[0]]
    expect = mae(sub.target, sub.parsed_score.fillna(FAILURE_SCORE)).value
    assert pick(res, "method", "a", DIMENSION_KEYS[0], "mae").estimate == pytest.approx(expect)
    ex = hierarchical_bootstrap({"a": [a], "b": [b]}, [("a", "b")], metrics=["mae"], n_boot=50, failures="exclude")
    assert (ex["n_clips"] == 27).all()


def test_bad_inputs_raise():
    a = frame(10, 0.5, 1)
    with pytest.raises(ValueError, match="no predictions"):
        hierarchical_bootstrap({"a": [a], "b": []})
    with pytest.raises(ValueError, match="contrast a - c"):
        hierarchical_bootstrap({"a": [a]}, [("a", "c")])
    with pytest.raises(ValueError, match="failures='some'"):
        hierarchical_bootstrap({"a": [a]}, failures="some")
