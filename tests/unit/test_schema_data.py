"""Issue 23, data: a dataset carries its rating schema; validation, aggregation, soft targets and the CSV
adapter read the dimensions, the levels and the raw scales from it (PAPER, MOS9, QALIGN5, INT10, custom)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vqalib.data.dataset import (DataValidationError, aggregate, from_ratings_csv, label_coverage, label_targets,
                                 labelled_items, labels_wide, load_dataset, map_scale, save_dataset)
from vqalib.data.synth import write_mp4
from vqalib.schema import levels as L
from vqalib.schema import rating as RS
from vqalib.schema.rating import INT10, MOS9, PAPER, QALIGN5, SCHEMA_FILE

RATERS = ("a", "b", "c")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _folder(tmp_path: Path, schema: RS.RatingSchema, scores: dict[str, list[float]], save_schema: bool = True,
            rows: list[dict] | None = None) -> Path:
    """Two tiny real clips; ``scores[vid]`` = the three raters' scores, given to every dimension of ``schema``."""
    videos, ratings = [], []
    for i, vid in enumerate(("v1", "v2")):
        (tmp_path / "clips").mkdir(parents=True, exist_ok=True)
        write_mp4(tmp_path / "clips" / f"{vid}.mp4", np.full((4, 16, 16, 3), 60 + 80 * i, dtype=np.uint8), fps=8)
        videos.append({"video_id": vid, "path": f"clips/{vid}.mp4", "split": "train"})
        for rater, sc in zip(RATERS, scores.get(vid, [])):
            for dim in schema.keys:
                ratings.append({"video_id": vid, "rater": rater, "phase": "final", "dimension": dim, "score": sc,
                                "tags": [], "comment": ""})
    _write_jsonl(tmp_path / "videos.jsonl", videos)
    _write_jsonl(tmp_path / "ratings.jsonl", ratings if rows is None else rows)
    if save_schema:
        schema.save(tmp_path)
    return tmp_path


# ---- the schema travels with the folder ----------------------------------------------------------------------------


def test_a_folder_without_rating_schema_json_is_the_paper_schema_and_save_writes_it(tmp_path):
    root = _folder(tmp_path / "d", PAPER, {"v1": [2.0, 2.5, 3.0], "v2": [4.0, 4.0, 4.5]}, save_schema=False)
    ds = load_dataset(root)
    assert ds.schema == PAPER and not (root / SCHEMA_FILE).exists()
    out = save_dataset(ds, tmp_path / "copy")
    assert RS.load_schema(out / SCHEMA_FILE) == PAPER
    assert load_dataset(out).schema == PAPER


@pytest.mark.parametrize("schema", [MOS9, QALIGN5, INT10], ids=lambda s: s.name)
def test_load_reads_the_saved_schema_and_save_keeps_it(tmp_path, schema):
    hi = schema.values[-1]
    root = _folder(tmp_path / "d", schema, {"v1": [schema.values[0]] * 3, "v2": [hi, hi, schema.values[-2]]})
    ds = load_dataset(root)
    assert ds.schema == schema and set(ds.ratings.dimension) == set(schema.keys)
    back = load_dataset(save_dataset(ds, tmp_path / "copy"))
    assert back.schema == schema and back.schema.fingerprint() == schema.fingerprint()
    assert ds.subset(["v1"]).schema == schema
    assert f"schema={schema.name!r}" in repr(ds)


def test_schema_argument_states_it_for_a_folder_without_one_and_must_agree_with_a_saved_one(tmp_path):
    root = _folder(tmp_path / "d", INT10, {"v1": [1, 2, 10], "v2": [7, 7, 8]}, save_schema=False)
    with pytest.raises(DataValidationError):  # read as the paper's: unknown dimensions
        load_dataset(root)
    assert load_dataset(root, schema="int10").schema == INT10
    INT10.save(root)
    assert load_dataset(root, schema=INT10).schema == INT10
    with pytest.raises(ValueError, match="rating_schema.json holds the rating schema .*int10.* but schema=.*mos9"):
        load_dataset(root, schema="mos9")


# ---- validation against the schema ---------------------------------------------------------------------------------


def _issues(root: Path, **kw):
    ds = load_dataset(root, strict=False, **kw)
    return ds, {i.kind: i for i in ds.report.issues}


