"""The training frame cache at work (issue 19, item 4): memory traced with ``tracemalloc`` while ten
clips go through a 1 MiB budget, real ``torch.utils.data.DataLoader`` worker processes that decode the
clips and whose counts reach the main process, also in a tiny SFT run's manifest. The cache's rules in
one process: ``tests/unit/test_frame_cache.py``."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from test_frame_cache import CLIP_BYTES, MIB, SAMPLING, SIDE, clips  # noqa: F401  (clips: a module fixture)
from vqalib.train.collator import FrameCache, video_nbytes


def test_memory_never_exceeds_the_budget_as_clips_grow(clips):
    budget_mb = 1.0  # holds 3 clips of ~0.29 MiB
    cache = FrameCache(SAMPLING, disk=False, memory_mb=budget_mb)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        held = []
        for path in clips:
            v = cache.get(path)
            assert v.frames.shape == (8, SIDE, SIDE, 3) and video_nbytes(v) > CLIP_BYTES
            del v
            gc.collect()
            assert cache.mem_bytes <= budget_mb * MIB
            held.append(tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    # the memory the cache really retains (numpy buffers are traced) stops growing at the budget:
    # unbounded, 10 clips would hold 10 x 0.29 MiB = 2.9 MiB
    assert max(held) <= budget_mb * MIB + 0.25 * MIB, [round(h / MIB, 2) for h in held]
    assert held[-1] <= held[3] + 0.25 * MIB
    assert cache.n_decoded == len(clips) and cache.n_evicted == len(clips) - 3


def _frames_of(batch):
    return [v.frames.tobytes() for v in batch]


@pytest.mark.parametrize("workers", [2])
def test_dataloader_workers_decode_and_their_counts_reach_the_main_process(clips, workers):
    import torch

    cache = FrameCache(SAMPLING, disk=False, memory_mb=0.6)
    loader = torch.utils.data.DataLoader([str(p) for p in clips[:6]], batch_size=2, num_workers=workers,
                                         collate_fn=lambda paths: [cache.get(p) for p in paths])
    got = [f for batch in loader for f in _frames_of(batch)]
    assert cache.n_decoded == 6 and cache.mem_bytes == 0  # decoded in the workers, counted here
    serial = FrameCache(SAMPLING, disk=False, memory_mb=0)
    assert got == [serial.get(p).frames.tobytes() for p in clips[:6]]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_training_run_with_a_worker_counts_the_workers_decodes_in_its_manifest(tmp_path):
    """One tiny SFT step with one DataLoader worker and no disk cache: every clip is decoded in the
    worker process, and the manifest's ``frames_decoded`` counts them (it said 0 before)."""
    import json

    from vqalib.train.common import load_config
    from vqalib.train.sft import train_sft

    cfg = load_config("sft", None, ["sample_size=smoke", "max_clips=4", "batch_size=2", "report_to=none",
                                    "warmup_steps=0", "max_steps=1", "device=cpu", "num_workers=1",
                                    "frame_cache_mb=16", "frame_disk_cache_mb=0", f"output_dir={tmp_path / 'sft'}"])
    train_sft(cfg, progress=False)
    man = json.loads((tmp_path / "sft" / "vqalib_train_manifest.json").read_text())
    assert man["config"]["num_workers"] == 1 and man["config"]["frame_cache_mb"] == 16
    assert 2 <= man["frames_decoded"] <= 4 and man["frames_from_disk_cache"] == 0  # 1 batch of 2 (+ prefetch)
