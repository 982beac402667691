"""Evaluation on any rating schema (issue 23): predictions files, metrics on the schema's and the raw
scale, tables, the scorer's columns and the benchmark's combination. The paper's schema stays as it was."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vqalib.schema import rating
from vqalib.schema.rating import INT10, MOS9, PAPER, QALIGN5, Dimension, make_schema
from vqalib.eval import metrics as M
from vqalib.eval import tables
from vqalib.eval.predictions_file import (
    PredictionsError, make_manifest, manifest_path, parse_failure_counts, read_predictions, rows_from_distributions,
    schema_of_manifest, write_predictions,
)
from vqalib.video.frames import SamplingConfig

#: MOS9 with LIVE-VQC's raw scale (ratings 0-100 mapped onto 1-5).
LIVE = make_schema("live_vqc", [Dimension("overall_quality", "Overall Quality", raw_range=(0.0, 100.0))],
                   values=MOS9.values, strings=MOS9.strings, keywords=MOS9.keywords,
                   benchmark_dimension="overall_quality")
#: INT10 whose visual quality came as DMOS on 0-100 (higher is worse).
INT10_DMOS = make_schema("int10_dmos", [Dimension("visual_quality", "Visual Quality", raw_range=(0.0, 100.0),
                                                  higher_is_better=False),
                                        Dimension("temporal_consistency", "Temporal Consistency")],
                         values=list(range(1, 11)))


def _manifest():
    return make_manifest("tiny", SamplingConfig(fps=2.0, max_frames=8), {"seed": 0})


def _rows(schema, n=6, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for dim in schema.keys:
        d = rng.dirichlet(np.ones(schema.n_levels), n)
        parsed = [float(schema.levels[i]) for i in d.argmax(1)]
        parsed[1] = None
        status = ["ok"] * n
        status[1] = "missing"
        parts.append(rows_from_distributions([f"v{i}" for i in range(n)], dim, d, targets=rng.choice(schema.levels, n),
                                             parsed_scores=parsed, parse_status=status, schema=schema))
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------ predictions files


@pytest.mark.parametrize("schema", [INT10, QALIGN5], ids=lambda s: s.name)
def test_predictions_round_trip_with_the_schema(tmp_path, schema):
    df = _rows(schema)
    assert df["dist"].map(len).eq(schema.n_levels).all()
    path = write_predictions(tmp_path / "p.jsonl", df, _manifest(), schema=schema)
    man = json.loads(manifest_path(path).read_text())
    assert man["rating_schema"] == schema.to_dict()
    back, manifest = read_predictions(path)
    assert back.attrs["rating_schema"] == schema and schema_of_manifest(manifest) == schema
    assert list(back["dimension"].unique()) == list(schema.keys)
    np.testing.assert_allclose(np.stack(back["dist"]), np.stack(df["dist"]))
    np.testing.assert_allclose(back["expected_score"], np.stack(df["dist"]) @ schema.levels)
    counts = parse_failure_counts(back)
    assert list(counts.index) == list(schema.keys) and (counts["missing"] == 1).all()


def test_paper_manifest_and_a_file_without_a_schema_are_paper(tmp_path):
    df = _rows(PAPER)
    path = write_predictions(tmp_path / "p.jsonl", df, _manifest())
    man = json.loads(manifest_path(path).read_text())
    assert man["rating_schema"] == PAPER.to_dict()
    del man["rating_schema"]
    manifest_path(path).write_text(json.dumps(man))
    back, manifest = read_predictions(path)
    assert back.attrs["rating_schema"] == PAPER and schema_of_manifest(manifest) == PAPER


def test_k_mismatched_dist_is_refused_naming_k_and_the_schema(tmp_path):
    df = _rows(PAPER, n=3)  # 9-level dists, written under INT10 (K=10)
    df["dimension"] = "visual_quality"
    df["video_id"] = [f"v{i}" for i in range(len(df))]
    with pytest.raises(PredictionsError, match=r"K=10 probabilities.*got 9.*'int10' rating schema"):
        write_predictions(tmp_path / "p.jsonl", df, _manifest(), schema=INT10)
    # and in a file: rows checked against the schema the manifest records
    good = _rows(INT10, n=3)
    path = write_predictions(tmp_path / "q.jsonl", good, _manifest(), schema=INT10)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[2]["dist"] = lines[2]["dist"][:9]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(PredictionsError, match=r"q\.jsonl line 3: field 'dist' must be a list of K=10.*int10"):
        read_predictions(path)


def test_rows_checked_against_dimensions_and_range_of_the_schema(tmp_path):
    df = _rows(PAPER, n=3)
    with pytest.raises(PredictionsError, match=r"'motion_quality' is not one of \['overall_quality'\].*'mos9'"):
        write_predictions(tmp_path / "p.jsonl", df, _manifest(), schema=MOS9)
    df = _rows(INT10, n=3)
    df.loc[0, "target"] = 10.0  # fine on 1..10, outside the paper's 1..5
    write_predictions(tmp_path / "ok.jsonl", df, _manifest(), schema=INT10)
    with pytest.raises(PredictionsError, match=r"is not one of \['motion_quality'"):
        write_predictions(tmp_path / "bad.jsonl", df, _manifest(), schema=PAPER)
    with pytest.raises(PredictionsError, match="shape"):
        rows_from_distributions(["a"], "overall_quality", np.full((1, 9), 1 / 9), schema=QALIGN5)


# ------------------------------------------------------------------ metrics


def test_acc_tolerance_per_schema():
    assert M.acc_tolerance() == M.acc_tolerance(PAPER) == M.acc_tolerance(MOS9) == 0.5
    assert M.acc_tolerance(INT10) == 0.5 and M.acc_tolerance(QALIGN5) == 0.5
    quarter = make_schema("q", ["Overall Quality"], values=np.arange(0, 1.01, 0.25))
    assert M.acc_tolerance(quarter) == 0.125 and M.acc_label(0.125) == "Acc@0.125"


def test_mos9_metrics_on_both_scales_live_vqc_raw_range():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 2.5])
    p = np.array([1.5, 2.0, 3.5, 3.0, 4.5, 3.5])
    out = M.dimension_metrics(y, p, schema=LIVE, dimension="overall_quality")
    assert set(out) == {"schema", "raw"}
    mae = np.mean(np.abs(p - y))
    assert out["schema"]["mae"].value == pytest.approx(mae)
    assert out["raw"]["mae"].value == pytest.approx(mae * 25)  # 0-100 onto 1-5
    assert out["raw"]["rmse"].value == pytest.approx(out["schema"]["rmse"].value * 25)
    # Acc@0.5 on 1-5 is Acc@12.5 on 0-100: the same items count
    assert out["schema"]["acc"].value == pytest.approx(4 / 6) and out["raw"]["acc"].value == pytest.approx(4 / 6)
    for m in ("srcc", "plcc", "krcc"):
        assert out["raw"][m].value == pytest.approx(out["schema"][m].value)
    # no raw range: one scale
    assert set(M.dimension_metrics(y, p, schema=MOS9)) == {"schema"}


def test_int10_metrics_dmos_dimension_flipped_on_raw_scale():
    y = np.array([1.0, 4.0, 7.0, 10.0, 5.0])
    p = np.array([2.0, 4.0, 6.0, 9.0, 5.4])
    out = M.dimension_metrics(y, p, schema=INT10_DMOS, dimension="visual_quality")
    factor = 100 / 9
    assert out["schema"]["mae"].value == pytest.approx(np.mean(np.abs(p - y)))
    assert out["raw"]["mae"].value == pytest.approx(np.mean(np.abs(p - y)) * factor)
    assert out["schema"]["acc"].value == pytest.approx(2 / 5)  # |p - y| <= 0.5: the right integer
    assert out["raw"]["acc"].value == pytest.approx(2 / 5)
    assert out["raw"]["srcc"].value == pytest.approx(out["schema"]["srcc"].value)  # both sides flipped
    yr, pr = M.to_raw_scale(y, p, INT10_DMOS, "visual_quality")
    np.testing.assert_allclose(yr, 100 - (y - 1) * factor)
    assert set(M.dimension_metrics(y, p, schema=INT10_DMOS, dimension="temporal_consistency")) == {"schema"}


def test_calibration_on_k_levels():
    d = np.eye(10)[[0, 9, 4]] * 0.9 + 0.01
    cal = M.calibration(d, [1.0, 10.0, 6.0], schema=INT10)
    assert cal.accuracy == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"\[n, 10\].*'int10'"):
        M.calibration(np.full((2, 9), 1 / 9), [1.0, 2.0], schema=INT10)


# ------------------------------------------------------------------ tables


def test_table1_int10_dims_and_raw_columns(tmp_path):
    df = _rows(INT10_DMOS, n=8, seed=3)
    path = write_predictions(tmp_path / "p.jsonl", df, _manifest(), schema=INT10_DMOS)
    back, _ = read_predictions(path)
    wide, long = tables.table1({"m": back}, "expected_score")  # schema from the frame
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == [
        "Visual Quality", "Temporal Consistency", "Visual Quality (raw 0-100, lower is better)"]
    mae = long[(long["dimension"] == "visual_quality") & (long["metric"] == "mae")].iloc[0]
    assert mae["raw_value"] == pytest.approx(mae["value"] * 100 / 9) and mae["raw_range"] == "0-100"
    assert wide[("Visual Quality (raw 0-100, lower is better)", "MAE")].iloc[0] == pytest.approx(mae["raw_value"])
    acc = long[long["metric"] == "acc"]
    assert (acc["tolerance"] == 0.5).all()
    assert ("Visual Quality (raw 0-100, lower is better)", f"Acc@{0.5 * 100 / 9:g}") in wide.columns
    cm = tables.confusion(back, "temporal_consistency")
    assert cm.shape == (10, 10) and list(cm.index) == list(INT10.strings) and cm.to_numpy().sum() == 8
    assert list(tables.parse_failure_table({"m": back}).columns[:2]) == ["Visual Quality", "Temporal Consistency"]
    cal = tables.calibration_table({"m": back})
    assert list(cal["dimension"]) == ["visual_quality", "temporal_consistency"]


def test_table1_paper_has_no_raw_columns_and_old_labels():
    df = _rows(PAPER, n=8)
    wide, long = tables.table1({"m": df})
    assert not any("raw" in c for c in wide.columns.get_level_values(0))
    assert long["raw_value"].isna().all() and wide.columns[0] == ("Motion Quality", "Acc@0.5")


def test_all_items_failure_midpoint_on_the_schema():
    assert tables.failure_score() == 3.0 and tables.failure_score(INT10) == 5.5 and tables.failure_score(QALIGN5) == 3.0