def test_int10_levels_display_names_range_and_grid(tmp_path):
    rows = [{"video_id": "v1", "rater": r, "phase": "final", "dimension": "Visual Quality", "score": s}
            for r, s in zip(RATERS, (1, 10, 5))]
    rows += [{"video_id": "v2", "rater": "a", "phase": "final", "dimension": "visual_quality", "score": 11},
             {"video_id": "v2", "rater": "b", "phase": "final", "dimension": "visual_quality", "score": 7.5},
             {"video_id": "v2", "rater": "c", "phase": "final", "dimension": "motion_quality", "score": 3}]
    root = _folder(tmp_path, INT10, {}, rows=rows)
    ds, issues = _issues(root, min_raters=1)
    assert set(issues) == {"out_of_range", "off_grid", "unknown_dimension", "too_few_raters"}  # v2 has none left
    assert str(issues["out_of_range"]) == ("ratings.jsonl line 4: field 'score': score 11 is outside 1-10. Fix: map "
                                           "the scale to 1-10 first (from_ratings_csv(scale=...) does this)")
    assert str(issues["off_grid"]) == ("ratings.jsonl line 5: field 'score': score 7.5 is not on the 1 grid (1-10). "
                                       "Fix: snap it (schema.snap(7.5) = 8) or fix the value, or, for a mean opinion "
                                       "score, write it as a MOS row (rater 'mos')")
    assert "use one of ['visual_quality', 'temporal_consistency', 'text_alignment']" in issues["unknown_dimension"].fix
    assert ds.ratings[ds.ratings.video_id == "v1"].dimension.unique().tolist() == ["visual_quality"]
    assert sorted(ds.ratings.score[ds.ratings.video_id == "v1"]) == [1.0, 5.0, 10.0]


def test_qalign5_word_levels_and_tags_of_a_dimension_without_tags(tmp_path):
    rows = [{"video_id": "v1", "rater": r, "phase": "final", "dimension": "overall_quality", "score": s, "tags": []}
            for r, s in zip(RATERS, (1, 3, 5))]
    rows += [{"video_id": "v2", "rater": "a", "phase": "final", "dimension": "overall_quality", "score": 2.5},
             {"video_id": "v2", "rater": "b", "phase": "final", "dimension": "overall_quality", "score": 4,
              "tags": ["blur"]}]
    _, issues = _issues(_folder(tmp_path, QALIGN5, {}, rows=rows), min_raters=1)
    assert issues["off_grid"].message == "score 2.5 is not on the 1 grid (1-5)"
    assert issues["unknown_tag"].message == "tag(s) ['blur'] are not tags of overall_quality"
    assert "overall_quality has no tags in the 'qalign5' rating schema" in issues["unknown_tag"].fix


def test_custom_schema_tags_are_the_dimensions_tags(tmp_path):
    schema = RS.make_schema("divide", [{"key": "technical", "name": "Technical", "tags": ["blur", "noise"]},
                                       {"key": "aesthetic", "name": "Aesthetic"}], values=[1, 2, 3, 4, 5])
    rows = [{"video_id": "v1", "rater": r, "phase": "final", "dimension": "technical", "score": 3, "tags": ["blur"]}
            for r in RATERS]
    rows += [{"video_id": "v1", "rater": "a", "phase": "final", "dimension": "technical", "score": 3,
              "tags": ["flicker"]}]
    ds, issues = _issues(_folder(tmp_path, schema, {}, rows=rows), min_raters=1)
    assert issues["unknown_tag"].fix == "use tags from ['blur', 'noise']"
    assert ds.ratings.tags.tolist() == [["blur"]] * 3


def test_paper_messages_are_unchanged(tmp_path):
    rows = [{"video_id": "v1", "rater": "a", "phase": "final", "dimension": "clarity_quality", "score": 3.25}]
    _, issues = _issues(_folder(tmp_path, PAPER, {}, rows=rows, save_schema=False), min_raters=1)
    assert str(issues["off_grid"]).endswith("score 3.25 is not on the 0.5 grid (1.0-5.0). Fix: snap it "
                                            "(levels.snap_to_grid(3.25) = 3.5) or fix the value")


# ---- MOS rows ------------------------------------------------------------------------------------------------------


def _mos_rows(values, std=None):
    out = []
    for vid, v in values.items():
        row = {"video_id": vid, "rater": "mos", "phase": "final", "dimension": "overall_quality", "score": v}
        if std is not None:
            row["std"] = std.get(vid)
        out.append(row)
    return out


def test_mos_rows_are_not_snapped_carry_std_and_need_no_raters(tmp_path):
    root = _folder(tmp_path, MOS9, {}, rows=_mos_rows({"v1": 3.46, "v2": 2.16}, {"v1": 0.5, "v2": None}))
    ds = load_dataset(root)  # strict, min_raters 3: a MOS row has enough raters
    lab = aggregate(ds).set_index("video_id")
    assert lab.loc["v1", "mean"] == 3.46 and lab.loc["v1", "score"] == 3.5 and lab.loc["v1", "std"] == 0.5
    assert lab.loc["v2", "score"] == 2.0 and np.isnan(lab.loc["v2", "std"]) and lab.loc["v2", "n_raters"] == 1


