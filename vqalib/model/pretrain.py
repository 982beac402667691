"""Pre-training of the tiny preset's vision tower on unrated generated clips: ``"tiny-pretrained"``.

Why. The real Qwen2.5-VL arrives with a vision tower pre-trained on images and video, so SFT only
has to map features the tower already computes (motion, sharpness, colour, overlays) to human
scores. The tiny preset's tower is random, and 667 rated clips are too few for it to learn camera
motion while SFT also teaches the answer format: without this stage the demo's SFT reached
held-out SRCC ~0.4 on motion amplitude (docs/training.md, "Third round").

What. Synthetic-distortion pre-training, the recipe of DB-CNN (Zhang et al., 2018, "Blind image
quality assessment using a deep bilinear convolutional neural network", IEEE TCSVT), which
pre-trains a quality model's feature extractor to recognise synthetic distortions before it
sees human scores. :mod:`vqalib.data.synth` renders ``n_clips`` clips from a seed stream apart from
the sample dataset's, with every setting drawn continuously (no level grid, no raters, no scores,
no text), and the vision tower plus a linear head regress the rendering's physical settings
(:data:`PRETEXT_TARGETS`: camera speed in px/frame, zoom rate, shake, flicker, stutter, blur sigma,
haze, exposure, colour cast, overlay strength) from the mean of its merged tokens (MSE on
standardised targets). Only the vision tower's weights change; the language model, tokenizer and
processor are the plain ``"tiny"`` preset's. The head is discarded.

What it is not. The targets are set by the generator from the clip's latent levels, the same levels
the simulated raters score (plus their bias and noise): camera speed is linear in the motion-
amplitude level, blur sigma and haze in the clarity severity, the overlay, colour and exposure
targets in the content and aesthetic severities. So the stage is noise-free supervision of those
quantities on extra unrated clips, not generic image pre-training, and the SFT gains it brings on the
sample dataset come largely from that. It is the tiny demo's stand-in for a real model's pre-trained
tower, not a method of the paper, and a real run skips it (``MODEL`` = a hub id). The rated clips of
the sample dataset are never used.

The build is cached like the tiny preset (``<cache>/models/tiny-pretrained-<hash>``, keyed on the
tiny preset, :class:`PretrainConfig`, the generator's settings and version and
:data:`PRETRAIN_VERSION`); ``vqalib_pretrain.json`` in it records the settings, the training
loss and the R^2 of every target on ``n_eval`` further clips the stage never trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqalib.model.attention import attention_implementation
from vqalib.model.tiny import TINY_PRETRAINED, build_tiny, publish_folder

#: Bump when the stage's code changes what it builds (part of the cache key).
PRETRAIN_VERSION = "2"  # 2: each clip from its own seed (rendered in parallel)
#: The regressed settings of a rendered clip, in this order (see :func:`pretext_targets`).
PRETEXT_TARGETS: tuple[str, ...] = ("camera_speed_px", "zoom_rate", "shake_px", "flicker_amp", "stutter",
                                    "blur_sigma", "haze", "exposure", "colour_cast", "overlay")
#: Frames a clip is seen through: 8 frames 4 source frames apart (2 fps of the 8-fps clip), starting
#: at one of 4 phases (the demo SFT's sampling with ``time_jitter: 4``).
N_FRAMES, FRAME_STEP = 8, 4


@dataclass
class PretrainConfig:
    """Settings of the stage (all part of the cache key). ``seed`` seeds the clip stream and the
    weight updates; the stream is ``seed + 7919`` apart from the sample dataset's seeds."""

    n_clips: int = 800
    steps: int = 1200  # batch 8 x 1200 steps: same clips seen and time as 16 x 600, held-out R^2 of camera
    batch_size: int = 8  # speed 0.34 -> 0.41, blur 0.36 -> 0.40 (docs/training.md, "Fourth round")
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    n_eval: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("n_clips", "steps", "batch_size", "n_eval"):
            v = getattr(self, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"PretrainConfig.{key}={v!r}: must be an int >= 1")
        if not self.lr > 0:
            raise ValueError(f"PretrainConfig.lr={self.lr!r}: must be > 0")


