"""The training frame cache stays within its budgets (issue 19, item 4).

Real mp4 files written here and decoded by the project's sampler (decord / PyAV) in this process (the
memory traced as clips grow and the DataLoader worker processes: ``tests/integration/test_frame_cache_runs.py``).
Frames are random noise (incompressible) unless said otherwise, so a clip's bytes on disk are close to
its bytes in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vqalib.data.synth import write_mp4
from vqalib.train.collator import (DEFAULT_FRAME_CACHE_MB, DEFAULT_FRAME_DISK_CACHE_MB, FrameCache, TimeJitterCache,
                                   frame_cache)
from vqalib.video.frames import SamplingConfig

ROOT = Path(__file__).resolve().parents[2]
SIDE = 112
SAMPLING = SamplingConfig(fps=2.0, min_frames=4, max_frames=8, max_pixels=SIDE * SIDE, min_pixels=SIDE * SIDE)
CLIP_BYTES = 8 * SIDE * SIDE * 3  # 8 frames of 112 x 112 RGB uint8: 301,056 bytes (+ indices, timestamps)
MIB = 1 << 20


def _clips(folder: Path, n: int, noise: bool = True) -> list[Path]:
    """``n`` 4-s clips at 4 fps (16 source frames; the sampling takes 8), each different."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        if noise:
            frames = rng.integers(0, 256, (16, SIDE, SIDE, 3), dtype=np.uint8)
        else:
            frames = np.stack([np.full((SIDE, SIDE, 3), (8 * k + 16 * i) % 256, dtype=np.uint8) for k in range(16)])
        out.append(write_mp4(folder / f"clip{i:03d}.mp4", frames, fps=4))
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return _clips(tmp_path_factory.mktemp("clips"), 10)


def test_an_evicted_clip_comes_back_byte_identical(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("VQALIB_CACHE", str(tmp_path / "cache"))
    first = {p: FrameCache(SAMPLING, disk=False, memory_mb=0).get(p) for p in clips[:2]}
    # memory only: room for one clip, so A, B, A decodes A twice
    cache = FrameCache(SAMPLING, disk=False, memory_mb=0.4)
    a1, b, a2 = cache.get(clips[0]), cache.get(clips[1]), cache.get(clips[0])
    assert a2 is not a1 and cache.n_decoded == 3 and cache.n_evicted == 2
    for got, want in ((a1, first[clips[0]]), (b, first[clips[1]]), (a2, first[clips[0]])):
        assert got.frames.tobytes() == want.frames.tobytes()
        assert got.indices.tolist() == want.indices.tolist() and got.timestamps.tolist() == want.timestamps.tolist()
    # memory + disk: the evicted clip is read back from the disk copy, not decoded
    cache = FrameCache(SAMPLING, memory_mb=0.4)
    a1, b, a2 = cache.get(clips[0]), cache.get(clips[1]), cache.get(clips[0])
    assert (cache.n_decoded, cache.n_from_disk) == (2, 1)
    assert a2.frames.tobytes() == first[clips[0]].frames.tobytes() and a2.frames.dtype == np.uint8
    assert a2.metadata() == first[clips[0]].metadata()
    # no memory at all: every get reads the disk, frames still identical
    cache = FrameCache(SAMPLING, memory_mb=0)
    assert cache.get(clips[1]).frames.tobytes() == first[clips[1]].frames.tobytes()
    assert cache.mem_bytes == 0 and (cache.n_decoded, cache.n_from_disk) == (0, 1)


def test_disk_cache_stays_within_its_budget_least_recently_used_out(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("VQALIB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "frames"
    budget_mb = 1.0  # ~3 noise clips (they do not compress)
    cache = FrameCache(SAMPLING, memory_mb=0, disk_mb=budget_mb)
    sizes = []
    for i, path in enumerate(clips[:6]):
        cache.get(path)
        if i == 1:
            cache.get(clips[0])  # a read makes clip 0 recently used again
        sizes.append(sum(f.stat().st_size for f in folder.glob("*.npz")))
        assert sizes[-1] <= budget_mb * MIB, sizes
    assert len(list(folder.glob("*.npz"))) == 3 and not list(folder.glob("*.tmp*"))
    # the three most recently used (clips 3, 4, 5) are there; clip 0 (read at step 1) was trimmed later
    fresh = FrameCache(SAMPLING, memory_mb=0, disk_mb=budget_mb)
    for path in clips[3:6]:
        fresh.get(path)
    assert (fresh.n_decoded, fresh.n_from_disk) == (0, 3)
    # disk_mb=0: no disk cache at all
    off = FrameCache(SAMPLING, memory_mb=0, disk_mb=0)
    off.get(clips[7])
    assert not off.disk and len(list(folder.glob("*.npz"))) == 3


def test_time_jitter_cache_bounds_dense_and_normal_frames_together(clips):
    cache = TimeJitterCache(SAMPLING, 2, disk=False, memory_mb=1.0)
    rng = np.random.default_rng(0)
    for path in clips[:6]:
        cache.draw(path, rng)
        cache.get(path)
        assert cache.mem_bytes == cache.normal.mem_bytes <= MIB
    assert cache.n_decoded == 6 and cache.normal.n_decoded == 6


def test_config_budgets_reach_the_cache_and_bad_values_are_refused():
    from vqalib.train.common import CommonConfig, load_config

    assert (CommonConfig.frame_cache_mb, CommonConfig.frame_disk_cache_mb) == (DEFAULT_FRAME_CACHE_MB,
                                                                               DEFAULT_FRAME_DISK_CACHE_MB)
    cfg = load_config("sft", None, ["frame_cache_mb=64", "frame_disk_cache_mb=0", "augment=false"])
    cache = frame_cache(cfg, SAMPLING)
    assert type(cache) is FrameCache and cache.memory_mb == 64 and not cache.disk
    cfg = load_config("sft", None, ["frame_cache_mb=32", "augment=true", "time_jitter=4"])
    cache = frame_cache(cfg, SAMPLING)
    assert isinstance(cache, TimeJitterCache) and cache.normal.memory_mb == 32 and cache.normal._mem is cache._mem
    for key in ("frame_cache_mb", "frame_disk_cache_mb", "num_workers"):
        with pytest.raises(ValueError, match=f"{key}=-1"):
            load_config("sft", None, [f"{key}=-1"])
    with pytest.raises(ValueError, match="memory_mb=-1"):
        FrameCache(SAMPLING, memory_mb=-1)


SEVEN_B = sorted((ROOT / "env" / "train_configs").glob("*_7b*.yaml"))


@pytest.mark.parametrize("path", SEVEN_B, ids=[p.stem for p in SEVEN_B])
def test_7b_configs_decode_in_dataloader_workers_within_a_budget(path):
    from vqalib.train.common import load_config, training_arguments

    stage = path.stem.split("_")[0]
    cfg = load_config(stage, path, ["device=cpu", "output_dir=runs/test_frame_cache"])
    assert cfg.num_workers > 0
    # per rank at most (1 + num_workers) budgets of decoded frames: a few GiB, whatever the dataset size
    assert 0 < (1 + cfg.num_workers) * cfg.frame_cache_mb <= 4096
    assert 0 < cfg.frame_disk_cache_mb
    args = training_arguments(cfg)
    assert args.dataloader_num_workers == cfg.num_workers and args.dataloader_persistent_workers