def test_mos_row_rules(tmp_path):
    rows = _mos_rows({"v1": 3.46}, {"v1": -1})
    rows += [{"video_id": "v2", "rater": "mos", "phase": "pilot", "dimension": "overall_quality", "score": 3.0},
             {"video_id": "v2", "rater": "mos", "phase": "final", "dimension": "overall_quality", "score": 5.5},
             {"video_id": "v2", "rater": "mos", "phase": "final", "dimension": "overall_quality", "score": 4.2},
             {"video_id": "v2", "rater": "a", "phase": "final", "dimension": "overall_quality", "score": 4.0},
             {"video_id": "v2", "rater": "b", "phase": "final", "dimension": "overall_quality", "score": 4.0,
              "std": 0.3}]
    _, issues = _issues(_folder(tmp_path, MOS9, {}, rows=rows), min_raters=1)
    assert issues["bad_phase"].message == "a MOS row (rater 'mos') has phase 'pilot'"
    assert issues["out_of_range"].line == 3
    assert issues["mixed_mos"].line == 5 and "keep either the per-rater ratings or one MOS row" in issues["mixed_mos"].fix
    ds = load_dataset(tmp_path, strict=False, min_raters=1)
    msgs = [i.message for i in ds.report.issues if i.kind == "bad_value"]
    assert msgs == ["std=-1.0 is not a number >= 0", "std=0.3 on a per-rater rating (rater 'b')"]


# ---- missing labels ------------------------------------------------------------------------------------------------


def _int10_partial(tmp_path):
    rows = []
    for r, s in zip(RATERS, (7, 8, 9)):
        rows += [{"video_id": "v1", "rater": r, "phase": "final", "dimension": d, "score": s} for d in INT10.keys]
        rows += [{"video_id": "v2", "rater": r, "phase": "final", "dimension": "visual_quality", "score": s - 5}]
    return _folder(tmp_path, INT10, {}, rows=rows)


def test_a_clip_may_lack_dimensions_nan_never_filled_and_counted(tmp_path):
    ds = load_dataset(_int10_partial(tmp_path))  # strict: v2 lacks two dimensions, not an error
    wide = labels_wide(aggregate(ds), schema=INT10)
    assert list(wide.columns) == list(INT10.keys)
    assert wide.loc["v2", "visual_quality"] == 3.0 and wide.loc["v2"].isna().sum() == 2
    items = labelled_items(ds)
    assert items.video_id.tolist() == ["v1", "v2"] and items[list(INT10.keys)].isna().sum().sum() == 2
    cov = label_coverage(ds)
    assert cov["n_videos"] == 2 and cov["n_labels"] == 4 and cov["n_missing"] == 2
    assert cov["missing_by_dimension"] == {"visual_quality": 0, "temporal_consistency": 1, "text_alignment": 1}
    assert items.attrs["label_coverage"] == cov
    targets = label_targets(ds)
    assert len(targets) == 4 and set(targets[targets.video_id == "v2"].dimension) == {"visual_quality"}


def test_the_paper_schema_still_rejects_a_clip_lacking_a_dimension(tmp_path):
    rows = [{"video_id": v, "rater": r, "phase": "final", "dimension": d, "score": 3.0}
            for v in ("v1", "v2") for r in RATERS for d in L.DIMENSION_KEYS if not (v == "v2" and d == "clarity_quality")]
    root = _folder(tmp_path, PAPER, {}, rows=rows, save_schema=False)
    with pytest.raises(DataValidationError) as err:
        load_dataset(root)
    assert err.value.report.counts() == {"too_few_raters": 1}
    assert load_dataset(root, allow_missing=True).ratings.video_id.nunique() == 2


def test_a_clip_with_no_rating_at_all_is_still_reported(tmp_path):
    rows = [{"video_id": "v1", "rater": r, "phase": "final", "dimension": "visual_quality", "score": 5}
            for r in RATERS]
    ds = load_dataset(_folder(tmp_path, INT10, {}, rows=rows), strict=False)
    assert ds.report.counts() == {"too_few_raters": 1} and ds.report.issues[0].video_id == "v2"
    assert label_coverage(ds)["videos_without_labels"] == ["v2"]


# ---- aggregation and targets ---------------------------------------------------------------------------------------


