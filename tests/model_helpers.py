"""Small helpers shared by the model tests (synthetic clips, the tiny model, the shrunk real model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqalib.video.frames import SampledVideo

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
QWEN_DIR = SHARED / "qwen2_5_vl"


def synthetic_clip(n_frames: int = 8, size: tuple[int, int] = (112, 112), source_fps: float = 30.0,
                   n_source_frames: int = 120, seed: int = 0) -> SampledVideo:
    """A SampledVideo of random frames with evenly spaced source indices (no file needed)."""
    rng = np.random.default_rng(seed)
    h, w = size
    idx = np.floor((np.arange(n_frames) + 0.5) * n_source_frames / n_frames).astype(np.int64)
    return SampledVideo(frames=rng.integers(0, 256, (n_frames, h, w, 3), dtype=np.uint8), indices=idx,
                        timestamps=idx / source_fps, source_fps=source_fps, width=w, height=h,
                        n_source_frames=n_source_frames, backend="synthetic", path=f"synthetic-{seed}")


def shrunk_real_model(seed: int = 0):
    """(model, processor): a random model from the real Qwen2.5-VL-7B config.json with sizes shrunk,
    and the real processor files. Caller skips when ``QWEN_DIR`` is absent."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from vqalib.model.tiny import shrink_config

    cfg = shrink_config(QWEN_DIR / "config.json")
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    return model, AutoProcessor.from_pretrained(str(QWEN_DIR))


def write_clip(path, n_frames: int = 16, size: int = 112, fps: int = 8, seed: int = 0):
    """Write a small real H.264 mp4 with PyAV (moving gradient + noise); returns the path."""
    import av

    rng = np.random.default_rng(seed)
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    base = np.linspace(0, 255, size, dtype=np.float32)[None, :, None].repeat(size, 0).repeat(3, 2)
    for i in range(n_frames):
        img = np.clip(np.roll(base, 4 * i, axis=1) + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path
