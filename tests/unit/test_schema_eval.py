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


# ------------------------------------------------------------------ the scorer's output


def test_scorer_columns_for_a_one_dimension_schema():
    from vqalib.inference.scorer import columns, dist_column

    fast = columns("fast", schema=LIVE)
    dims = [c for c in fast if c.endswith("_expected") or c.endswith("_argmax")]
    assert dims == ["overall_quality_expected", "overall_quality_argmax"]
    assert "overall_quality_expected_raw" in fast and not any(c.startswith("motion_") for c in fast)
    assert [c for c in fast if c.startswith("p_")] == [dist_column("overall_quality", s) for s in MOS9.strings]
    gen = columns("generate", schema=LIVE)
    assert gen.index("overall_quality_parsed") < gen.index("overall_quality_parsed_raw") < gen.index(
        "overall_quality_parse_status")
    q = columns("fast", schema=QALIGN5)
    assert [c for c in q if c.startswith("p_")] == [f"p_overall_quality_{w}" for w in QALIGN5.strings]
    assert "overall_quality_expected_raw" not in q
    assert columns("fast") == columns("fast", schema=PAPER) and len([c for c in columns("fast") if c.startswith("p_")]) == 45


def test_scorer_rows_and_prediction_rows_follow_the_schema():
    from types import SimpleNamespace

    from vqalib.inference.scorer import BatchResult, Scorer, columns, distributions, to_prediction_rows

    s = Scorer.__new__(Scorer)  # no model: the row builder only
    s.schema, s.mode, s.columns = LIVE, "generate", columns("generate", schema=LIVE)
    dist = np.zeros((1, 1, 9))
    dist[0, 0, [4, 6]] = 0.5  # levels 3.0 and 4.0
    parse = SimpleNamespace(scores={"overall_quality": 3.5}, status={"overall_quality": "ok"}, rationale="r")
    res = BatchResult(dist, np.array([[0.1]]), ["text"], [parse], ["generated"])
    row = s._row({"video_id": "v", "path": "/v.mp4"}, res, 0)
    assert row["overall_quality_expected"] == pytest.approx(3.5) and row["overall_quality_argmax"] == 3.0
    assert row["overall_quality_expected_raw"] == pytest.approx(62.5)  # (3.5 - 1) * 25
    assert row["overall_quality_parsed_raw"] == pytest.approx(62.5) and row["p_overall_quality_3.0"] == 0.5
    frame = pd.DataFrame([row], columns=s.columns)
    assert distributions(frame, schema=LIVE).shape == (1, 1, 9)
    long = to_prediction_rows(frame, schema=LIVE)
    assert list(long["dimension"]) == ["overall_quality"] and long.attrs["rating_schema"] == LIVE


def test_resume_with_another_schema_is_refused(tmp_path):
    from vqalib.inference.store import ResumeMismatch, RowStore, check_output, manifest_path, read_scores
    from vqalib.inference.scorer import columns

    out = tmp_path / "scores.csv"
    man = {"model": "m", "mode": "fast", "rating_schema": INT10.to_dict()}
    store = RowStore(out, columns("fast", schema=INT10), man)
    store.open()
    store.append([{"video_id": "a", "path": "/a.mp4", "status": "ok"}])
    RowStore(out, columns("fast", schema=INT10), man).open()  # same schema: resumes
    with pytest.raises(ResumeMismatch, match=r"rating_schema=the 'int10' rating schema \(K=10.*'mos9' rating schema \(K=9"):
        RowStore(out, columns("fast", schema=MOS9), {**man, "rating_schema": MOS9.to_dict()}).open()
    with pytest.raises(ResumeMismatch, match="'qalign5'"):
        check_output(out, {"model": "m", "mode": "fast", "rating_schema": QALIGN5.to_dict()})
    assert read_scores(out).attrs["rating_schema"] == INT10
    # an output written before schemas were saved is the paper's: a paper run resumes, another is refused
    old = tmp_path / "old.csv"
    RowStore(old, columns("fast"), {"model": "m", "mode": "fast"}).open()
    assert "rating_schema" not in json.loads(manifest_path(old).read_text())
    RowStore(old, columns("fast"), {"model": "m", "mode": "fast", "rating_schema": PAPER.to_dict()}).open()
    with pytest.raises(ResumeMismatch, match="'paper' rating schema"):
        check_output(old, {"model": "m", "mode": "fast", "rating_schema": MOS9.to_dict()})


# ------------------------------------------------------------------ benchmarks


def _bench(mos):
    from types import SimpleNamespace

    ids = [f"v{i}" for i in range(len(mos))]
    mos = np.asarray(mos, float)
    avail = pd.DataFrame({"video_id": ids, "mos": mos * 20, "mos_1to5": mos})
    return SimpleNamespace(name="KoNViD-1k", split="all", available=avail, missing=pd.DataFrame(), n_listed=len(ids),
                           label_file="labels.csv", label_sha256="x", label_rows=len(ids))