def test_aggregate_snaps_with_the_schema_and_orders_its_dimensions(tmp_path):
    ds = load_dataset(_folder(tmp_path, INT10, {"v1": [1, 2, 2], "v2": [9, 10, 10]}))
    lab = aggregate(ds)
    assert lab.dimension.tolist()[:3] == list(INT10.keys)
    v1 = lab[lab.video_id == "v1"].iloc[0]
    assert v1["mean"] == pytest.approx(5 / 3) and v1["score"] == 2.0  # nearest integer level, not the 0.5 grid
    assert not lab.high_variance.any()  # threshold 1.0 on 1-5 is 2.25 on 1-10
    assert aggregate(ds, schema=INT10).equals(lab)


def test_label_targets_nearest_gaussian_histogram(tmp_path):
    ds = load_dataset(_folder(tmp_path, QALIGN5, {"v1": [2, 3, 3], "v2": [5, 5, 5]}))
    t = label_targets(ds, rule="nearest").set_index("video_id")
    np.testing.assert_array_equal(t.loc["v1", "target"], [0, 0, 1, 0, 0])
    h = label_targets(ds, rule="histogram").set_index("video_id")
    np.testing.assert_allclose(h.loc["v1", "target"], [0, 1 / 3, 2 / 3, 0, 0])
    g = label_targets(ds, rule="gaussian").set_index("video_id")
    want = QALIGN5.target(8 / 3, float(np.std([2, 3, 3], ddof=1)), rule="gaussian")
    np.testing.assert_allclose(g.loc["v1", "target"], want)
    assert g.loc["v1", "target"].sum() == pytest.approx(1) and g.loc["v1", "target"][1] > 0.1
    np.testing.assert_array_equal(g.loc["v2", "target"], [0, 0, 0, 0, 1])  # std 0: one-hot


def test_label_targets_gaussian_from_a_mos_rows_std_and_histogram_refused(tmp_path):
    schema = RS.schema_from_dict({**MOS9.to_dict(), "target_rule": "gaussian"})
    root = _folder(tmp_path, schema, {}, rows=_mos_rows({"v1": 3.2, "v2": 4.9}, {"v1": 0.6, "v2": None}))
    t = label_targets(load_dataset(root)).set_index("video_id")
    np.testing.assert_allclose(t.loc["v1", "target"], MOS9.target(3.2, 0.6, rule="gaussian"))
    assert len(t.loc["v1", "target"]) == 9 and t.loc["v2", "target"][-1] == 1.0
    with pytest.raises(ValueError, match="has a MOS row"):
        label_targets(load_dataset(root), rule="histogram")


def test_paper_targets_are_one_hot_at_the_paper_label(tmp_path):
    rows = [{"video_id": v, "rater": r, "phase": "final", "dimension": d, "score": s}
            for v, base in (("v1", 2.0), ("v2", 4.0)) for r, s in zip(RATERS, (base, base + 0.5, base + 0.5))
            for d in L.DIMENSION_KEYS]
    ds = load_dataset(_folder(tmp_path, PAPER, {}, rows=rows, save_schema=False))
    t = label_targets(ds)
    lab = aggregate(ds)
    assert t.score.tolist() == lab.score.tolist()
    assert [L.LEVELS[int(np.argmax(x))] for x in t.target] == lab.score.tolist()


# ---- from_ratings_csv ----------------------------------------------------------------------------------------------


def _clip(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_mp4(folder / name, np.full((4, 16, 16, 3), 90, dtype=np.uint8), fps=8)


def test_from_ratings_csv_with_a_schema_reads_each_dimensions_raw_range(tmp_path):
    schema = RS.make_schema("maxwell-like", [{"key": "overall", "name": "Overall", "raw_range": [1, 5]},
                                             {"key": "sharpness", "name": "Sharpness", "raw_range": [-1, 1]}],
                            values=PAPER.values, strings=PAPER.strings)
    _clip(tmp_path, "a.mp4")
    (tmp_path / "r.csv").write_text("video,r1_overall,r2_overall,r1_sharpness,r2_sharpness\n"
                                    "a.mp4,4,4.5,-1,0.5\n")
    ds = from_ratings_csv(tmp_path / "r.csv", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)", schema=schema,
                          min_raters=2)
    got = ds.ratings.set_index(["rater", "dimension"]).score
    assert got[("r1", "sharpness")] == 1.0 and got[("r2", "sharpness")] == 4.0  # -1 -> 1, 0.5 -> 4.0
    assert got[("r2", "overall")] == 4.5
    assert ds.schema == schema and ds.info["scale"] == {"overall": [1.0, 5.0], "sharpness": [-1.0, 1.0]}
    (tmp_path / "r.csv").write_text("video,r1_overall,r2_overall,r1_sharpness,r2_sharpness\na.mp4,4,4.5,-2,0.5\n")
    bad = from_ratings_csv(tmp_path / "r.csv", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)", schema=schema,
                           min_raters=1, strict=False)
    assert [i.message for i in bad.report.issues if i.kind == "out_of_range"] == [
        "score -2 (r1, sharpness) is outside the declared scale (-1.0, 1.0)"]


