"""Label-preserving augmentation of sampled clips (the training collator and the tiny tower's pre-training)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def augment_video(video: Any, rng: np.random.Generator):
    """Random flips, transposition (together: any of the 8 rotations/reflections) and time reversal of
    a sampled clip; none changes a label of the sample dataset."""
    return dataclasses.replace(video, frames=augment_frames(video.frames, rng))


def augment_frames(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`augment_video` on frames ``[T, H, W, C]``; returns a contiguous array."""
    if rng.random() < 0.5:
        frames = frames[:, :, ::-1]
    if rng.random() < 0.5:
        frames = frames[:, ::-1]
    if rng.random() < 0.5:
        frames = frames[::-1]
    if rng.random() < 0.5:  # transpose (with the flips: all 8 rotations/reflections of the square)
        frames = frames.transpose(0, 2, 1, 3)
    return np.ascontiguousarray(frames)