TWO = make_schema("two", [Dimension("technical", "Technical Quality"), Dimension("aesthetic", "Aesthetic Quality")],
                  values=MOS9.values, strings=MOS9.strings, benchmark_dimension="technical")


def _long(schema, values):
    rows = [{"video_id": f"v{i}", "dimension": k, "expected_score": v[j]}
            for i, v in enumerate(values) for j, k in enumerate(schema.keys)]
    return pd.DataFrame(rows)


def test_benchmark_answered_by_the_benchmark_dimension():
    from vqalib.inference.benchmark import table2
    from vqalib.eval.combine import combination_dims, combine_predictions

    mos = [1.5, 2.0, 3.1, 3.9, 4.4, 2.7]
    tech = [1.0, 2.5, 3.0, 4.5, 4.0, 2.0]  # SRCC with the MOS 0.8286 ...
    aest = [5.0, 4.0, 3.0, 2.0, 1.0, 1.5]  # ... the aesthetic score runs against it
    preds = {"m": _long(TWO, list(zip(tech, aest)))}
    t = table2(_bench(mos), preds, n_boot=0, schema=TWO)
    assert t.loc[0, "combination"] == "technical" and t.loc[0, "combined_dimensions"] == "technical"
    from scipy.stats import spearmanr

    assert t.loc[0, "SRCC"] == pytest.approx(spearmanr(mos, tech).statistic)
    # without a benchmark dimension: the mean of the quality dimensions
    both = rating.schema_from_dict({**TWO.to_dict(), "benchmark_dimension": None})
    t2 = table2(_bench(mos), {"m": _long(both, list(zip(tech, aest)))}, n_boot=0, schema=both)
    assert t2.loc[0, "combination"] == "mean_quality" and t2.loc[0, "combined_dimensions"] == "technical+aesthetic"
    mean = (np.array(tech) + np.array(aest)) / 2
    assert t2.loc[0, "SRCC"] == pytest.approx(spearmanr(mos, mean).statistic)
    # INT10: text alignment is not a quality dimension
    assert combination_dims("benchmark", INT10) == ("visual_quality", "temporal_consistency")
    assert combination_dims("benchmark", MOS9) == ("overall_quality",)
    assert combination_dims("benchmark") == ("motion_quality", "aesthetic_quality", "content_quality", "clarity_quality")
    with pytest.raises(ValueError, match="'mos9' rating schema"):
        combination_dims("motion_quality", MOS9)
    c = combine_predictions(_long(INT10, [[2.0, 4.0, 10.0]]), "benchmark", schema=INT10)
    assert c.loc[0, "score"] == 3.0


def test_benchmark_mos_on_the_schema_scale_for_mae():
    from vqalib.eval.combine import benchmark_scores

    joined, info = benchmark_scores(_bench([1.0, 3.0, 5.0]), _long(INT10, [[1, 1, 1], [5.5, 5.5, 1], [10, 10, 1]]),
                                    "benchmark", schema=INT10)
    np.testing.assert_allclose(joined["mos_schema"], [1.0, 5.5, 10.0])
    assert info["combined_dimensions"] == ["visual_quality", "temporal_consistency"]
    joined, _ = benchmark_scores(_bench([1.0, 3.0, 5.0]), _long(PAPER, [[1] * 5] * 3), "mean_quality")
    assert (joined["mos_schema"] == joined["mos_1to5"]).all()


# ------------------------------------------------------------------ reports


def test_report_tables_over_the_schema_dimensions():
    from vqalib.report.compare import compare_methods, own_keyword_levels, summary_table
    from vqalib.report.training import paired_change

    a, b = _rows(INT10, n=8, seed=1), _rows(INT10, n=8, seed=2)
    change = paired_change(a, b, readout="expected_score", n_boot=20)
    assert list(change["dimension"]) == list(INT10.keys)
    boot = compare_methods({"sft": [a], "aso": [b]}, n_boot=20, readout="expected_score")
    assert boot.attrs["rating_schema"] == INT10
    assert list(dict.fromkeys(boot["dimension"])) == [*INT10.keys, "mean"]
    runs = pd.DataFrame({"method": ["sft", "aso"], "seed": [0, 0], "steps": [1, 2], "train_seconds": [1.0, 1.0],
                         "max_train_seconds": [1.0, 1.0], "setup_s": [0.0, 0.0]})
    table = summary_table(runs, boot)
    assert {"SRCC Visual Quality", "SRCC Text Alignment", "SRCC mean"} <= set(table.columns)
    text = "The overall quality looks Good, sharp.\nOverall Quality: good"
    assert own_keyword_levels(text, schema=QALIGN5) == [4.0]
    assert own_keyword_levels("Motion Quality is Subpar.\nMotion Quality: 2.5") == [2.5, None, None, None, None]


