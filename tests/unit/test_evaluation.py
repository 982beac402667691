"""Table 1, calibration and the cross-benchmark section from prediction rows (the confusion matrices and
their figure: ``tests/integration/test_plot_rendering.py``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from vqalib.eval.tables import (
    calibration_table,
    cross_benchmark_table,
    flat_metrics,
    plot_reliability,
    table1,
)
from vqalib.schema.levels import DIMENSION_KEYS, LEVELS
from vqalib.eval.predictions_file import rows_from_distributions

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def simulated(n: int, skill: float, seed: int, fail_every: int = 0, ids=None) -> pd.DataFrame:
    """Prediction rows whose distributions put weight ``skill`` near the target level (0 = uniform noise)."""
    rng = np.random.default_rng(seed)
    ids = ids or [f"v{i:03d}" for i in range(n)]
    parts = []
    for k, dim in enumerate(DIMENSION_KEYS):
        target = rng.choice(LEVELS, n)
        logits = rng.normal(0, 1, (n, 9)) - skill * np.abs(LEVELS[None, :] - target[:, None])
        d = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        parsed = LEVELS[d.argmax(1)].astype(float)
        status = ["ok"] * n
        if fail_every:
            for i in range(k, n, fail_every):
                parsed[i] = np.nan
                status[i] = "unparsable"
        parts.append(rows_from_distributions(ids, dim, d, targets=target, parsed_scores=parsed, parse_status=status,
                                             raw_texts=["..."] * n))
    return pd.concat(parts, ignore_index=True)


def test_table1_layout_and_a_skilled_model_wins():
    preds = {"base": simulated(80, 0.0, 1), "aso": simulated(80, 4.0, 2, fail_every=10)}
    wide, long = table1(preds, "parsed_score", n_boot=50)
    assert list(wide.index) == ["base", "aso"]
    assert list(wide.columns[:4]) == [("Motion Quality", m) for m in ("Acc@0.5", "MAE", "SRCC", "PLCC")]
    assert wide.shape == (2, 20)
    for dim in ("Motion Quality", "Clarity Quality"):
        assert wide.loc["aso", (dim, "SRCC")] > 0.8 > abs(wide.loc["base", (dim, "SRCC")]) + 0.5
        assert wide.loc["aso", (dim, "Acc@0.5")] > wide.loc["base", (dim, "Acc@0.5")] + 0.3
    row = long[(long.model == "aso") & (long.dimension == "motion_quality") & (long.metric == "srcc")].iloc[0]
    assert row.n_items == 80 and row.n_failed == 8 and row.n == 72 and row.coverage == pytest.approx(0.9)
    assert row.ci_low < row.value < row.ci_high
    flat = flat_metrics(long, "table1_parsed")
    assert flat["table1_parsed/aso/motion_quality/n_failed"] == 8


def test_table1_all_failed_gives_nan_with_reason():
    df = simulated(10, 1.0, 0)
    df["parsed_score"] = np.nan
    df["parse_status"] = "missing"
    wide, long = table1({"tiny": df}, "parsed_score")
    assert wide.isna().all().all()
    assert (long["reason"] == "no items").all() and (long["n_failed"] == 10).all()
    # The expected-score readout still exists for the same rows.
    wide_e, _ = table1({"tiny": df}, "expected_score")
    assert wide_e.notna().all().all()


def test_all_items_view_scores_failures_and_compares_models_on_the_same_clips():
    # issue 9 item 9: a model that fails on the clips it would get wrong looks perfect when failures are
    # left out; on all items its failures count as wrong (Acc@0.5) and as the midpoint 3.0 (MAE, SRCC, PLCC)
    ids = [f"v{i:02d}" for i in range(20)]
    target = np.tile(LEVELS, 3)[:20]
    parsed = target.copy()
    parsed[::4] = np.nan  # 5 failures out of 20
    d = np.full((20, 9), 1 / 9)
    rows = rows_from_distributions(ids, "clarity_quality", d, targets=target, parsed_scores=parsed,
                                   parse_status=["unparsable" if np.isnan(v) else "ok" for v in parsed],
                                   raw_texts=["..."] * 20)
    _, excl = table1({"m": rows}, "parsed_score")
    _, alli = table1({"m": rows}, "parsed_score", failures="all_items")
    get = lambda long, m: long[long.metric == m].iloc[0]  # noqa: E731
    assert get(excl, "acc").value == 1.0 and get(excl, "acc").n == 15
    assert get(alli, "acc").value == pytest.approx(15 / 20) and get(alli, "acc").n == 20 == get(alli, "acc").n_items
    filled = np.where(np.isnan(parsed), 3.0, parsed)
    assert get(alli, "mae").value == pytest.approx(np.abs(filled - target).mean())
    assert get(alli, "srcc").value < 1.0 == pytest.approx(get(excl, "srcc").value)
    assert (alli["failures"] == "all_items").all() and (excl["failures"] == "exclude").all()
    # a failure on a clip whose target is the midpoint still counts as wrong for Acc@0.5
    assert 3.0 in target[::4]
    with pytest.raises(ValueError, match="failures='impute'"):
        table1({"m": rows}, "parsed_score", failures="impute")


def test_calibration_table_and_reliability_plot():
    preds = {"random": simulated(200, 0.0, 4), "sharp": simulated(200, 6.0, 5)}
    cal = calibration_table(preds).set_index(["model", "dimension"])
    assert (cal["n"] == 200).all()
    # Random logits: confidence well above the ~1/9 accuracy -> large ECE; sharp model: accurate.
    assert cal.loc[("sharp", "motion_quality"), "accuracy"] > 0.8
    assert cal.loc[("random", "motion_quality"), "nll"] > cal.loc[("sharp", "motion_quality"), "nll"]
    fig = plot_reliability(preds)
    assert len(fig.axes) == 5


def test_cross_benchmark_table_on_real_konvid_labels():
    labels = SHARED / "labels"
    if not labels.is_dir():
        pytest.skip(f"label files not found in {labels}")
    from vqalib.data.mos import load_benchmark

    bench = load_benchmark("KoNViD", SHARED / "videos" / "konvid", labels_root=labels)
    preds = {"base": simulated(2, 1.0, 0, ids=["10053703034", "5115335471"])}
    tab, infos = cross_benchmark_table(bench, preds, ["mean_quality", "clarity_quality"])
    assert tab["n"].tolist() == [2, 2] and (tab["n_missing_videos"] == 1198).all()
    assert tab["SRCC"].isna().all() and "fewer than 3 items (n=2)" in tab["reason"].iloc[0]
    assert not np.isnan(tab["MAE"].iloc[0])
