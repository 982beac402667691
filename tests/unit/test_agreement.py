"""Agreement: Krippendorff's alpha against published values, Relaxed Match by hand, bootstrap, bias."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import shared_data_or_skip
from vqalib.core.bootstrap import unit_bootstrap_ci
from vqalib.data import agreement as A
from vqalib.schema import levels as L


def _reference() -> dict:
    return json.loads(shared_data_or_skip("krippendorff_reference.json").read_text())


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_reproduces_krippendorff_2011(level):
    ref = _reference()["krippendorff_2011_example"]
    data = np.array([[np.nan if v is None else v for v in row] for row in ref["reliability_data"]], dtype=float)
    a = A.krippendorff_alpha(data, level=level)
    assert round(a, 3) == ref["published_alpha"][level]
    assert a == pytest.approx(ref["computed_alpha_6dp"][level], abs=1e-6)


@pytest.mark.parametrize("level", ["nominal", "interval"])
def test_alpha_reproduces_wikipedia_example(level):
    ref = _reference()["wikipedia_example"]
    data = np.array([[np.nan if v is None else v for v in row] for row in ref["reliability_data"]], dtype=float)
    assert A.krippendorff_alpha(data, level=level) == pytest.approx(ref["package_doctest_alpha"][level], abs=1e-6)


def test_alpha_from_value_counts_matches_reliability_data():
    rng = np.random.default_rng(0)
    latent = rng.choice(L.LEVELS, size=40)
    scores = L.snap_to_grid(latent[None, :] + rng.normal(0, 0.5, size=(3, 40)))
    rows = [{"video_id": f"v{u:02d}", "rater": f"r{i}", "phase": "final", "dimension": "clarity_quality",
             "score": scores[i, u]} for i in range(3) for u in range(40)]
    counts, units = A.value_counts_matrix(pd.DataFrame(rows), "clarity_quality")
    assert counts.shape == (40, 9) and counts.sum() == 120
    for level in ("interval", "ordinal"):
        direct = A.krippendorff_alpha(scores, level=level, value_domain=list(L.LEVELS))
        assert A._alpha_from_counts(counts, level) == pytest.approx(direct, abs=1e-9)


def test_alpha_is_nan_without_variation():
    assert np.isnan(A.krippendorff_alpha(np.array([[3.0, 3.0], [3.0, 3.0]])))


def test_relaxed_match_hand_checked():
    # unit 1: 1.0, 2.0, 3.5 -> pairs |1|, |2.5|, |1.5| -> 1 of 3 within 1.0
    # unit 2: 4.0, 4.5      -> 1 of 1 ; unit 3: only one rating -> no pair
    scores = np.array([[1.0, 4.0, 2.0], [2.0, 4.5, np.nan], [3.5, np.nan, np.nan]])
    assert A.relaxed_match(scores) == pytest.approx(2 / 4)
    assert A.relaxed_match(scores, tol=1.5) == pytest.approx(3 / 4)  # |1.5| now counts
    assert A.relaxed_match(scores, tol=0.0) == pytest.approx(0 / 4)
    assert np.isnan(A.relaxed_match(np.array([[1.0], [np.nan]])))
    # same numbers through the value-count route
    counts = np.zeros((2, 9))
    for u, col in enumerate(([1.0, 2.0, 3.5], [4.0, 4.5])):
        for s in col:
            counts[u, L.level_index(s)] += 1
    assert A.relaxed_match_counts(counts) == (2.0, 4.0)


def test_unit_bootstrap_ci_brackets_the_estimate_and_narrows_with_more_units():
    rng = np.random.default_rng(1)

    def counts_for(n):
        lat = rng.choice(L.LEVELS, size=n)
        c = np.zeros((n, 9))
        for _ in range(3):
            idx = L.level_index(L.snap_to_grid(lat + rng.normal(0, 0.6, size=n)))
            np.add.at(c, (np.arange(n), idx), 1)
        return c

    small, big = counts_for(30), counts_for(600)
    fn = lambda c: A._alpha_from_counts(c, "interval")  # noqa: E731
    lo_s, hi_s = unit_bootstrap_ci(small, fn, n_boot=100, seed=0)
    lo_b, hi_b = unit_bootstrap_ci(big, fn, n_boot=100, seed=0)
    assert lo_b <= fn(big) <= hi_b
    assert (hi_b - lo_b) < (hi_s - lo_s)
    assert unit_bootstrap_ci(big, fn, n_boot=100, seed=0) == (lo_b, hi_b)  # seeded


def _ratings(rows):
    return pd.DataFrame(rows, columns=["video_id", "rater", "phase", "dimension", "score"])


def test_rater_bias_finds_the_lenient_rater():
    rows = []
    for u in range(20):
        base = 1.0 + (u % 7) * 0.5
        for r, off in (("a", 0.0), ("b", 0.0), ("lenient", 1.0)):
            rows.append((f"v{u}", r, "final", "motion_quality", min(5.0, base + off)))
    b = A.rater_bias(_ratings(rows)).set_index("rater")
    assert b.loc["lenient", "bias"] > 0.8 and b.loc["lenient", "leniency"] == 1.0
    assert b.loc["a", "bias"] < 0 and b.loc["a", "leniency"] < 0
    assert b.loc["a", "n"] == 20


def test_high_variance_filter_removes_disagreeing_items():
    rows = []
    for u in range(10):
        scores = (3.0, 3.0, 3.5) if u < 8 else (1.0, 3.0, 5.0)  # two items with std 2.0
        rows += [(f"v{u}", r, "final", "aesthetic_quality", s) for r, s in zip("abc", scores)]
    eff = A.high_variance_effect(_ratings(rows), dimensions=["aesthetic_quality"]).iloc[0]
    assert eff.n_flagged == 2 and eff.share_flagged == pytest.approx(0.2)
    assert eff.relaxed_match_kept == 1.0 and eff.relaxed_match_all == pytest.approx((8 * 3 + 2 * 0) / 30)


def test_compare_phases_and_sample_dataset_final_beats_pilot():
    from vqalib.data.dataset import load_dataset
    from vqalib.data.synth import ensure_sample_dataset

    ds = load_dataset(ensure_sample_dataset("smoke", progress=False))
    table = A.agreement_table(ds.ratings, n_boot=0)
    assert set(table.phase) == {"pilot", "final"} and len(table) == 10
    for col in ("alpha_interval", "alpha_ordinal"):
        cmp = A.compare_phases(table, col)
        assert cmp.all_higher, f"{col}: final not above pilot on {cmp.final_higher}"
    with pytest.raises(ValueError, match="no \\['pilot'\\] phase"):
        A.compare_phases(table[table.phase == "final"])


def test_only_rated_dimensions_are_tabulated_and_unpairable_data_gives_nan():
    rows = [(f"v{u}", r, "final", "clarity_quality", s) for u in range(6) for r, s in zip("ab", (1.0 + u * 0.5, 1.5 + u * 0.5))]
    table = A.agreement_table(_ratings(rows), phases=["final"], n_boot=10)
    assert table.dimension.tolist() == ["clarity_quality"]
    assert table.relaxed_match[0] == 1.0 and table.alpha_interval[0] > 0.8
    single = _ratings([("v1", "a", "final", "clarity_quality", 2.0), ("v2", "b", "final", "clarity_quality", 4.0)])
    assert np.isnan(A.agreement_table(single, phases=["final"], n_boot=0).alpha_interval[0])