def pretext_targets(plan: dict[str, Any], cfg) -> np.ndarray:
    """The physical settings ``float32 [len(PRETEXT_TARGETS)]`` of a clip planned by
    :func:`vqalib.data.synth.plan_clip` with generator settings ``cfg`` (a ``SynthConfig``).

    Units: camera speed in output px per source frame; zoom rate ``|d log zoom / frame| x 100``;
    shake in px (translation std); flicker as the gain amplitude; stutter as its severity (0 without);
    blur sigma in px; haze as the blend weight; exposure as the signed severity (+ over, - under);
    colour cast and overlay as severities (0 without). A defect that was not applied is 0.
    """
    from vqalib.data.synth import severity

    sev = {k: severity(v) for k, v in plan["levels"].items()}
    ap, p = plan["applied"], plan["params"]
    mq, s_m, s_a = ap["motion_quality"], sev["motion_quality"], sev["aesthetic_quality"]
    s_c = sev["clarity_quality"]
    exposure = s_a * (1 if p["exposure_dir"] == "over" else -1) if "exposure_error" in ap["aesthetic_quality"] else 0.0
    return np.array([
        p["camera"]["speed_px"], abs(p["camera"]["zoom_rate"]) * 100,
        cfg.shake_px * s_m if "camera_shake" in mq else 0.0,
        cfg.flicker_amp * s_m if "flicker" in mq else 0.0,
        s_m if "stutter" in mq else 0.0,
        cfg.blur_sigma * s_c, cfg.haze * s_c, exposure,
        s_a if "abnormal_colour" in ap["aesthetic_quality"] else 0.0,
        sev["content_quality"] if ap["content_quality"] else 0.0,
    ], dtype=np.float32)


def render_pretext(n: int, seed: int, cfg=None, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(clips uint8 [n, 32, 112, 112, 3], targets float32 [n, len(PRETEXT_TARGETS)])``.

    Every dimension's latent value is drawn uniformly from [1, 5] (continuous, independent), the
    photo uniformly from :data:`vqalib.data.synth.PHOTOS`; then :func:`vqalib.data.synth.plan_clip` and
    :func:`vqalib.data.synth.render_clip` as for the sample dataset (no H.264 encoding). Clip ``i`` is drawn
    from ``numpy.random.default_rng([seed, i])`` alone, so ``workers`` (processes, default
    :func:`vqalib.data.synth.generation_workers`) does not change the result. Calls from several threads at
    once each get their own output (:data:`_OUTPUTS`).
    """
    from vqalib.data import synth

    cfg = cfg or synth.SynthConfig()
    shape = (n, synth.N_FRAMES, synth.SIZE_PX, synth.SIZE_PX, 3)
    # shared anonymous memory: forked workers write their clips in place instead of pickling ~1 GB back
    clips = np.frombuffer(mmap.mmap(-1, math.prod(shape)), dtype=np.uint8).reshape(shape)
    targets = np.empty((n, len(PRETEXT_TARGETS)), dtype=np.float32)
    key = next(_KEYS)
    _OUTPUTS[key] = clips
    try:
        for i, y in enumerate(synth.map_clips(_render_one, [(cfg, [seed, i], i, key) for i in range(n)], workers)):
            targets[i] = y
    finally:
        del _OUTPUTS[key]
    return clips, targets


#: the output arrays of the render_pretext calls running now, by call; forked workers inherit them
#: (a job names its call's key, so concurrent calls from several threads never share an array)
_OUTPUTS: dict[int, np.ndarray] = {}
_KEYS = itertools.count()


def _render_one(job: tuple) -> np.ndarray:
    """Render pre-training clip ``i`` from its own seed into ``_OUTPUTS[key][i]`` (so the clips do not
    depend on the number of processes); returns its targets."""
    from vqalib.schema import levels as L
    from vqalib.data import synth

    cfg, seed, i, key = job
    rng = np.random.default_rng(seed)
    lv = {k: float(rng.uniform(L.SCORE_MIN, L.SCORE_MAX)) for k in L.DIMENSION_KEYS}
    plan = synth.plan_clip(lv, cfg, rng)
    photos = list(synth.PHOTOS)
    _OUTPUTS[key][i] = synth.render_clip(photos[int(rng.integers(0, len(photos)))], plan, cfg, rng)
    return pretext_targets(plan, cfg)


def _frames(clip: np.ndarray, phase: int) -> np.ndarray:
    return clip[phase::FRAME_STEP][:N_FRAMES]


def _pooled(visual, processor, videos: list[np.ndarray]):
    """Mean of the merged vision tokens per clip: ``[len(videos), out_hidden_size]``."""
    enc = processor.video_processor(videos=videos, return_tensors="pt")
    out = visual(enc["pixel_values_videos"], grid_thw=enc["video_grid_thw"])
    tokens = out.pooler_output if hasattr(out, "pooler_output") else out  # merged tokens [sum(T*H*W/4), D]
    return tokens.view(len(videos), -1, tokens.shape[-1]).mean(1)


def _load_base(base: str | os.PathLike):
    """The plain tiny folder in fp32 with sdpa attention, as ``load_model_and_processor(base)`` loads it
    (loaded here directly: :mod:`vqalib.model.loading` resolves ``"tiny-pretrained"`` through this module)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(base))
    model = AutoModelForImageTextToText.from_pretrained(str(base), dtype=torch.float32,
                                                        attn_implementation=attention_implementation(None, flash=False))
    return model, processor


