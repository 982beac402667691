"""The scorer (vqalib.inference): real and generated clips, decode failures, resume after a kill,
batch invariance, the score CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_helpers import QWEN_DIR, shrunk_real_model, synthetic_clip, write_clip
from vqalib.inference.scorer import FAST_ANSWER, Scorer, columns, distributions
from conftest import SHARED_DATA
from vqalib.inference.sources import VideoListError, list_videos
from vqalib.inference.store import ResumeMismatch, read_scores
from vqalib.schema.levels import DIMENSION_KEYS, LEVELS

ROOT = Path(__file__).resolve().parents[2]
REAL_VIDEOS = SHARED_DATA / "videos"


@pytest.fixture(scope="module")
def fast_scorer():
    return Scorer("tiny", mode="fast", batch_size=2)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    for i, n in enumerate((16, 24, 12)):
        write_clip(d / f"clip{i}.mp4", n_frames=n, seed=i)
    (d / "empty.mp4").write_bytes(b"")  # the simplest corrupt file
    return d


def _check_rows(df: pd.DataFrame) -> None:
    ok = df[df["status"] == "ok"]
    dist = distributions(ok)
    assert np.allclose(dist.sum(-1), 1.0, atol=1e-5)
    for d, k in enumerate(DIMENSION_KEYS):
        assert np.allclose(ok[f"{k}_expected"], dist[:, d] @ LEVELS)
        assert np.array_equal(ok[f"{k}_argmax"], LEVELS[dist[:, d].argmax(-1)])


def test_scores_generated_clips_and_lists_decode_failures(fast_scorer, clips, tmp_path):
    run = fast_scorer.score(clips, tmp_path / "scores.csv")
    df = pd.read_csv(tmp_path / "scores.csv")
    assert list(df.columns) == columns("fast")
    assert len(df) == 4 and run.n_scored == 3 and run.n_failed == 1
    bad = df[df["video_id"] == "empty"].iloc[0]
    assert bad["status"] == "decode_error" and "empty" in bad["error"]
    assert bad[[c for c in df.columns if c.startswith("p_")]].isna().all()  # never substituted
    assert "FAILED" in run.summary() and "empty.mp4" in run.summary()
    _check_rows(df)
    assert (df.loc[df.status == "ok", "n_frames"] >= 4).all()


def test_real_clips_score(fast_scorer, tmp_path):
    if not REAL_VIDEOS.is_dir():
        pytest.skip(f"real clips not found at {REAL_VIDEOS}")
    run = fast_scorer.score(REAL_VIDEOS, tmp_path / "real.parquet")
    df = pd.read_parquet(tmp_path / "real.parquet")
    assert len(df) == len(list_videos(REAL_VIDEOS)) == 7 and run.n_failed == 0
    assert not (tmp_path / "real.parquet.partial.jsonl").exists()
    _check_rows(df)


def test_fast_matches_independent_passes_on_the_fixed_answer(fast_scorer):
    """The fast readout is exactly pi(s | prefix) of plain teacher-forced passes on FAST_ANSWER."""
    import torch

    from vqalib.model.inputs import build_batch
    from vqalib.method.distributions import level_logprobs_independent, normalise

    clip = synthetic_clip(8, seed=4)
    res = fast_scorer.run_batch([clip])
    b = build_batch(fast_scorer.processor, [clip], [FAST_ANSWER])
    with torch.no_grad():
        ref, _ = normalise(level_logprobs_independent(fast_scorer.model, b, batched_levels=True))
    assert np.allclose(res.dist, ref.exp().numpy(), atol=1e-5)


@pytest.mark.parametrize("model", ["tiny", "shrunk_real"])
def test_batch_invariance(model):
    """A clip alone and in a batch with a longer and a shorter clip: same distributions and text."""
    if model == "tiny":
        kw = {"model": "tiny"}
    else:
        if not QWEN_DIR.is_dir():
            pytest.skip(f"{QWEN_DIR} not found")
        net, proc = shrunk_real_model()
        kw = {"model": net, "processor": proc}
    clip = synthetic_clip(8, seed=1)
    longer, shorter = synthetic_clip(16, seed=2), synthetic_clip(4, seed=3)
    for mode in ("fast", "generate"):
        s = Scorer(**kw, mode=mode, max_new_tokens=12, device="cpu")
        alone, mixed = s.run_batch([clip]), s.run_batch([longer, clip, shorter])
        assert np.abs(alone.dist[0] - mixed.dist[1]).max() < 1e-5
        assert np.abs(alone.outside[0] - mixed.outside[1]).max() < 1e-5
        if mode == "generate":
            assert alone.texts[0] == mixed.texts[1] and len(alone.texts[0]) > 0


def test_generate_mode_rows(clips, tmp_path):
    s = Scorer("tiny", mode="generate", max_new_tokens=16, batch_size=3)
    run = s.score(sorted(clips.glob("clip*.mp4")), tmp_path / "gen.jsonl")
    df = read_scores(tmp_path / "gen.jsonl")
    assert list(df.columns) == columns("generate") and run.n_scored == 3
    assert df["raw_text"].map(len).gt(0).all()
    # the untrained model writes no parsable score lines: the parsed column stays empty, never filled
    for k in DIMENSION_KEYS:
        assert (df[f"{k}_parsed"].isna() == (df[f"{k}_parse_status"] != "ok")).all()
    _check_rows(df)


def test_resume_skips_done_and_refuses_other_settings(fast_scorer, clips, tmp_path):
    out = tmp_path / "s.csv"
    first = fast_scorer.score(clips, out, limit=2)
    assert first.n_scored == 2
    again = fast_scorer.score(clips, out)
    assert again.n_skipped == 2 and again.n_scored + again.n_failed == 2
    df = pd.read_csv(out)
    assert len(df) == 4 and df["path"].is_unique
    other = Scorer(fast_scorer.model, processor=fast_scorer.processor, mode="generate")
    with pytest.raises(ResumeMismatch, match="mode"):
        other.score(clips, out)


def test_torn_last_row_is_cut_and_rescored(fast_scorer, clips, tmp_path):
    out = tmp_path / "t.csv"
    fast_scorer.score(clips, out, limit=2)
    text = out.read_text()
    out.write_text(text[:-40])  # a write cut short by a kill
    with pytest.warns(UserWarning, match="torn last row"):
        run = fast_scorer.score(clips, out)
    df = pd.read_csv(out)
    assert len(df) == 4 and df["path"].is_unique and run.n_skipped == 1


def test_killed_run_resumes_without_loss(clips, tmp_path):
    """Kill a CLI run (SIGKILL) after some rows are written, rerun: every video once, old rows kept."""
    many = tmp_path / "many"
    many.mkdir()
    for i in range(6):
        os.symlink(clips / f"clip{i % 3}.mp4", many / f"v{i:02d}.mp4")
    out = tmp_path / "k.csv"
    cmd = [sys.executable, "-m", "vqalib", "score", str(many), "-o", str(out), "--batch-size", "1",
           "--num-workers", "0", "--no-progress", "--max-new-tokens", "32", "--mode", "generate"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_file() and out.read_text().count("\nv") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = pd.read_csv(out)
    assert 2 <= len(before) < 6
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=600, capture_output=True)
    after = pd.read_csv(out)
    assert len(after) == 6 and after["path"].is_unique
    pd.testing.assert_frame_equal(after.head(len(before)), before)


def test_workers_give_the_same_rows(fast_scorer, clips, tmp_path):
    s0 = fast_scorer.score(clips, None).rows
    s2 = Scorer(fast_scorer.model, processor=fast_scorer.processor, num_workers=2, batch_size=2).score(clips).rows
    cols = [c for c in s0.columns if c.startswith("p_")]
    assert np.allclose(s0[cols].to_numpy(float), s2[cols].to_numpy(float), atol=1e-6, equal_nan=True)


def test_video_lists(clips, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# my clips\n{clips / 'clip0.mp4'}\n\n{clips / 'clip1.mp4'}\n")
    assert list(list_videos(lst)["video_id"]) == ["clip0", "clip1"]
    csv = tmp_path / "list.csv"
    pd.DataFrame({"video_id": ["a", "b"], "path": [str(clips / "clip0.mp4"), str(clips / "clip2.mp4")]}).to_csv(csv, index=False)
    assert list(list_videos(csv)["video_id"]) == ["a", "b"]
    assert len(list_videos(str(clips / "clip*.mp4"))) == 3
    with pytest.raises(VideoListError, match="no 'path' column"):
        bad = tmp_path / "bad.csv"
        bad.write_text("file\nx.mp4\n")
        list_videos(bad)
    with pytest.raises(VideoListError, match="no such folder"):
        list_videos(tmp_path / "nope")


def test_resume_tries_failed_videos_again_and_keeps_their_last_row(fast_scorer, tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    write_clip(d / "a.mp4", n_frames=16, seed=0)
    (d / "b.mp4").write_bytes(b"not a video")
    out = tmp_path / "s.csv"
    first = fast_scorer.score(d, out)
    assert (first.n_scored, first.n_failed, first.n_retried) == (1, 1, 0)
    write_clip(d / "b.mp4", n_frames=16, seed=1)  # the user re-encodes the broken file
    again = fast_scorer.score(d, out)
    assert (again.n_skipped, again.n_scored, again.n_failed, again.n_retried) == (1, 1, 0, 1)
    assert "1 of the videos tried had failed in an earlier run" in again.summary()
    assert len(pd.read_csv(out)) == 3  # append-only: the old failed row stays in the file ...
    df = read_scores(out)  # ... and the reader returns the last row per video
    assert len(df) == 2 and (df["status"] == "ok").all() and df["path"].is_unique
    assert len(again.rows) == 2 and (again.rows["status"] == "ok").all()


def test_score_command_exits_1_when_a_video_fails(tmp_path, capsys):
    from vqalib.cli import main

    d = tmp_path / "clips"
    d.mkdir()
    write_clip(d / "a.mp4", n_frames=16, seed=0)
    (d / "b.mp4").write_bytes(b"")
    rc = main(["score", str(d), "--model", "tiny", "-o", str(tmp_path / "s.csv"), "--num-workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "1 video(s) failed to decode" in err and "tried again" in err
    (d / "b.mp4").unlink()
    assert main(["score", str(d), "--model", "tiny", "-o", str(tmp_path / "s.csv"), "--num-workers", "0",
                 "--no-progress"]) == 0


def test_no_progress_silences_every_bar(tmp_path):
    """``score --no-progress`` prints no progress bar at all, including transformers' weight loading;
    without the flag both bars appear (so the check can fail)."""
    d = tmp_path / "clips"
    d.mkdir()
    write_clip(d / "a.mp4", n_frames=16, seed=0)

    def run(*extra):
        out = tmp_path / f"s{len(extra)}.csv"
        proc = subprocess.run([sys.executable, "-m", "vqalib", "score", str(d), "--model", "tiny", "-o", str(out),
                               "--num-workers", "0", *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout + proc.stderr

    quiet, loud = run("--no-progress"), run()
    assert "Loading weights" in loud and "video/s" in loud
    assert "%|" not in quiet and "Loading weights" not in quiet
    assert "1 scored now" in quiet
