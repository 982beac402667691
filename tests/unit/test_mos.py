"""MOS benchmark adapters on the real label files in ../shared/data/labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vqalib.schema.levels import DIMENSION_KEYS
from vqalib.data.mos import (
    BENCHMARKS,
    LabelFileError,
    load_benchmark,
    read_fastvqa_labels,
    read_videval_metadata,
    to_1_5,
)

from vqalib.eval.combine import benchmark_scores, combine_predictions
from conftest import SHARED_DATA

SHARED = SHARED_DATA
LABELS = SHARED / "labels"
needs_labels = pytest.mark.skipif(not LABELS.is_dir(), reason=f"label files not found in {LABELS} (../shared/data is absent)")


def test_mapping_formula():
    np.testing.assert_allclose(to_1_5([0, 50, 100], (0, 100)), [1, 3, 5])
    np.testing.assert_allclose(to_1_5([1, 3.46, 5], (1, 5)), [1, 3.46, 5])
    with pytest.raises(ValueError):
        to_1_5([1], (5, 1))


@needs_labels
@pytest.mark.parametrize("name, split, n, lo, hi", [
    ("KoNViD", "all", 1200, 1.22, 4.64),
    ("LIVE_VQC", "all", 585, 6.2237, 94.2865),
    ("YouTubeUGC", "all", 1147, 1.242, 4.677),
    ("LSVQ", "test", 7186, None, None),
    ("LSVQ", "1080p", 3573, None, None),
])
def test_real_label_files_parse(name, split, n, lo, hi):
    df = read_fastvqa_labels(LABELS / BENCHMARKS[name].label_files[split])
    assert len(df) == n and df["video_id"].is_unique
    s_lo, s_hi = BENCHMARKS[name].scale
    assert df["mos"].between(s_lo, s_hi).all()
    if lo is not None:
        assert df["mos"].min() == pytest.approx(lo, abs=1e-3) and df["mos"].max() == pytest.approx(hi, abs=1e-3)


@needs_labels
def test_konvid_against_local_clips_reports_missing(tmp_path):
    bench = load_benchmark("KoNViD", SHARED / "videos" / "konvid", labels_root=LABELS)
    assert sorted(bench.available["video_id"]) == ["10053703034", "5115335471"]  # the two clips we have, flat folder
    assert len(bench.missing) == 1198 and bench.n_listed == 1200
    row = bench.available.set_index("video_id").loc["10053703034"]
    assert row["mos"] == pytest.approx(3.46) and row["mos_1to5"] == pytest.approx(3.46)  # 1-5 scale: identity
    assert "1198 missing" in bench.summary()
    with pytest.raises(FileNotFoundError, match="1198 missing"):
        load_benchmark("KoNViD", SHARED / "videos" / "konvid", labels_root=LABELS, strict=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_benchmark("KoNViD", tmp_path / "nope", labels_root=LABELS)


@needs_labels
def test_live_vqc_nominal_vs_observed_scale(tmp_path):
    nominal = load_benchmark("LIVE_VQC", tmp_path, labels_root=LABELS)
    observed = load_benchmark("LIVE_VQC", tmp_path, labels_root=LABELS, scale="observed")
    m = nominal.missing.set_index("video_id")
    assert len(nominal.available) == 0 and len(m) == 585
    assert m.loc["A001", "mos_1to5"] == pytest.approx(1 + 4 * 80.232 / 100)
    o = observed.missing.set_index("video_id")
    assert o["mos_1to5"].min() == pytest.approx(1.0) and o["mos_1to5"].max() == pytest.approx(5.0)
    # Rank order is the same under both rules.
    assert (m["mos_1to5"].rank() == o["mos_1to5"].rank()).all()


@needs_labels
def test_videval_metadata_agrees_with_fastvqa_labels():
    kon = read_videval_metadata(LABELS / "videval" / "KONVID_1K_metadata.csv")
    fv = read_fastvqa_labels(LABELS / "fastvqa" / "KoNViD" / "labels.txt")
    j = fv.merge(kon, on="video_id", suffixes=("_fv", "_vv"))
    assert len(kon) == 1200 and len(j) == 1200
    np.testing.assert_allclose(j["mos_fv"], j["mos_vv"], atol=0.01)
    ugc = read_videval_metadata(LABELS / "videval" / "YOUTUBE_UGC_metadata.csv")
    assert {"mos_std", "n_subjects"} <= set(ugc.columns) and (ugc["n_subjects"] > 0).all()
    live = read_videval_metadata(LABELS / "videval" / "LIVE_VQC_metadata.csv")
    assert "A001" in set(live["video_id"]) and len(live) == 585


def test_bad_label_lines_name_file_and_line(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("a.mp4, 8.0, 30, 3.2\nb.mp4, 8.0, 30\n")
    with pytest.raises(LabelFileError, match=r"labels.txt line 2: expected 4 comma-separated fields"):
        read_fastvqa_labels(p)
    p.write_text("a.mp4, 8.0, 30, 3.2\nb.mp4, 8.0, 30, high\n")
    with pytest.raises(LabelFileError, match=r"line 2: field MOS = 'high' is not a number"):
        read_fastvqa_labels(p)


def test_observed_scale_of_equal_mos_names_the_label_file(tmp_path):
    """Issue 8: an all-equal 'observed' scale said only "hi must exceed lo", naming no file."""
    rel = BENCHMARKS["KoNViD"].label_files["all"]
    label = tmp_path / "labels" / rel
    label.parent.mkdir(parents=True)
    label.write_text("a.mp4, 8.0, 30, 3.2\nb.mp4, 8.0, 30, 3.2\n")
    (tmp_path / "videos").mkdir()
    with pytest.raises(ValueError, match=rf"{label.name}.*scale='observed'.*hi must exceed lo.*nominal scale"):
        load_benchmark("KoNViD", tmp_path / "videos", labels_root=tmp_path / "labels", scale="observed")
    nominal = load_benchmark("KoNViD", tmp_path / "videos", labels_root=tmp_path / "labels")
    assert nominal.missing["mos_1to5"].tolist() == pytest.approx([3.2, 3.2])  # 1-5 nominal: identity
    with pytest.raises(ValueError, match="my_labels.txt: MOS scale"):
        to_1_5([1], (5, 1), source="my_labels.txt")


def _pred(video_ids, values: dict[str, list[float | None]]) -> pd.DataFrame:
    rows = []
    for dim, vals in values.items():
        for vid, v in zip(video_ids, vals):
            rows.append({"video_id": vid, "dimension": dim, "expected_score": v, "parsed_score": v})
    return pd.DataFrame(rows)


def test_combinations_never_average_partial_rows():
    vals = {k: [1.0, 2.0] for k in DIMENSION_KEYS}
    vals["motion_amplitude"] = [5.0, 5.0]
    vals["clarity_quality"] = [3.0, None]  # video b lacks clarity
    pred = _pred(["a", "b"], vals)
    q = combine_predictions(pred, "mean_quality").set_index("video_id")
    assert q.loc["a", "score"] == pytest.approx((1 + 1 + 1 + 3) / 4)  # motion amplitude excluded
    assert np.isnan(q.loc["b", "score"]) and q.loc["b", "n_dims"] == 3
    m5 = combine_predictions(pred, "mean5").set_index("video_id")
    assert m5.loc["a", "score"] == pytest.approx((1 + 5 + 1 + 1 + 3) / 5)
    assert combine_predictions(pred, "clarity_quality").set_index("video_id").loc["a", "score"] == 3.0
    with pytest.raises(ValueError, match="choose one of"):
        combine_predictions(pred, "overall")


@needs_labels
def test_benchmark_scores_counts_videos_without_prediction():
    bench = load_benchmark("KoNViD", SHARED / "videos" / "konvid", labels_root=LABELS)
    pred = _pred(["10053703034"], {k: [3.0] for k in DIMENSION_KEYS})
    joined, info = benchmark_scores(bench, pred)
    assert info["n_available"] == 2 and info["n_predicted"] == 1 and info["no_prediction"] == ["5115335471"]
    assert info["n_missing_videos"] == 1198
    assert joined.set_index("video_id").loc["10053703034", "score"] == 3.0
