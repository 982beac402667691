"""Issue 23, the data commands as a user runs them (subprocesses with a timeout, from another working directory):
``import-labels`` on the real YouTube-UGC metadata with a shared clip, ``sample-data --schema`` with a schema
file, and the folders they write loaded back with their rating schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from vqalib.data.dataset import label_targets, load_dataset
from vqalib.schema import rating as RS

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "vqalib", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.skipif(not (SHARED_DATA / "labels").is_dir(), reason="../shared/data is absent")
def test_import_labels_youtube_ugc_subprocess(tmp_path):
    videos = tmp_path / "ugc"
    videos.mkdir()
    os.symlink(SHARED_DATA / "videos" / "konvid" / "10053703034.mp4", videos / "Sports_1080P-0063.mkv")
    proc = _run(["import-labels", "YouTubeUGC", "--videos", "ugc", "--out", "data/ugc",
                 "--labels", str(SHARED_DATA / "labels" / "videval" / "YOUTUBE_UGC_metadata.csv")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 videos, 1 labels" in proc.stdout and "std from 'mos_std'" in proc.stdout
    ds = load_dataset(tmp_path / "data" / "ugc")
    assert ds.schema.target_rule == "gaussian" and ds.schema.keys == ("overall_quality",)
    t = label_targets(ds).iloc[0]
    assert t["std"] > 0 and np.isclose(t["target"].sum(), 1.0) and t["target"].max() < 1.0
    bad = _run(["import-labels", "KoNViD", "--videos", "nowhere", "--out", "x"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_sample_data_with_a_schema_file_subprocess(tmp_path):
    schema = RS.make_schema("two-words", [{"key": "overall_quality", "name": "Overall Quality"}],
                            values=[1, 2, 3], strings=["low", "mid", "high"])
    schema.save(tmp_path / "words.json")
    proc = _run(["sample-data", "--size", "smoke", "--schema", "words.json", "--root", "out"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == tmp_path / "out"
    ds = load_dataset(tmp_path / "out")
    assert ds.schema == schema and set(ds.ratings.score) <= {1.0, 2.0, 3.0}
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["rating_schema"]["fingerprint"] == schema.fingerprint()


@pytest.mark.skipif(not (SHARED_DATA / "labels").is_dir(), reason="../shared/data is absent")
def test_import_labels_fails_when_labels_are_refused(tmp_path):
    """A schema whose raw range is not the file's scale (KoNViD's 1-5 read as 0-1 DMOS) refuses every MOS: the
    command says so and exits 1, never 0 with an empty dataset."""
    schema = RS.make_schema("csiq", [{"name": "Overall Quality", "raw_range": [0, 1], "higher_is_better": False}],
                            RS.MOS9.values)
    schema.save(tmp_path / "csiq.json")
    videos = tmp_path / "konvid"
    videos.mkdir()
    os.symlink(SHARED_DATA / "videos" / "konvid" / "10053703034.mp4", videos / "10053703034.mp4")
    proc = _run(["import-labels", "KoNViD", "--videos", "konvid", "--out", "data/k", "--schema", "csiq.json",
                 "--labels", str(SHARED_DATA / "labels" / "fastvqa" / "KoNViD" / "labels.txt")], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "out_of_range" in proc.stderr and "holds only the 0 accepted label(s)" in proc.stderr
    assert "raw_range must be the label file's scale" in proc.stderr
