"""Issue 23, data: the real public MOS label files (../shared/data/labels) and the shared clips turned into
training datasets: KoNViD-1k (1-5), LIVE-VQC (0-100), YouTube-UGC with its per-clip std (Gaussian soft
labels), a DMOS column flipped; unmatched label rows counted and listed; the ``import-labels`` command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vqalib.cli import main as cli_main
from vqalib.data.dataset import dataset_from_label_file, label_targets, labelled_items, load_dataset
from vqalib.schema import rating as RS
from vqalib.schema.rating import INT10, MOS9, QALIGN5, SCHEMA_FILE

from conftest import SHARED_DATA

LABELS = SHARED_DATA / "labels"
KONVID_CLIPS = SHARED_DATA / "videos" / "konvid"
pytestmark = pytest.mark.skipif(not (LABELS.is_dir() and KONVID_CLIPS.is_dir()),
                                reason=f"label files or clips not found under {SHARED_DATA} (../shared/data is absent)")

CLIP_A, CLIP_B = KONVID_CLIPS / "10053703034.mp4", KONVID_CLIPS / "5115335471.mp4"


def _as(folder: Path, names: dict[str, Path]) -> Path:
    """A video folder holding the shared clips under the names a label file lists (symbolic links)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, src in names.items():
        os.symlink(src, folder / name)
    return folder


def test_konvid_fastvqa_list_with_the_shared_clips(tmp_path):
    out = tmp_path / "konvid"
    ds = dataset_from_label_file("KoNViD", KONVID_CLIPS, out, labels=LABELS / "fastvqa/KoNViD/labels.txt")
    assert ds.info["rows"] == 1200 and ds.info["n_matched"] == 2 and ds.info["n_unmatched"] == 1198
    mos = ds.ratings.set_index("video_id")
    assert set(mos.rater) == {"mos"} and set(mos.phase) == {"final"} and set(mos.dimension) == {"overall_quality"}
    assert mos.loc["10053703034", "score"] == pytest.approx(3.46) and mos.loc["5115335471", "score"] == pytest.approx(2.16)
    assert mos.loc["10053703034", "raw_score"] == 3.46
    # the schema: one dimension on the nine-level grid, raw range KoNViD's 1-5, saved beside the tables
    s = RS.load_schema(out / SCHEMA_FILE)
    assert s == ds.schema and s.keys == ("overall_quality",) and s.values == MOS9.values
    assert s.dimension("overall_quality").raw_range == (1.0, 5.0) and s.target_rule == "nearest"
    t = label_targets(ds).set_index("video_id")
    assert MOS9.values[int(np.argmax(t.loc["10053703034", "target"]))] == 3.5
    assert MOS9.values[int(np.argmax(t.loc["5115335471", "target"]))] == 2.0
    # unmatched rows: counted, listed in a file, never dropped silently
    unmatched = pd.read_csv(out / "unmatched_labels.csv", dtype={"video_id": str})
    assert len(unmatched) == 1198 and "4542323058" in set(unmatched.video_id)
    info = json.loads((out / "dataset.json").read_text())
    assert info["n_unmatched"] == 1198 and len(info["unmatched"]) == 20 and info["label_sha256"]
    assert load_dataset(out).ratings.score.tolist() == ds.ratings.score.tolist()


def test_konvid_videval_metadata_on_qalign_words(tmp_path):
    ds = dataset_from_label_file("KoNViD", KONVID_CLIPS, tmp_path / "k", labels=LABELS / "videval/KONVID_1K_metadata.csv",
                                 levels="qalign5")
    assert ds.schema.strings == QALIGN5.strings and ds.info["n_matched"] == 2
    t = label_targets(ds).set_index("video_id")
    assert QALIGN5.strings[int(np.argmax(t.loc["10053703034", "target"]))] == "fair"  # 3.46 -> 3
    assert QALIGN5.strings[int(np.argmax(t.loc["5115335471", "target"]))] == "poor"  # 2.16 -> 2


def test_live_vqc_0_100_mapped_onto_the_grid(tmp_path):
    videos = _as(tmp_path / "Video", {"A001.mp4": CLIP_A, "A002.mp4": CLIP_B})
    ds = dataset_from_label_file("LIVE_VQC", videos, tmp_path / "live", labels=LABELS / "fastvqa/LIVE_VQC/labels.txt")
    assert ds.info["n_matched"] == 2 and ds.info["n_unmatched"] == 583 and ds.info["scale"] == [0.0, 100.0]
    mos = ds.ratings.set_index("video_id")
    assert mos.loc["A001", "score"] == pytest.approx(1 + 4 * 80.232 / 100)  # 4.20928
    assert mos.loc["A002", "score"] == pytest.approx(1 + 4 * 57.3005 / 100)  # 3.29202
    s = ds.schema
    assert s.dimension("overall_quality").raw_range == (0.0, 100.0)
    assert s.to_raw(mos.loc["A001", "score"]) == pytest.approx(80.232)
    assert labelled_items(ds).overall_quality.tolist() == [4.0, 3.5]