def test_results_of_a_run_on_another_schema(tmp_path):
    from vqalib.report.results import result_schema, run_schema

    assert run_schema(tmp_path) == PAPER
    INT10.save(tmp_path / "checkpoints" / "aso")
    assert run_schema(tmp_path) == INT10
    assert result_schema({"rating_schema": INT10.to_dict()}) == INT10 and result_schema({}) == PAPER


# ------------------------------------------------------------------ predict and score on the tiny model


@pytest.fixture(scope="module")
def tiny():
    from vqalib.model import loading

    model, proc = loading.load_model_and_processor("tiny")
    return model.eval(), proc


SAMPLING = SamplingConfig(fps=2.0, max_frames=8, max_pixels=112 * 112, min_pixels=112 * 112)


@pytest.mark.parametrize("schema", [INT10, QALIGN5], ids=lambda s: s.name)
def test_predict_rows_on_the_schema(tiny, tmp_path, schema):
    from model_helpers import write_clip

    from vqalib.eval import predict
    from vqalib.eval.predictions_file import validate_predictions

    model, proc = tiny
    paths = [write_clip(tmp_path / f"c{i}.mp4", seed=i) for i in range(2)]
    key = schema.keys[0]
    items = pd.DataFrame({"video_id": ["a", "b"], "path": [str(p) for p in paths], key: [schema.hi, None]})
    res = predict.predict(model, proc, items, sampling=SAMPLING, max_new_tokens=8, batch_size=2, schema=schema)
    df = res.rows
    assert len(df) == 2 * schema.n_dims and list(dict.fromkeys(df["dimension"])) == list(schema.keys)
    assert df["dist"].map(len).eq(schema.n_levels).all()
    validate_predictions(df, schema=schema)
    assert df.loc[(df.video_id == "a") & (df.dimension == key), "target"].item() == schema.hi
    assert res.manifest["rating_schema"] == schema.to_dict()
    assert set(res.manifest["parse_rate"]) == set(schema.keys)
    assert set(res.manifest["parse_status_counts"]) == set(schema.keys)


def test_checkpoint_schema_and_data_schema(tmp_path):
    from types import SimpleNamespace

    from vqalib.eval.predict import checkpoint_schema, data_schema, items_from

    assert checkpoint_schema("tiny") is None and checkpoint_schema(tmp_path) is None
    MOS9.save(tmp_path)
    (tmp_path / "adapter").mkdir()
    assert checkpoint_schema(tmp_path) == MOS9 and checkpoint_schema(tmp_path / "adapter") == MOS9
    ds = SimpleNamespace(schema=INT10)
    assert data_schema(ds) == INT10 and data_schema(pd.DataFrame()) == PAPER
    with pytest.raises(ValueError, match="'int10'.*'mos9'"):
        data_schema(ds, MOS9)
    items = items_from(pd.DataFrame({"video_id": ["a"], "path": ["/a.mp4"]}), schema=QALIGN5)
    assert list(items.columns) == ["video_id", "path", "overall_quality"]


def test_scorer_fast_run_one_dimension_schema(tiny, tmp_path):
    from model_helpers import write_clip

    from vqalib.inference.scorer import Scorer, fast_answer
    from vqalib.inference.store import manifest_path, read_scores

    model, proc = tiny
    assert fast_answer(MOS9) == "Overall Quality: 3.0" and fast_answer(QALIGN5) == "Overall Quality: fair"
    paths = [write_clip(tmp_path / f"c{i}.mp4", seed=i) for i in range(2)]
    scorer = Scorer(model, processor=proc, sampling=SAMPLING, batch_size=2, schema=LIVE)
    run = scorer.score([str(p) for p in paths], tmp_path / "scores.csv")
    back = read_scores(tmp_path / "scores.csv")
    assert back.attrs["rating_schema"] == LIVE and json.loads(manifest_path(tmp_path / "scores.csv").read_text())[
        "rating_schema"] == LIVE.to_dict()
    dist = back[[f"p_overall_quality_{s}" for s in MOS9.strings]].to_numpy(float)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(back["overall_quality_expected"], dist @ MOS9.levels, atol=1e-5)
    np.testing.assert_allclose(back["overall_quality_expected_raw"], (back["overall_quality_expected"] - 1) * 25,
                               atol=1e-4)
    assert not any(c.startswith("motion_quality") for c in back.columns) and run.n_scored == 2


def test_missing_labels_are_masked_and_counted():
    df = _rows(INT10, n=6, seed=4)
    df.loc[(df["dimension"] == "text_alignment") & df["video_id"].isin(["v0", "v2"]), "target"] = np.nan
    long = tables.metrics_long({"m": df}, "expected_score", metrics=("mae",))
    row = long.set_index("dimension").loc["text_alignment"]
    assert row["n_items"] == 4 and row["n_unlabelled"] == 2
    assert long.set_index("dimension").loc["visual_quality", "n_unlabelled"] == 0
    keep = df[(df["dimension"] == "text_alignment") & df["target"].notna()]
    assert row["value"] == pytest.approx(np.mean(np.abs(keep["expected_score"] - keep["target"])))
