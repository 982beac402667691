"""Scorer runs from the wild (issue 21): ids from file names stay text through a scored, resumed
CSV; the command line refuses a bad output before the model loads; a second run on an output being
written is refused; SIGTERM stops a run and its DataLoader workers. Each command is a subprocess
with a timeout; the tables' own checks are unit tests (``tests/unit/test_wild_tables.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_wild_tables import COLS
from vqalib.core.runs import project_root
from vqalib.inference.store import RowStore, read_scores


def test_scorer_output_ids_from_file_names_stay_text(tmp_path):
    """The user's path: clips named 0001.mp4, 1e5.mp4, NA.mp4 ... scored into a CSV, resumed, read back."""
    from model_helpers import write_clip
    from vqalib.inference.scorer import Scorer

    d = tmp_path / "clips"
    d.mkdir()
    names = ["0001", "007.5", "1e5", "NA", "null"]
    for i, n in enumerate(names):
        write_clip(d / f"{n}.mp4", n_frames=8, seed=i)
    scorer = Scorer("tiny", batch_size=2)
    out = tmp_path / "s.csv"
    scorer.score(d, out, limit=2)
    run = scorer.score(d, out)
    assert run.n_skipped == 2 and run.n_scored == 3
    assert sorted(run.rows["video_id"]) == sorted(names) and all(type(v) is str for v in run.rows["video_id"])
    assert sorted(read_scores(out)["video_id"]) == sorted(names)


NO_MODEL = "no-such-org/no-such-model"  # loading it fails: an error about the output proves it came first


def _clips(d: Path, n: int, frames: int = 8) -> Path:
    from model_helpers import write_clip

    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_clip(d / f"v{i:02d}.mp4", n_frames=frames, seed=i % 3)
    return d


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqalib", *args], cwd=project_root(), capture_output=True, text=True,
                          timeout=timeout)


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, res.stderr[-3000:]
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-3000:]
    return lines[0]


def test_cli_output_errors_come_before_the_model_loads(tmp_path):
    """Before: each one a traceback with exit 1 after the model had loaded (here: a model that does not
    exist, so the model's error would come first)."""
    d = _clips(tmp_path / "clips", 1)
    assert "must end in .csv, .jsonl or .parquet" in _one_error_line(
        _cli("score", str(d), "--model", NO_MODEL, "-o", str(tmp_path / "scores.txt")))
    (tmp_path / "file.csv").write_text("x\n")
    assert "is a file, not a folder" in _one_error_line(
        _cli("score", str(d), "--model", NO_MODEL, "-o", str(tmp_path / "file.csv" / "scores.csv")))
    assert "is a folder" in _one_error_line(_cli("score", str(d), "--model", NO_MODEL, "-o", str(tmp_path)))
    out = tmp_path / "s.csv"
    RowStore(out, COLS, {"model": NO_MODEL, "mode": "fast"}).open()  # an output written in fast mode
    line = _one_error_line(_cli("score", str(d), "--model", NO_MODEL, "--mode", "generate", "-o", str(out)))
    assert "mode='fast'" in line and "--overwrite" in line
    lst = tmp_path / "list.csv"
    lst.write_text(f"path,video_id\n{d / 'v00.mp4'},a\n{d / 'v00.mp4'}.x,a\n")
    (tmp_path / "clips" / "v00.mp4.x").write_bytes((d / "v00.mp4").read_bytes())
    assert "'a'" in _one_error_line(_cli("score", str(lst), "--model", NO_MODEL, "-o", str(tmp_path / "t.csv")))


def test_benchmark_parsed_score_in_fast_mode_is_refused_with_the_fix(tmp_path):
    """Before: the whole benchmark was scored, then 'NaN: no items'."""
    from vqalib.inference.benchmark import run_benchmark

    line = _one_error_line(_cli("benchmark", "KoNViD", "--videos", str(tmp_path), "--readout", "parsed_score",
                                "--model", NO_MODEL))
    assert "fast mode" in line and "--mode generate" in line
    with pytest.raises(ValueError, match="mode='generate'"):
        run_benchmark("KoNViD", tmp_path, model=NO_MODEL, readout="parsed_score")


def _wait_for(cond, what: str, proc=None, limit: float = 600.0) -> None:
    import time

    deadline = time.monotonic() + limit
    while not cond():
        assert proc is None or proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_two_runs_on_one_output_the_second_is_refused(tmp_path):
    """Before: both wrote a header into the CSV and every later resume crashed with int('batch')."""
    import signal

    from vqalib.inference.scorer import Scorer
    from vqalib.inference.store import OutputLocked, check_not_locked

    second = Scorer("tiny", mode="generate", max_new_tokens=24)
    # enough clips that the first run is still scoring after the second run's refusal and a CLI start (a fast
    # machine scored 24 clips before SIGTERM arrived, and the run ended with 0)
    n_clips = 120
    d = _clips(tmp_path / "clips", n_clips)
    out = tmp_path / "s.csv"
    cmd = [sys.executable, "-m", "vqalib", "score", str(d), "-o", str(out), "--batch-size", "1", "--num-workers", "0",
           "--no-progress", "--mode", "generate", "--max-new-tokens", "24"]
    first = subprocess.Popen(cmd, cwd=project_root(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: out.is_file() and out.read_text().count("\n") >= 2, "the first run wrote a row", first)
        with pytest.raises(OutputLocked, match=f"pid {first.pid}"):
            second.score(d, out)
        line = _one_error_line(_cli("score", str(d), "-o", str(out), "--mode", "generate", "--max-new-tokens", "24"))
        assert f"pid {first.pid}" in line and "being written by another run" in line
        assert first.poll() is None, "the first run ended before the second was tried"
        first.send_signal(signal.SIGTERM)  # a stopped run drops its lock too
        assert first.wait(timeout=300) == 128 + signal.SIGTERM, first.stderr.read()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert out.read_text().count("video_id,") == 1
    n = len(read_scores(out))
    assert 1 <= n < n_clips
    check_not_locked(out)  # free again: a rerun resumes
    assert second.score(d, out, limit=n + 1).n_scored == 1


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
def test_sigterm_stops_the_run_and_its_dataloader_workers(tmp_path):
    """`score --num-workers 2` stopped with SIGTERM (SLURM, timeout): the run exits, and so do its
    workers. Before: both workers stayed alive as orphans."""
    import signal

    d = _clips(tmp_path / "clips", 40, frames=16)
    out = tmp_path / "s.csv"
    cmd = [sys.executable, "-m", "vqalib", "score", str(d), "-o", str(out), "--batch-size", "1", "--num-workers", "2",
           "--no-progress", "--mode", "generate", "--max-new-tokens", "24"]
    proc = subprocess.Popen(cmd, cwd=project_root(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        _wait_for(lambda: out.is_file() and out.read_text().count("\n") >= 2, "a row was written", proc)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
        err = proc.stderr.read()
        assert rc == 128 + signal.SIGTERM and "stopped by signal 15" in err and "Traceback" not in err, err[-3000:]
        _wait_for(lambda: not any(_alive(w) for w in workers), "the workers exited", limit=60)
    finally:
        for pid in [proc.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    done = read_scores(out)
    assert 1 <= len(done) < 40  # the rows written before the stop are kept; a rerun resumes
