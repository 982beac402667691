"""The benchmark suite end to end with the tiny model on the shared clips and label files: the two real
KoNViD-1k clips in ``../shared/data/videos/konvid`` are found among the 1,200 locked KoNViD labels and
scored; every other benchmark gets a NaN row with its reason; the CLI prints one table with the published
numbers beside ours. The locks and the published file without a model: ``tests/unit/test_suite.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vqalib.data.mos import default_labels_root

SHARED_KONVID = default_labels_root().parent / "videos" / "konvid"
pytestmark = pytest.mark.skipif(not SHARED_KONVID.is_dir() or not default_labels_root().is_dir(),
                                reason="../shared/data (videos/konvid, labels) is not beside the checkout")
SCORER = dict(batch_size=2, num_workers=0, device="cpu")


def test_the_suite_scores_what_is_there_and_gives_the_rest_a_reason(tmp_path):
    from vqalib.inference.scorer import Scorer
    from vqalib.inference.suite import run_suite

    table = run_suite(videos={"KoNViD": SHARED_KONVID}, videos_root=tmp_path / "none", output_dir=tmp_path / "out",
                      n_boot=20, scorer=Scorer("tiny", **SCORER))
    assert [(r.benchmark, r.split) for r in table.itertuples()] == [
        ("LSVQ", "test"), ("LSVQ", "1080p"), ("KoNViD", "all"), ("LIVE_VQC", "all"), ("YouTubeUGC", "all")]
    konvid = table[table["benchmark"] == "KoNViD"].iloc[0]
    assert (konvid["n_listed"], konvid["n_found"], konvid["n_missing"]) == (1200, 2, 1198)
    assert konvid["n"] == 2 and konvid["reason"]  # two videos: correlations are not defined, and the row says why
    assert konvid["label_rows"] == 1200 and len(konvid["label_sha256"]) == 64
    assert (konvid["mode"], konvid["combination"], konvid["max_frames"]) == ("fast", "mean_quality", 8)
    others = table[table["benchmark"] != "KoNViD"]
    assert others["SRCC"].isna().all() and others["reason"].str.contains("does not exist").all()
    saved = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert saved["suite"] == "standard" and len(saved["entries"]) == 5
    assert (tmp_path / "out" / "KoNViD_all.fast.csv").is_file()  # resumable scores, one file per benchmark


def test_the_suite_command_prints_one_table_with_the_published_numbers(tmp_path, capsys):
    from vqalib.cli import main

    rc = main(["benchmark-suite", "--videos", f"KoNViD={SHARED_KONVID}", "--videos-root", str(tmp_path / "none"),
               "--output-dir", str(tmp_path / "out"), "--n-boot", "10", "--model", "tiny", "--num-workers", "0",
               "--device", "cpu", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| KoNViD | all | tiny (this run) |" in out and "| KoNViD | all | Q-Align | 0.865 | 0.877 |" in out
    assert "| LSVQ | 1080p | DOVER | – | 0.830 |" in out  # PLCC only in DOVER's source: no SRCC is made up
    md = Path(tmp_path / "out" / "suite.md").read_text()
    assert md.strip() == out.split("\nwritten:")[0].strip()
    assert np.isfinite(json.loads((tmp_path / "out" / "suite.json").read_text())["protocol"]["fps"])


def test_a_changed_label_file_stops_the_suite_before_anything_is_scored(tmp_path, capsys):
    import shutil

    from vqalib.cli import main

    labels = tmp_path / "labels"
    shutil.copytree(default_labels_root() / "fastvqa", labels / "fastvqa")
    f = labels / "fastvqa" / "LIVE_VQC" / "labels.txt"
    f.write_text(f.read_text() + f.read_text().splitlines()[0].replace("A001", "Z999") + "\n")
    rc = main(["benchmark-suite", "--videos-root", str(tmp_path), "--labels-root", str(labels), "--model", "tiny",
               "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert rc == 2 and "586 rows" in capsys.readouterr().err and not (tmp_path / "out").exists()
