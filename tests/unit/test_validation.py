"""Validation of a dataset's tables (:mod:`vqalib.data.validation`): every rule on one dataset, pinned.

The expected report below was written by the validator before it was split into one checker per
table and one function per rule (issue 22): same issues, same order, same messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqalib.data import validation as V
from vqalib.data.dataset import DataValidationError, load_dataset

DIMS2 = ("clarity_quality", "motion_quality")


def write_every_rule(root: Path) -> None:
    """One row breaking each rule, beside clean rows (videos v1, v2 and v7; v7 has too few raters)."""
    for v in ("v1", "v2", "v3", "v4", "v5", "v7"):
        (root / f"{v}.mp4").write_bytes(b"\0")
    ok = {"duration": 1.0, "fps": 8.0, "width": 16, "height": 16, "category": "c", "source": "s", "split": "train"}
    videos = [
        {"video_id": "v1", "path": "v1.mp4", **ok},
        {"video_id": "v2", "path": "v2.mp4", **ok, "split": ""},
        {"video_id": "", "path": "v3.mp4", **ok},                       # missing_field video_id
        {"video_id": "v1", "path": "v1.mp4", **ok},                     # duplicate_video
        {"video_id": "v3", "path": None, **ok},                         # missing_field path
        {"video_id": "v4", "path": "v4.mp4", **ok, "fps": "x"},         # bad_value fps
        {"video_id": "v5", "path": "v5.mp4", **ok, "split": "dev"},     # bad_value split
        {"video_id": "v6", "path": "gone.mp4", **ok},                   # missing_video_file
        {"video_id": "v7", "path": "v7.mp4", **ok},
    ]
    good = [{"video_id": v, "rater": r, "phase": ph, "dimension": d, "score": 3.0, "tags": [], "comment": ""}
            for v in ("v1", "v2") for ph in ("pilot", "final") for r in ("a", "b", "c") for d in DIMS2]
    good[0]["dimension"] = "Clarity Quality"      # a display name is accepted
    good[1]["tags"] = "camera_shake, stutter"     # comma-separated text is accepted
    bad = [
        {"video_id": "zz"},                       # unknown_video
        {"video_id": "v6"},                       # video_rejected
        {"rater": ""},                            # missing_field rater
        {"phase": "Final"},                       # bad_phase
        {"dimension": "sharpness"},               # unknown_dimension
        {"score": "3,5"},                         # bad_value score
        {"score": 7.25},                          # out_of_range (also off the grid: range first)
        {"score": 3.25},                          # off_grid
        {"tags": ["flicker"]},                    # unknown_tag (a motion tag on clarity)
        {},                                       # duplicate of good[-2]
    ]
    base = dict(good[-2])  # v2, rater c, final, clarity_quality
    ratings = good + [{**base, "rater": f"x{i}", **b} if b else dict(base) for i, b in enumerate(bad)]
    ratings += [{"video_id": "v7", "rater": "a", "phase": "final", "dimension": d, "score": 2.0, "tags": [],
                 "comment": None} for d in DIMS2]   # too_few_raters, then video_rejected
    rationales = [
        {"video_id": "v1", "dimension": "clarity_quality", "rationale": "Sharp."},
        {"video_id": "zz", "dimension": "clarity_quality", "rationale": "?"},        # unknown_video
        {"video_id": "v6", "dimension": "clarity_quality", "rationale": "?"},        # video_rejected
        {"video_id": "v2", "dimension": "bogus", "rationale": "?"},                  # unknown_dimension
        {"video_id": "v2", "dimension": "clarity_quality", "rationale": " "},        # empty_rationale
        {"video_id": "v1", "dimension": "Clarity Quality", "rationale": "Again."},   # duplicate_rationale
    ]
    for name, rows in (("videos", videos), ("ratings", ratings), ("rationales", rationales)):
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if name == "ratings":
            text += "{not json\n"                  # bad_json
        (root / f"{name}.jsonl").write_text(text)


#: (kind, video_id, str(issue)) of every issue, in the order the report lists them; <root> is the dataset folder.
ISSUES = [
    ('bad_json', None, "ratings.jsonl line 37: field '(line)': not a JSON object (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)). Fix: write one JSON object per line"),
    ('missing_field', None, "videos.jsonl line 3: field 'video_id': empty video_id. Fix: give every video a unique id"),
    ('duplicate_video', 'v1', "videos.jsonl line 4: field 'video_id': video_id 'v1' already used on line 1. Fix: give every video a unique id"),
    ('missing_field', 'v3', "videos.jsonl line 5: field 'path': video 'v3' has no path. Fix: set path (relative to the dataset folder)"),
    ('bad_value', 'v4', "videos.jsonl line 6: field 'fps': fps='x' is not a positive number. Fix: write fps as a positive number or leave it empty"),
    ('bad_value', 'v5', "videos.jsonl line 7: field 'split': split 'dev' is not one of ('train', 'test', 'val'). Fix: use 'train', 'val' or 'test' (or leave empty and call assign_splits)"),
    ('missing_video_file', 'v6', "videos.jsonl line 8: field 'path': video file <root>/gone.mp4 does not exist. Fix: fix the path (relative to the dataset folder) or remove the video"),
    ('unknown_video', 'zz', "ratings.jsonl line 25: field 'video_id': video_id 'zz' is not in videos.jsonl. Fix: add the video to videos.jsonl or fix the id"),
    ('video_rejected', 'v6', "ratings.jsonl line 26: field 'video_id': video 'v6' was rejected in videos.jsonl (see its issue). Fix: fix the video's row in videos.jsonl"),
    ('missing_field', 'v2', "ratings.jsonl line 27: field 'rater': empty rater id. Fix: give every rating a rater id"),
    ('bad_phase', 'v2', "ratings.jsonl line 28: field 'phase': phase 'Final' is not 'pilot' or 'final'. Fix: set phase to 'pilot' or 'final'"),
    ('unknown_dimension', 'v2', "ratings.jsonl line 29: field 'dimension': unknown dimension 'sharpness'. Fix: use one of ['motion_quality', 'motion_amplitude', 'aesthetic_quality', 'content_quality', 'clarity_quality']"),
    ('bad_value', 'v2', "ratings.jsonl line 30: field 'score': score '3,5' is not a number. Fix: write the score as a number on the grid 1.0-5.0 (steps of 0.5)"),
    ('out_of_range', 'v2', "ratings.jsonl line 31: field 'score': score 7.25 is outside 1.0-5.0. Fix: map the scale to 1-5 first (from_ratings_csv(scale=...) does this)"),
    ('off_grid', 'v2', "ratings.jsonl line 32: field 'score': score 3.25 is not on the 0.5 grid (1.0-5.0). Fix: snap it (levels.snap_to_grid(3.25) = 3.5) or fix the value"),
    ('unknown_tag', 'v2', "ratings.jsonl line 33: field 'tags': tag(s) ['flicker'] are not tags of clarity_quality. Fix: use tags from ['blur', 'noise', 'blocking', 'low_resolution']"),
    ('duplicate', 'v2', "ratings.jsonl line 34: field 'rater': rater 'c' already rated 'v2' / clarity_quality in the final phase on line 23. Fix: keep one rating per (video, rater, phase, dimension)"),
    ('too_few_raters', 'v7', "videos.jsonl line 9: field 'video_id': video 'v7' has 1 valid final-phase rater(s) for motion_quality, fewer than min_raters=3. Fix: collect more ratings or lower min_raters"),
    ('too_few_raters', 'v7', "videos.jsonl line 9: field 'video_id': video 'v7' has 1 valid final-phase rater(s) for clarity_quality, fewer than min_raters=3. Fix: collect more ratings or lower min_raters"),
    ('video_rejected', 'v7', "ratings.jsonl line 35: field 'video_id': rating of 'v7' / clarity_quality removed: too few raters for this video and dimension. Fix: collect more ratings or lower min_raters"),
    ('video_rejected', 'v7', "ratings.jsonl line 36: field 'video_id': rating of 'v7' / motion_quality removed: too few raters for this video and dimension. Fix: collect more ratings or lower min_raters"),
    ('unknown_video', 'zz', "rationales.jsonl line 2: field 'video_id': video_id 'zz' is not in videos.jsonl. Fix: add the video to videos.jsonl or fix the id"),
    ('video_rejected', 'v6', "rationales.jsonl line 3: field 'video_id': video 'v6' was rejected in videos.jsonl. Fix: fix the video's row in videos.jsonl"),
    ('unknown_dimension', 'v2', "rationales.jsonl line 4: field 'dimension': unknown dimension 'bogus'. Fix: use one of ['motion_quality', 'motion_amplitude', 'aesthetic_quality', 'content_quality', 'clarity_quality']"),
    ('empty_rationale', 'v2', "rationales.jsonl line 5: field 'rationale': empty rationale. Fix: write the rationale text or drop the row"),
    ('duplicate_rationale', 'v1', "rationales.jsonl line 6: field 'dimension': a rationale for 'v1' / clarity_quality is already on line 1. Fix: keep one rationale per (video, dimension)"),
]
N_ROWS = {'videos': 9, 'ratings': 36, 'rationales': 6}
N_KEPT = {'videos': 3, 'ratings': 24, 'rationales': 1}
SUMMARY_HEAD = ("26 problem(s): bad_json=1, bad_phase=1, bad_value=3, duplicate=1, duplicate_rationale=1, duplicate_video=1, "
                "empty_rationale=1, missing_field=3, missing_video_file=1, off_grid=1, out_of_range=1, too_few_raters=2, "
                "unknown_dimension=2, unknown_tag=1, unknown_video=2, video_rejected=4 (videos: kept 3 of 9; ratings: "
                "kept 24 of 36; rationales: kept 1 of 6)")


@pytest.fixture
def every_rule(tmp_path) -> Path:
    write_every_rule(tmp_path)
    return tmp_path


def test_every_rule_reports_as_before(every_rule):
    ds = load_dataset(every_rule, strict=False)
    report = ds.report
    got = [(i.kind, i.video_id, str(i).replace(str(every_rule), "<root>")) for i in report.issues]
    assert got == ISSUES
    assert (report.n_rows, report.n_kept) == (N_ROWS, N_KEPT)
    assert report.summary().splitlines()[0] == SUMMARY_HEAD
    assert ds.videos["video_id"].tolist() == ["v1", "v2", "v7"]
    assert ds.rationales.to_dict("records") == [{"video_id": "v1", "dimension": "clarity_quality", "rationale": "Sharp."}]
    # what the rules normalised: a display name, comma-separated tags, an empty comment
    first = ds.ratings.iloc[:2].to_dict("records")
    assert first[0]["dimension"] == "clarity_quality" and first[1]["tags"] == ["camera_shake", "stutter"]
    assert len(ds.ratings) == 24 and set(ds.ratings["video_id"]) == {"v1", "v2"}


def test_strict_raises_with_the_same_report(every_rule):
    with pytest.raises(DataValidationError) as err:
        load_dataset(every_rule)
    assert [(i.kind, i.video_id, str(i).replace(str(every_rule), "<root>")) for i in err.value.report.issues] == ISSUES


def test_rules_run_in_the_documented_order():
    """The first rule a row breaks is the one reported: the module docstring's table is the order of the tuples."""
    assert [r.__name__ for r in V.VIDEO_RULES] == ["_video_id_given", "_video_id_unique", "_path_given",
                                                   "_numbers_positive", "_split_known", "_file_exists"]
    assert [r.__name__ for r in V.RATING_RULES] == ["_video_listed", "_video_accepted", "_rater_given", "_phase_known",
                                                    "_dimension_known", "_score_is_number", "_score_in_range",
                                                    "_score_on_grid", "_tags_known", "_rating_unique"]
    assert [r.__name__ for r in V.RATIONALE_RULES] == ["_video_listed", "_video_accepted", "_dimension_known",
                                                       "_rationale_given", "_rationale_unique"]


def test_a_table_without_a_required_column_stops_at_once(every_rule):
    rows = [json.loads(t) for t in (every_rule / "ratings.jsonl").read_text().splitlines()[:-1]]
    for r in rows:
        r.pop("phase")
    (every_rule / "ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataValidationError) as err:
        load_dataset(every_rule, strict=False)
    assert [str(i) for i in err.value.report.issues] == [
        "ratings.jsonl: field 'phase': the ratings table has no 'phase' column. Fix: add a 'phase' column "
        "(columns: video_id, rater, phase, dimension, score, tags, comment)"]
