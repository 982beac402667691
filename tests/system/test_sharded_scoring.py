"""``python -m vqalib score`` over 2 processes (``torchrun``, gloo, CPU, the tiny model): the merged output
equals a one-process run row for row, a killed rank's part is folded in and skipped by the next run, and a
second run on the same output is refused on every rank (``vqalib.inference.shards``). The part files
without processes: ``tests/unit/test_shards.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_helpers import write_clip

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_S = 900
N_CLIPS = 5
SCORE = ["--batch-size", "2", "--num-workers", "0", "--device", "cpu", "--no-progress"]
#: Columns that are the scores (everything but timings, batch numbers and the run's own bookkeeping).
TIMING = ("decode_s", "processor_s", "model_s", "batch")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


def score(out: Path, clips: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
              if processes > 1 else [sys.executable])
    cmd = launch + ["-m", "vqalib", "score", str(clips), "-o", str(out), *SCORE, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    for i in range(N_CLIPS):
        write_clip(d / f"clip{i}.mp4", n_frames=8, size=64, seed=i)
    return d


@pytest.fixture(scope="module")
def one_process(clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "scores.csv"
    proc = score(out, clips, 1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def score_columns(df):
    """The numbers a user reads: distributions, expected / argmax scores, mass outside the levels, frames seen."""
    return [c for c in df.columns if c.startswith("p_") or c.endswith(("_expected", "_argmax", "_outside"))
            or c in ("n_frames", "sampled_fps", "frame_height", "frame_width")]


def test_two_processes_write_the_rows_of_one_process(clips, one_process, tmp_path):
    from vqalib.inference.store import read_scores

    out = tmp_path / "scores.csv"
    proc = score(out, clips, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(f"{N_CLIPS} videos listed, 0 already in the output, {N_CLIPS} scored now") == 1  # rank 0
    one, two = read_scores(one_process), read_scores(out)
    assert two["video_id"].tolist() == one["video_id"].tolist()  # the listed order, not rank by rank
    assert two["path"].tolist() == one["path"].tolist() and (two["status"] == "ok").all()
    cols = score_columns(one)
    assert cols and cols == score_columns(two)
    np.testing.assert_allclose(two[cols].to_numpy(float), one[cols].to_numpy(float), atol=1e-5)
    rest = [c for c in one.columns if c not in cols and c not in TIMING]
    assert rest and two[rest].astype(str).equals(one[rest].astype(str))  # ids, paths, status, mode ... as written
    assert not out.with_name("scores.csv.parts").exists()
    manifest = json.loads(out.with_name("scores.csv.manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["model"] == "tiny" and manifest["mode"] == "fast"


def test_a_killed_ranks_rows_are_kept_and_skipped(clips, one_process, tmp_path):
    from vqalib.inference import shards
    from vqalib.inference.store import RowStore, read_scores

    one = read_scores(one_process)
    manifest = json.loads(one_process.with_name("scores.csv.manifest.json").read_text())
    out = tmp_path / "scores.csv"
    part = RowStore(shards.part_path(out, 1, 2), list(one.columns), manifest)  # what rank 1 wrote before it died
    part.open()
    part.append(one.iloc[[1, 3]].to_dict("records"))
    proc = score(out, clips, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{N_CLIPS} videos listed, 2 already in the output, {N_CLIPS - 2} scored now" in proc.stdout
    got = read_scores(out)
    assert sorted(got["video_id"]) == sorted(one["video_id"]) and len(got) == N_CLIPS
    assert got["video_id"].tolist()[:2] == one["video_id"].tolist()[1:4:2]  # the folded rows first, as a resume


def test_a_second_run_on_the_same_output_is_refused_on_every_rank(clips, tmp_path):
    from vqalib.inference.store import acquire_lock, release_lock

    out = tmp_path / "scores.csv"
    fd = acquire_lock(out)  # another run holds the output
    try:
        proc = score(out, clips, 2)
    finally:
        release_lock(fd)
    assert proc.returncode != 0
    assert "is being written by" in proc.stderr
    assert not out.exists() and not out.with_name("scores.csv.parts").exists()


def test_benchmark_under_two_processes_prints_one_table_on_all_videos(clips, tmp_path):
    import pandas as pd

    labels = tmp_path / "KoNViD_1k_mos.csv"  # the official KoNViD layout, naming the generated clips
    labels.write_text("flickr_id,mos\n" + "".join(f"clip{i},{1.5 + 0.5 * i}\n" for i in range(N_CLIPS)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vqalib",
           "benchmark", "KoNViD", "--videos", str(clips), "--labels", str(labels), "--n-boot", "20",
           "-o", str(tmp_path / "scores.csv"), "--table", str(tmp_path / "table.csv"), *SCORE]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(f"KoNViD-1k (all): {N_CLIPS} videos listed") == 1  # printed by rank 0 only
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == 1 and table["n"].iloc[0] == N_CLIPS and table["n_missing"].iloc[0] == 0
    assert table["label_file"].iloc[0] == str(labels)
