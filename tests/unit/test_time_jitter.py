"""Temporal jitter of training clips (``collator.TimeJitterCache``, config ``time_jitter``).

Real mp4 files whose frame k is painted with grey level 8 k, so a decoded frame tells which source
frame it is; decoded by the project's sampler (decord / PyAV)."""

from __future__ import annotations

import numpy as np
import pytest

from vqalib.data.synth import write_mp4
from vqalib.train.collator import FrameCache, TimeJitterCache
from vqalib.video.frames import SamplingConfig


def _numbered_clip(path, n_frames: int, fps: int = 8):
    frames = np.stack([np.full((56, 56, 3), 8 * k, dtype=np.uint8) for k in range(n_frames)])
    return write_mp4(path, frames, fps=fps)


def _frame_numbers(video) -> np.ndarray:
    return np.rint(video.frames.reshape(len(video.frames), -1).mean(1) / 8).astype(int)


SAMPLING = SamplingConfig(fps=2.0, min_frames=4, max_frames=8, max_pixels=56 * 56, min_pixels=56 * 56)


def test_draws_keep_count_spacing_and_cover_every_phase(tmp_path):
    path = _numbered_clip(tmp_path / "c.mp4", 32)  # 4 s at 8 fps: normal sampling takes frames 2, 6, ..., 30
    normal = FrameCache(SAMPLING, disk=False).get(path)
    cache = TimeJitterCache(SAMPLING, 4, disk=False)
    assert cache.get(path).indices.tolist() == normal.indices.tolist() == list(range(2, 32, 4))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        v = cache.draw(path, rng)
        first = int(v.indices[0])
        seen.add(first)
        assert v.indices.tolist() == list(range(first, 32, 4))  # same count, same spacing, one shift
        np.testing.assert_allclose(v.timestamps, v.indices / 8.0)
        assert _frame_numbers(v).tolist() == v.indices.tolist()  # the pixels are those frames
        assert v.metadata()["total_num_frames"] == normal.metadata()["total_num_frames"]
        assert v.metadata()["fps"] == normal.metadata()["fps"]
    assert seen == {0, 1, 2, 3}
    assert cache.n_unjittered == 0


def test_clip_without_enough_frames_for_a_phase_is_drawn_unjittered_and_counted(tmp_path):
    # 12 frames at 3 fps (4 s): the normal sampling takes 8, the dense one can only take the 12 there are
    path = _numbered_clip(tmp_path / "slow.mp4", 12, fps=3)
    cache = TimeJitterCache(SAMPLING, 4, disk=False)
    normal = FrameCache(SAMPLING, disk=False).get(path)
    rng = np.random.default_rng(0)
    draws = [cache.draw(path, rng) for _ in range(5)]
    assert all(d.indices.tolist() == normal.indices.tolist() for d in draws)
    assert all(_frame_numbers(d).tolist() == normal.indices.tolist() for d in draws)
    assert cache.n_unjittered == 5
    # 16 frames at 2 fps (8 s): 8 taken, 16 dense -> two phases
    path2 = _numbered_clip(tmp_path / "two.mp4", 16, fps=2)
    firsts = {int(cache.draw(path2, rng).indices[0]) for _ in range(20)}
    assert firsts == {0, 1} and cache.n_unjittered == 5


@pytest.mark.parametrize("k", [0, 1, 2.5])
def test_bad_factor_is_refused(k):
    with pytest.raises(ValueError, match="time_jitter"):
        TimeJitterCache(SAMPLING, k)


def test_config_refuses_a_bad_factor():
    from vqalib.train.common import load_config

    assert load_config("sft", None, {"time_jitter": 4}).time_jitter == 4
    with pytest.raises(ValueError, match="time_jitter=0"):
        load_config("sft", None, {"time_jitter": 0})