def test_youtube_ugc_std_gives_gaussian_soft_labels(tmp_path):
    videos = _as(tmp_path / "ugc", {"Animation_1080P-01b3.mkv": CLIP_A,
                                    "Animation_1080P-05f8_crf_10_ss_00_t_20.0.mp4": CLIP_B})
    out = tmp_path / "ds"
    ds = dataset_from_label_file("YouTubeUGC", videos, out, labels=LABELS / "videval/YOUTUBE_UGC_metadata.csv")
    assert ds.info["n_matched"] == 2 and ds.info["std_column"] == "mos_std"
    assert ds.schema.target_rule == "gaussian"
    mos = ds.ratings.set_index("video_id")
    assert mos.loc["Animation_1080P-01b3", "std"] == pytest.approx(0.468)
    assert mos.loc["Animation_1080P-05f8", "std"] == pytest.approx(0.871)
    t = label_targets(load_dataset(out)).set_index("video_id")
    want = MOS9.target(3.649, 0.468, rule="gaussian")
    np.testing.assert_allclose(t.loc["Animation_1080P-01b3", "target"], want, atol=1e-12)
    assert want.max() < 0.5 and want.sum() == pytest.approx(1.0)  # a spread, not a one-hot
    assert t.loc["Animation_1080P-01b3", "std"] == pytest.approx(0.468)
    # the std on a 1-10 schema scales with the span: 0.468 * 9 / 4
    d10 = dataset_from_label_file("YouTubeUGC", videos, None, labels=LABELS / "videval/YOUTUBE_UGC_metadata.csv",
                                  schema=INT10, dimension="visual_quality")
    r = d10.ratings.set_index("video_id")
    assert r.loc["Animation_1080P-01b3", "std"] == pytest.approx(0.468 * 9 / 4)
    assert r.loc["Animation_1080P-01b3", "score"] == pytest.approx(1 + 9 * (3.649 - 1) / 4)
    # without the std: one-hot targets
    plain = dataset_from_label_file("YouTubeUGC", videos, None, labels=LABELS / "videval/YOUTUBE_UGC_metadata.csv",
                                    std_column=False)
    assert plain.schema.target_rule == "nearest" and "std" not in plain.ratings.columns


def test_a_dmos_column_is_flipped(tmp_path):
    videos = _as(tmp_path / "Video", {"A001.mp4": CLIP_A, "A002.mp4": CLIP_B})
    dmos = tmp_path / "LIVE_VQC_dmos.csv"
    dmos.write_text("File,MOS\nA001.mp4,20\nA002.mp4,75\nA003.mp4,0\n")  # LIVE-VQC layout, the column a DMOS
    ds = dataset_from_label_file("LIVE_VQC", videos, tmp_path / "d", labels=dmos, dmos=True)
    mos = ds.ratings.set_index("video_id")
    assert mos.loc["A001", "score"] == pytest.approx(4.2) and mos.loc["A002", "score"] == pytest.approx(2.0)
    d = ds.schema.dimension("overall_quality")
    assert d.higher_is_better is False and ds.info["dmos"] is True and ds.info["n_unmatched"] == 1
    assert ds.schema.to_raw(4.2) == pytest.approx(20.0)
    assert load_dataset(tmp_path / "d").schema.dimension("overall_quality").higher_is_better is False


def test_schema_with_several_dimensions_needs_the_dimension_and_no_video_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="has 3 dimensions; pass dimension="):
        dataset_from_label_file("KoNViD", KONVID_CLIPS, None, labels=LABELS / "fastvqa/KoNViD/labels.txt",
                                schema="int10")
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="none of the 1200 videos"):
        dataset_from_label_file("KoNViD", empty, None, labels=LABELS / "fastvqa/KoNViD/labels.txt")


def test_import_labels_command(tmp_path, capsys):
    videos = _as(tmp_path / "ugc", {"Animation_1080P-01b3.mkv": CLIP_A})
    out = tmp_path / "out"
    rc = cli_main(["import-labels", "YouTubeUGC", "--videos", str(videos), "--out", str(out),
                   "--labels", str(LABELS / "videval/YOUTUBE_UGC_metadata.csv"), "--levels", "qalign5"])
    text = capsys.readouterr().out
    assert rc == 0 and "1 videos, 1 labels" in text and "1379 without a video" in text and "std from 'mos_std'" in text
    ds = load_dataset(out)
    assert ds.schema.strings == QALIGN5.strings and ds.schema.target_rule == "gaussian"
    rc = cli_main(["import-labels", "KoNViD", "--videos", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert rc == 2 and "error:" in capsys.readouterr().err