def pretrain_vision(base: str | os.PathLike, out: str | os.PathLike, cfg: PretrainConfig | None = None,
                    synth_cfg=None, progress: bool = False) -> dict[str, Any]:
    """Pre-train the vision tower of the model folder ``base`` and save the whole model to ``out``.

    Returns the record also written to ``out/vqalib_pretrain.json``: the settings, the seconds
    spent (rendering, training), the training loss (first and last 50 steps' mean, on standardised
    targets) and ``heldout_r2`` per target on ``cfg.n_eval`` clips never trained on.
    """
    import torch

    from vqalib.video.augment import augment_frames

    cfg = cfg or PretrainConfig()
    t0 = time.perf_counter()
    clips, y = render_pretext(cfg.n_clips, cfg.seed + 7919, synth_cfg)
    ev_clips, ev_y = render_pretext(cfg.n_eval, cfg.seed + 7919 + 1_000_003, synth_cfg)
    render_s = time.perf_counter() - t0
    mu, sd = y.mean(0), y.std(0) + 1e-6
    yz = torch.from_numpy((y - mu) / sd)
    model, processor = _load_base(base)
    visual = model.model.visual
    rng = np.random.default_rng(cfg.seed)
    losses: list[float] = []
    t1 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = torch.nn.Linear(visual.config.out_hidden_size, len(PRETEXT_TARGETS))
        params = [*visual.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup_steps)
                                                  * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
        visual.train()
        for step in range(cfg.steps):
            idx = rng.integers(0, cfg.n_clips, cfg.batch_size)
            videos = [augment_frames(_frames(clips[j], int(rng.integers(0, FRAME_STEP))), rng) for j in idx]
            loss = torch.nn.functional.mse_loss(head(_pooled(visual, processor, videos)), yz[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if progress and (step % 100 == 0 or step == cfg.steps - 1):
                print(f"pretrain step {step + 1}/{cfg.steps}: loss {losses[-1]:.3f}", flush=True)
        visual.eval()
        with torch.no_grad():
            pred = torch.cat([head(_pooled(visual, processor, [_frames(c, 0) for c in ev_clips[k:k + 16]]))
                              for k in range(0, cfg.n_eval, 16)]).numpy() * sd + mu
    train_s = time.perf_counter() - t1
    resid = ((pred - ev_y) ** 2).sum(0)
    total = ((ev_y - ev_y.mean(0)) ** 2).sum(0)
    r2 = {k: (round(float(1 - resid[i] / total[i]), 3) if total[i] > 0 else None) for i, k in enumerate(PRETEXT_TARGETS)}
    k = min(50, len(losses))
    record = {"preset": TINY_PRETRAINED, "base": str(base), "config": dataclasses.asdict(cfg),
              "targets": list(PRETEXT_TARGETS), "render_seconds": round(render_s, 1), "train_seconds": round(train_s, 1),
              "loss_first": round(float(np.mean(losses[:k])), 4), "loss_last": round(float(np.mean(losses[-k:])), 4),
              "heldout_r2": r2, "version": PRETRAIN_VERSION}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    (out / "vqalib_pretrain.json").write_text(json.dumps(record, indent=2))
    return record


def _key(cfg: PretrainConfig, base: Path) -> str:
    from vqalib.data import synth

    blob = json.dumps({"base": base.name, "cfg": dataclasses.asdict(cfg), "synth": synth.SynthConfig().to_dict(),
                       "generator": synth.GENERATOR_VERSION, "v": PRETRAIN_VERSION}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def ensure_pretrained_tiny(cfg: PretrainConfig | None = None, progress: bool = True) -> Path:
    """The ``"tiny-pretrained"`` folder: built once (``pretrain_vision`` on the plain tiny preset,
    ~1.5 min on 2 CPU cores with the defaults), then reused from the cache; safe when several
    processes ask at once (a file lock; the build is moved into place when complete)."""
    from vqalib.core.runs import cache_dir
    from vqalib.data.synth import _lock

    cfg = cfg or PretrainConfig()
    base = build_tiny()
    final = cache_dir() / "models" / f"{TINY_PRETRAINED}-{_key(cfg, base)}"
    if (final / ".complete").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final.parent / f".{final.name}.lock"):
        if (final / ".complete").is_file():  # built by another process while this one waited
            return final
        if progress:
            print(f"building the {TINY_PRETRAINED} preset once (vision tower pre-training, cached in {final})", flush=True)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        pretrain_vision(base, tmp, cfg, progress=progress)
        return publish_folder(tmp, final)