def test_from_ratings_csv_dmos_is_flipped(tmp_path):
    dmos = RS.make_schema("live-dmos", [{"key": "quality", "name": "Quality", "raw_range": [0, 100],
                                         "higher_is_better": False}], values=[1, 2, 3, 4, 5])
    _clip(tmp_path, "a.mp4")
    (tmp_path / "d.csv").write_text("video,rater,dimension,dmos\na.mp4,x,quality,0\na.mp4,y,quality,25\n"
                                    "a.mp4,z,quality,100\n")
    ds = from_ratings_csv(tmp_path / "d.csv", rater_col="rater", dimension_col="dimension", score_col="dmos",
                          schema=dmos)
    assert ds.ratings.set_index("rater").score.to_dict() == {"x": 5.0, "y": 4.0, "z": 1.0}
    assert ds.ratings.raw_score.tolist() == [0.0, 25.0, 100.0]
    back = load_dataset(save_dataset(ds, tmp_path / "saved"))
    assert back.schema == dmos and back.ratings.score.tolist() == [5.0, 4.0, 1.0]


def test_from_ratings_csv_int10_explicit_scale_and_snap(tmp_path):
    _clip(tmp_path, "a.mp4")
    (tmp_path / "s.csv").write_text("video,rater,dimension,score\na.mp4,x,Visual Quality,0\na.mp4,y,visual_quality,55\n"
                                    "a.mp4,z,visual_quality,100\n")
    ds = from_ratings_csv(tmp_path / "s.csv", rater_col="rater", dimension_col="dimension", score_col="score",
                          scale=(0, 100), schema="int10")
    assert ds.ratings.score.tolist() == [1.0, 6.0, 10.0]  # 55 -> 5.95 -> 6
    assert ds.info["scale"] == [0.0, 100.0] and ds.schema == INT10


def test_map_scale_default_is_the_paper_formula():
    x = np.linspace(0, 100, 41)
    assert np.array_equal(map_scale(x, 0, 100), L.SCORE_MIN + (L.SCORE_MAX - L.SCORE_MIN) * (x - 0) / 100)
    assert map_scale(50, 0, 100, schema="int10") == 5.5


def test_from_ratings_csv_mos_table_with_std_columns_two_dimensions(tmp_path):
    divide = RS.make_schema("divide3k", [{"key": "aesthetic", "name": "Aesthetic Quality", "raw_range": [0, 1]},
                                         {"key": "technical", "name": "Technical Quality", "raw_range": [0, 1]}],
                            values=PAPER.values, strings=PAPER.strings, target_rule="gaussian")
    _clip(tmp_path, "a.mp4")
    _clip(tmp_path, "b.mp4")
    (tmp_path / "divide.csv").write_text("video,aesthetic,technical,technical_sd\na.mp4,0.62,0.55,0.05\n"
                                         "b.mp4,0.31,,0.1\n")
    ds = from_ratings_csv(tmp_path / "divide.csv", score_columns={"aesthetic": ("aesthetic", "mos"),
                                                                   "technical": ("technical", "mos")},
                          std_columns={"technical": "technical_sd"}, snap=False, schema=divide)
    r = ds.ratings.set_index(["video_id", "dimension"])
    assert r.loc[("a.mp4", "aesthetic"), "score"] == pytest.approx(3.48)  # 1 + 4 * 0.62, not snapped
    assert r.loc[("a.mp4", "technical"), "std"] == pytest.approx(0.2)  # 0.05 on 0-1 is 0.2 on 1-5
    assert np.isnan(r.loc[("a.mp4", "aesthetic"), "std"]) and ("b.mp4", "technical") not in r.index
    cov = label_coverage(ds)
    assert cov["n_missing"] == 1 and cov["missing_by_dimension"] == {"aesthetic": 0, "technical": 1}
    t = label_targets(ds).set_index(["video_id", "dimension"])
    np.testing.assert_allclose(t.loc[("a.mp4", "technical"), "target"], divide.target(3.2, 0.2, rule="gaussian"))
    with pytest.raises(ValueError, match="std_columns"):
        from_ratings_csv(tmp_path / "divide.csv", score_columns={"aesthetic": ("aesthetic", "mos")},
                         std_columns={"aesthetic": "nope"}, snap=False, schema=divide)
