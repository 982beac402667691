"""Data layer: loading, one test per validation error class, aggregation, splits, CSV adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vqalib.schema import levels as L
from vqalib.data.dataset import (DataValidationError, aggregate, assign_splits, from_ratings_csv, labelled_items,
                         labels_wide, load_dataset, map_scale, save_dataset, split_of)
from vqalib.data.synth import write_mp4

RATERS = ("a", "b", "c")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _tiny_video(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, np.full((4, 16, 16, 3), value, dtype=np.uint8), fps=8)


@pytest.fixture
def tiny(tmp_path) -> Path:
    """Two real 4-frame mp4 clips, 3 raters x 5 dimensions (final) + 3 x 5 (pilot) each."""
    videos, ratings, rationales = [], [], []
    for i, vid in enumerate(("v1", "v2")):
        _tiny_video(tmp_path / "clips" / f"{vid}.mp4", 60 + 80 * i)
        videos.append({"video_id": vid, "path": f"clips/{vid}.mp4", "duration": 0.5, "fps": 8.0, "width": 16,
                       "height": 16, "category": "test", "source": "unit", "split": "train"})
        for phase in ("pilot", "final"):
            for j, rater in enumerate(RATERS):
                for dim in L.DIMENSION_KEYS:
                    ratings.append({"video_id": vid, "rater": rater, "phase": phase, "dimension": dim,
                                    "score": 2.0 + i + 0.5 * j, "tags": [], "comment": ""})
        for dim in L.DIMENSION_KEYS:
            rationales.append({"video_id": vid, "dimension": dim, "rationale": f"{dim} looks fine."})
    _write_jsonl(tmp_path / "videos.jsonl", videos)
    _write_jsonl(tmp_path / "ratings.jsonl", ratings)
    _write_jsonl(tmp_path / "rationales.jsonl", rationales)
    return tmp_path


def _edit_rating(folder: Path, line: int, **changes) -> None:
    path = folder / "ratings.jsonl"
    rows = [json.loads(t) for t in path.read_text().splitlines()]
    rows[line - 1].update(changes)
    _write_jsonl(path, rows)


def _only_issue(folder: Path, kind: str, **kw):
    with pytest.raises(DataValidationError) as err:
        load_dataset(folder, **kw)
    issues = [i for i in err.value.report.issues if i.kind == kind]
    assert issues, f"expected a {kind} issue, got {err.value.report.summary()}"
    return issues[0], err.value


def test_clean_dataset_loads_strict(tiny):
    ds = load_dataset(tiny)
    assert len(ds.videos) == 2 and len(ds.ratings) == 2 * 2 * 3 * 5 and len(ds.rationales) == 10
    assert ds.video_path("v1") == (tiny / "clips" / "v1.mp4").resolve()
    report = load_dataset(tiny, strict=False).report
    assert report.ok and report.n_kept["ratings"] == 60
    assert ds.report.ok  # strict mode keeps its (empty) report too


def test_off_grid_score_names_file_line_field_and_fix(tiny):
    # line 16 = v1, first final-phase row (rater a, motion_quality)
    _edit_rating(tiny, 16, score=3.25)
    issue, err = _only_issue(tiny, "off_grid")
    assert (issue.file, issue.line, issue.field) == ("ratings.jsonl", 16, "score")
    assert "3.25 is not on the 0.5 grid" in str(err) and "snap_to_grid(3.25) = 3.5" in str(err)


def test_out_of_range_score(tiny):
    _edit_rating(tiny, 3, score=7.0)
    issue, err = _only_issue(tiny, "out_of_range")
    assert issue.line == 3 and "7 is outside 1.0-5.0" in issue.message and "scale" in issue.fix


def test_unknown_dimension(tiny):
    _edit_rating(tiny, 2, dimension="sharpness")
    issue, _ = _only_issue(tiny, "unknown_dimension")
    assert issue.line == 2 and issue.field == "dimension" and "'sharpness'" in issue.message
    assert "clarity_quality" in issue.fix


def test_display_names_are_accepted_as_dimensions(tiny):
    _edit_rating(tiny, 1, dimension="Motion Quality")
    ds = load_dataset(tiny)
    assert set(ds.ratings.dimension) == set(L.DIMENSION_KEYS)


def test_unknown_tag(tiny):
    _edit_rating(tiny, 5, tags=["blur", "flicker"])  # line 5 = clarity_quality; flicker is a motion tag
    issue, _ = _only_issue(tiny, "unknown_tag")
    assert issue.line == 5 and issue.field == "tags" and "['flicker']" in issue.message and "'blur'" in issue.fix


def test_duplicate_rating(tiny):
    rows = (tiny / "ratings.jsonl").read_text()
    (tiny / "ratings.jsonl").write_text(rows + rows.splitlines()[0] + "\n")
    issue, _ = _only_issue(tiny, "duplicate")
    assert issue.line == 61 and "already rated 'v1' / motion_quality in the pilot phase on line 1" in issue.message


def test_missing_video_file(tiny):
    (tiny / "clips" / "v2.mp4").unlink()
    issue, err = _only_issue(tiny, "missing_video_file")
    assert issue.file == "videos.jsonl" and issue.line == 2 and issue.field == "path" and "v2.mp4" in issue.message
    # lenient: v2 and all its rows are removed and every removed row is reported
    ds = load_dataset(tiny, strict=False)
    report = ds.report
    assert ds.videos.video_id.tolist() == ["v1"]
    assert report.counts() == {"missing_video_file": 1, "video_rejected": 30 + 5}
    assert report.n_kept["ratings"] == 30
    # check_files=False accepts it
    assert len(load_dataset(tiny, check_files=False).videos) == 2


def test_too_few_raters(tiny):
    path = tiny / "ratings.jsonl"
    rows = [json.loads(t) for t in path.read_text().splitlines()]
    rows = [r for r in rows if not (r["video_id"] == "v2" and r["rater"] == "c" and r["phase"] == "final"
                                    and r["dimension"] == "clarity_quality")]
    _write_jsonl(path, rows)
    issue, _ = _only_issue(tiny, "too_few_raters")
    assert issue.line == 2 and "2 valid final-phase rater(s) for clarity_quality, fewer than min_raters=3" in issue.message
    ds = load_dataset(tiny, strict=False)
    report = ds.report
    # the (video, dimension) is rejected in both phases: 2 final + 3 pilot ratings removed, each reported
    assert report.counts() == {"too_few_raters": 1, "video_rejected": 5}
    assert len(ds.ratings) == 59 - 5
    assert len(load_dataset(tiny, min_raters=2).ratings) == 59


def test_bad_json_line_is_reported(tiny):
    with open(tiny / "ratings.jsonl", "a") as fh:
        fh.write("{not json\n")
    issue, _ = _only_issue(tiny, "bad_json")
    assert issue.line == 61


def test_strict_error_lists_every_problem(tiny):
    _edit_rating(tiny, 2, score=3.3)
    _edit_rating(tiny, 4, phase="draft")
    with pytest.raises(DataValidationError) as err:
        load_dataset(tiny)
    assert err.value.report.counts() == {"off_grid": 1, "bad_phase": 1}
    assert "ratings.jsonl line 2" in str(err.value) and "ratings.jsonl line 4" in str(err.value)


def test_parquet_round_trip(tiny, tmp_path_factory):
    ds = load_dataset(tiny)
    out = save_dataset(ds, tiny, fmt="parquet")
    for name in ("videos", "ratings", "rationales"):
        (tiny / f"{name}.jsonl").unlink()
    back = load_dataset(out)
    assert back.ratings.tags.map(list).tolist() == ds.ratings.tags.map(list).tolist()
    pd.testing.assert_frame_equal(aggregate(back), aggregate(ds))


def test_aggregate_mean_snapped_spread_and_high_variance():
    r = pd.DataFrame({
        "video_id": ["x"] * 3 + ["y"] * 3, "rater": list("abc") * 2, "phase": "final",
        "dimension": "clarity_quality", "score": [3.0, 3.5, 3.5, 1.0, 3.0, 4.5], "tags": [[]] * 6, "comment": ""})
    lab = aggregate(r).set_index("video_id")
    assert lab.loc["x", "mean"] == pytest.approx(10 / 3) and lab.loc["x", "score"] == 3.5  # 3.33 -> 3.5
    assert lab.loc["y", "score"] == 3.0  # mean 2.83 -> 3.0
    assert lab.loc["y", "std"] == pytest.approx(np.std([1.0, 3.0, 4.5], ddof=1))
    assert not lab.loc["x", "high_variance"] and lab.loc["y", "high_variance"]
    assert aggregate(r, exclude_high_variance=True).video_id.tolist() == ["x"]
    assert aggregate(r, phase="pilot").empty


def test_labels_wide_and_labelled_items(tiny):
    ds = load_dataset(tiny)
    wide = labels_wide(aggregate(ds))
    assert list(wide.columns) == list(L.DIMENSION_KEYS)
    assert wide.loc["v1"].tolist() == [2.5] * 5 and wide.loc["v2"].tolist() == [3.5] * 5
    items = labelled_items(ds, split="train")
    assert len(items) == 2 and Path(items.path[0]).is_file()


def test_split_is_deterministic_and_near_the_fraction():
    ids = [f"clip{i}" for i in range(2000)]
    s = [split_of(i) for i in ids]
    assert s == [split_of(i) for i in ids]
    assert 0.17 < s.count("test") / len(s) < 0.23
    v = assign_splits(pd.DataFrame({"video_id": ["a", "b"], "split": ["train", ""]}))
    assert v.split[0] == "train" and v.split[1] == split_of("b")


def test_map_scale():
    assert map_scale(0, 0, 100) == 1.0 and map_scale(100, 0, 100) == 5.0 and map_scale(50, 0, 100) == 3.0
    assert map_scale(1, 10, 1) == 5.0  # reversed scale: 1 is best


def test_csv_adapter_wide_0_100_two_dimensions(tmp_path):
    """A CSV unlike the sample data: wide per-rater columns, 0-100 scale, only 2 dimensions, own names."""
    for vid in ("clipA", "clipB"):
        _tiny_video(tmp_path / "media" / f"{vid}.mp4", 100)
    csv = tmp_path / "scores.csv"
    csv.write_text("clip,r1_sharpness,r2_sharpness,r3_sharpness,r1_looks,r2_looks,r3_looks,r4_looks\n"
                   "clipA,80,70,90,20,30,,25\n"
                   "clipB,10,0,5,100,95,90,85\n")
    ds = from_ratings_csv(csv, video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
                          dimension_map={"sharpness": "clarity_quality", "looks": "Aesthetic Quality"},
                          scale=(0, 100), video_dir=tmp_path / "media", path_template="{video}.mp4")
    assert set(ds.ratings.dimension) == {"clarity_quality", "aesthetic_quality"}
    assert ds.info["empty_cells"] == 1
    r = ds.ratings.set_index(["video_id", "rater", "dimension"])
    assert r.loc[("clipA", "r1", "clarity_quality"), "score"] == 4.0  # 80 -> 4.2 -> 4.0
    assert r.loc[("clipA", "r1", "clarity_quality"), "raw_score"] == 80
    assert r.loc[("clipB", "r3", "clarity_quality"), "score"] == 1.0  # 5 -> 1.2 -> 1.0
    assert ds.videos.set_index("video_id").loc["clipA", "fps"] == 8.0  # probed from the file
    lab = labels_wide(aggregate(ds))
    assert list(lab.columns) == ["aesthetic_quality", "clarity_quality"]
    # 100, 95, 90, 85 -> 5.0, 4.8, 4.6, 4.4 -> snapped 5.0, 5.0, 4.5, 4.5 -> mean 4.75 -> 5.0
    assert lab.loc["clipB", "aesthetic_quality"] == 5.0


def test_csv_adapter_long_format_reports_out_of_scale_and_missing_file(tmp_path):
    _tiny_video(tmp_path / "a.mp4", 50)
    csv = tmp_path / "long.csv"
    lines = ["video,who,dim,value"] + [f"a.mp4,{r},clarity_quality,{v}" for r, v in zip("xyz", (1, 7, 10))]
    lines += [f"b.mp4,{r},clarity_quality,5" for r in "xyz"]
    csv.write_text("\n".join(lines) + "\n")
    kw = dict(rater_col="who", dimension_col="dim", score_col="value", scale=(1, 10))
    with pytest.raises(DataValidationError) as err:
        from_ratings_csv(csv, **kw)
    ds = from_ratings_csv(csv, strict=False, min_raters=2, **kw)
    assert ds.report.counts() == {"missing_video_file": 1, "video_rejected": 3}
    # a value outside the declared scale is an error, never clipped
    csv.write_text(csv.read_text().replace("a.mp4,z,clarity_quality,10", "a.mp4,z,clarity_quality,11"))
    ds = from_ratings_csv(csv, strict=False, min_raters=2, **kw)
    bad = [i for i in ds.report.issues if i.kind == "out_of_range"]
    assert len(bad) == 1 and bad[0].file == "long.csv" and bad[0].line == 4 and "outside the declared scale" in bad[0].message
    assert ds.ratings.score.tolist() == [1.0, 3.5]  # 1 -> 1.0, 7 -> 3.67 -> 3.5
    assert "b.mp4" in str(err.value)


def test_videos_without_any_valid_rating_are_reported(tiny):
    _write_jsonl(tiny / "ratings.jsonl", [])
    with pytest.raises(DataValidationError) as err:
        load_dataset(tiny)
    assert err.value.report.counts()["too_few_raters"] == 2 * 5


def test_save_dataset_elsewhere_keeps_videos_reachable(tiny, tmp_path_factory):
    ds = load_dataset(tiny)
    out = save_dataset(ds, tmp_path_factory.mktemp("elsewhere") / "copy")
    back = load_dataset(out)  # strict: the video files must be found from the new folder
    assert back.video_path("v1") == ds.video_path("v1")


def test_lenient_loading_returns_the_dataset_with_its_report(tiny):
    """strict=False returns the dataset, not a (dataset, report) pair; unpacking one says where the report went."""
    (tiny / "clips" / "v2.mp4").unlink()
    ds = load_dataset(tiny, strict=False)
    assert ds.videos.video_id.tolist() == ["v1"] and ds.report.counts()["missing_video_file"] == 1
    with pytest.raises(TypeError, match="ds.report"):
        ds, report = load_dataset(tiny, strict=False)
    assert ds.subset(["v1"]).report is None  # a dataset built in memory was not validated as such


def test_ratings_csv_options_object_and_keywords_agree(tmp_path):
    from vqalib.data.dataset import RatingsCsvOptions

    csv = tmp_path / "long.csv"
    csv.write_text("video,who,dim,value\n" + "".join(f"a,{r},clarity_quality,{v}\n" for r, v in zip("xyz", (1, 7, 11))))
    kw = dict(rater_col="who", dimension_col="dim", score_col="value", scale=(1, 10), check_files=False, strict=False)
    by_keywords = from_ratings_csv(csv, min_raters=2, **kw)
    opts = RatingsCsvOptions(**kw)
    by_options = from_ratings_csv(csv, options=opts, min_raters=2)  # a keyword beside the options wins
    pd.testing.assert_frame_equal(by_options.ratings, by_keywords.ratings)
    assert by_options.info == by_keywords.info and by_options.info["min_raters"] == 2 and opts.min_raters == 3
    assert [str(i) for i in by_options.report.issues] == [str(i) for i in by_keywords.report.issues]
    assert by_keywords.report.counts() == {"out_of_range": 1} and by_keywords.report.n_rows["ratings"] == 3
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['score_column'\].*'score_col'"):
        from_ratings_csv(csv, score_column="value")


def test_dataset_metadata_of_a_rotated_phone_clip_is_its_displayed_size(tmp_path):
    """One probe: from_ratings_csv stores what the sampler's probe reads. A phone clip stored 128x96
    with a 90-degree display matrix is 96x128 in the dataset, also after save and load."""
    from test_video_geometry import write_clip

    from vqalib.data.dataset import probe_video
    from vqalib.video.frames import probe

    (tmp_path / "media").mkdir()
    clip = write_clip(tmp_path / "media" / "phone.mp4", rotation=90)
    info = probe(clip)
    assert (info.coded_width, info.coded_height, info.rotation) == (128, 96, 90)
    meta = probe_video(clip)
    assert (meta["width"], meta["height"]) == (info.width, info.height) == (96, 128)
    assert (meta["fps"], meta["duration"]) == (info.fps, info.duration)
    csv = tmp_path / "study.csv"
    csv.write_text("clip,r1_overall,r2_overall\nphone,3,4\n")
    ds = from_ratings_csv(csv, video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
                          dimension_map={"overall": "clarity_quality"}, video_dir=tmp_path / "media",
                          path_template="{video}.mp4", min_raters=2)
    back = load_dataset(save_dataset(ds, tmp_path / "saved"))
    for table in (ds.videos, back.videos):
        row = table.set_index("video_id").loc["phone"]
        assert (row["width"], row["height"]) == (96, 128) and row["fps"] == pytest.approx(info.fps)


def test_sample_dataset_metadata_is_what_the_probe_reads():
    """The generated clips are not rotated: the sizes, rates and durations videos.jsonl was written
    with are the probe's, clip by clip (so one probe changes no value of the sample dataset)."""
    from vqalib.data.dataset import probe_video
    from vqalib.data.synth import ensure_sample_dataset

    ds = load_dataset(ensure_sample_dataset("smoke", progress=False))
    for row in ds.videos.itertuples():
        meta = probe_video(ds.video_path(row.video_id))
        assert (meta["width"], meta["height"], meta["fps"]) == (row.width, row.height, row.fps), row.video_id
        assert meta["duration"] == pytest.approx(row.duration) and meta["hdr"] is None
