"""GRPO compute before -> after issue 19 item 6, side by side in one run, on a shrunk real config.

The model is a random Qwen2.5-VL built from ``../shared/data/qwen2_5_vl/config.json`` (the real
152,064-token vocabulary, special ids, patch/window/merge sizes, M-RoPE) with the layers and widths
shrunk (``vqalib.model.loading.shrink_config``), wrapped in LoRA with the vision tower frozen, as in
``env/train_configs/grpo_7b_lora.yaml``; G = 8 completions per prompt, KL to the reference policy
(the adapter disabled). One GRPO step = ``GRPOTrainer.compute_loss`` (rollouts with the video,
rewards, policy and reference log-probs, loss) + backward.

- before: every copy of the clip through the vision tower in every pass, and the completion
  log-probs from full-sequence logits (the code before the change, kept here as
  ``full_sequence_completion_logprobs`` and patched in);
- after: the library as it is (each clip encoded once per step, logits only at completion positions).

Printed: vision-tower encodings per prompt, peak CPU RSS of the step above the process's resident
size before it (sampled every 5 ms), step time (median), each before -> after with the ratio; then
the vision attention calls of one clip at the 7B shape (32 frames at the 7B max pixels, the real
tower depth) under ``sdpa`` (counted) against flash-attention's one varlen call per layer.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_grpo_compute.py

(about 3 minutes on 2 busy CPU cores).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train_steps import PeakRSS  # noqa: E402

QWEN_DIR = ROOT.parent / "shared" / "data" / "qwen2_5_vl"


def full_sequence_completion_logprobs(model, prompt, completion, mask, temperature: float = 1.0):
    """``vqalib.train.grpo.completion_logprobs`` before issue 19: logits of every position [N, P + L, V]."""
    import torch.nn.functional as F

    P = prompt["input_ids"].shape[1]
    ids = torch.cat([prompt["input_ids"], completion], dim=1)
    attn = torch.cat([prompt["attention_mask"], mask.to(prompt["attention_mask"].dtype)], dim=1)
    extra = {k: v for k, v in prompt.items() if k not in {"input_ids", "attention_mask", "mm_token_type_ids"}}
    mm = prompt["mm_token_type_ids"]
    extra["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(completion, dtype=mm.dtype)], dim=1)
    logits = model(input_ids=ids, attention_mask=attn, **extra).logits[:, P - 1:-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.gather(F.log_softmax(logits, dim=-1), 2, completion[..., None]).squeeze(-1)


def clip(seed: int, frames: int, side: int):
    from vqalib.video.frames import SampledVideo

    rng = np.random.default_rng(seed)
    idx = np.arange(frames, dtype=np.int64) * 15
    return SampledVideo(frames=rng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8), indices=idx,
                        timestamps=idx / 30.0, source_fps=30.0, width=side, height=side, n_source_frames=frames * 15,
                        backend="synthetic", path=f"synthetic-{seed}")


def build(args):
    """(LoRA model with frozen base, processor) from the shrunk real config."""
    from peft import get_peft_model
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from vqalib.model.loading import LoraSettings
    from vqalib.model.attention import attention_implementation
    from vqalib.model.tiny import shrink_config

    cfg = shrink_config(QWEN_DIR / "config.json")  # text hidden 64, 2 layers; vision depth 2, hidden 32
    impl = attention_implementation("cpu")
    cfg._attn_implementation = impl["text_config"]
    cfg.text_config._attn_implementation = impl["text_config"]
    cfg.vision_config._attn_implementation = impl["vision_config"]
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    model = get_peft_model(model, LoraSettings(r=8, alpha=16, dropout=0.0).to_peft())
    for name, p in model.named_parameters():
        if "lora_B" in name:  # an adapter that matters, so the policy differs from the reference
            p.data.normal_(0, 0.02)
    return model, AutoProcessor.from_pretrained(str(QWEN_DIR))


class TowerVideos:
    """Videos through the vision tower (rows of ``grid_thw`` at its forward)."""

    def __init__(self, model):
        from vqalib.model.loading import vision_tower

        self.n = 0
        self.h = vision_tower(model).register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.n += int(kwargs["grid_thw"].shape[0])


def grpo_step(trainer, model, inputs, before: bool) -> tuple[float, int, float]:
    """One step: (seconds, videos through the tower, peak RSS above the start, bytes)."""
    import vqalib.train.grpo as grpo

    trainer.reuse_vision = not before
    saved = grpo.completion_logprobs
    if before:
        grpo.completion_logprobs = full_sequence_completion_logprobs
    counter = TowerVideos(model)
    gc.collect()
    try:
        with PeakRSS() as mem:
            torch.manual_seed(1)
            t0 = time.perf_counter()
            loss = trainer.compute_loss(model, inputs)
            loss.backward()
            dt = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
    finally:
        grpo.completion_logprobs = saved
        counter.h.remove()
    return dt, counter.n, mem.peak - mem.base


def vision_attention_calls(frames: int, max_pixels: int) -> tuple[int, int, tuple[int, int, int]]:
    """sdpa calls of one clip through a tower of the real depth (widths shrunk) at the 7B sampling;
    returns (calls, tower depth, grid_thw)."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from vqalib.model.inputs import build_batch
    from vqalib.model.tiny import shrink_config

    real = __import__("json").loads((QWEN_DIR / "config.json").read_text())["vision_config"]
    cfg = shrink_config(QWEN_DIR / "config.json")
    cfg.vision_config.depth = real["depth"]  # the real depth and full-attention layers, widths shrunk
    cfg.vision_config.fullatt_block_indexes = real["fullatt_block_indexes"]
    cfg._attn_implementation = cfg.text_config._attn_implementation = cfg.vision_config._attn_implementation = "sdpa"
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    proc = AutoProcessor.from_pretrained(str(QWEN_DIR))
    side = int((max_pixels ** 0.5) // 28 * 28)
    batch = build_batch(proc, [clip(0, frames, side)])
    calls = 0
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting(*a, **k):
        nonlocal calls
        calls += 1
        return real_sdpa(*a, **k)

    torch.nn.functional.scaled_dot_product_attention = counting
    try:
        with torch.no_grad():
            model.model.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"])
    finally:
        torch.nn.functional.scaled_dot_product_attention = real_sdpa
    return calls, real["depth"], tuple(int(x) for x in batch["video_grid_thw"][0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--G", type=int, default=8, help="completions per prompt (GRPO group size)")
    ap.add_argument("--frames", type=int, default=2, help="frames of the GRPO clip")
    ap.add_argument("--side", type=int, default=224, help="frame side of the GRPO clip (pixels)")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2, help="steps per side (alternating before/after)")
    ap.add_argument("--attn-frames", type=int, default=32, help="frames of the attention-count clip (7B: 32)")
    ap.add_argument("--attn-max-pixels", type=int, default=200704, help="pixels per frame (7B config: 200704)")
    args = ap.parse_args()
    if not QWEN_DIR.is_dir():
        sys.exit(f"needs the real config and processor files at {QWEN_DIR}")
    from transformers import TrainingArguments

    from vqalib.model.inputs import build_batch
    from vqalib.train.common import GRPOConfig
    from vqalib.train.grpo import GRPOTrainer

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, proc = build(args)
    model.train()
    cfg = GRPOConfig(num_generations=args.G, max_new_tokens=args.max_new_tokens, kl_coef=0.1, device="cpu",
                     output_dir="/tmp/bench_grpo_compute")
    trainer = GRPOTrainer(model=model, args=TrainingArguments(output_dir="/tmp/bench_grpo_compute", report_to=[],
                                                              use_cpu=True),
                          processing_class=proc, cfg=cfg, ref_model=None)
    batch = dict(build_batch(proc, [clip(1, args.frames, args.side)] * args.G))
    batch["targets"] = torch.full((args.G, 5), 3.0)
    batch["video_ids"] = ["clip"] * args.G
    P = batch["input_ids"].shape[1]
    print(f"shrunk real Qwen2.5-VL (vocab {model.config.text_config.vocab_size}), LoRA, frozen tower; one prompt, "
          f"G = {args.G}, prompt {P} tokens ({int(batch['video_grid_thw'][0].prod()) // 4} video), "
          f"max_new_tokens {args.max_new_tokens}, {torch.get_num_threads()} threads")
    runs = {True: [], False: []}
    grpo_step(trainer, model, batch, before=False)  # warm-up
    for _ in range(args.repeats):
        for before in (True, False):
            runs[before].append(grpo_step(trainer, model, batch, before))
            dt, n, mem = runs[before][-1]
            print(f"  {'before' if before else 'after '}: {dt:6.2f} s, {n:2d} tower videos, peak +{mem / 2**20:7.0f} MiB",
                  flush=True)
    b_t = statistics.median(r[0] for r in runs[True])
    a_t = statistics.median(r[0] for r in runs[False])
    b_n, a_n = runs[True][0][1], runs[False][0][1]
    b_m = statistics.median(r[2] for r in runs[True])
    a_m = statistics.median(r[2] for r in runs[False])
    print("\n| per GRPO step (one prompt, G = %d) | before | after | ratio |" % args.G)
    print("|---|---|---|---|")
    print(f"| vision-tower encodings per prompt | {b_n} | {a_n} | {b_n / max(a_n, 1):.0f}x fewer |")
    print(f"| peak RSS above the step's start (MiB) | {b_m / 2**20:.0f} | {a_m / 2**20:.0f} | {b_m / max(a_m, 1):.1f}x less |")
    print(f"| step time (s, median of {args.repeats}) | {b_t:.2f} | {a_t:.2f} | {b_t / a_t:.2f}x faster |")
    calls, depth, grid = vision_attention_calls(args.attn_frames, args.attn_max_pixels)
    print(f"\nvision attention calls for one clip of {args.attn_frames} frames at {args.attn_max_pixels} pixels "
          f"(grid_thw {grid}), real tower depth {depth}: sdpa {calls} calls (counted) vs flash_attention_2 "
          f"{depth} (one varlen call per layer)")


if __name__ == "__main__":
    main()
