"""Time and peak memory of ONE optimisation step of SFT, ASO (cached pi_ref), ASO (on-policy) and
GRPO (G completions per prompt), same model and batch, reported per prompt and as ratios to SFT.

Tiny preset on CPU (default)::

    python bench/bench_train_steps.py --batch 4 --repeats 3

Full-size Qwen2.5-VL-7B architecture with random weights on a GPU (no download: the config and the
processor files are read from ../shared/data/qwen2_5_vl)::

    python bench/bench_train_steps.py --config ../shared/data/qwen2_5_vl/config.json --lora --bf16 --device cuda

On a GPU it also prints tokens/s and model-FLOPs utilisation (MFU) against the bf16 matmul rate it
measures on the same GPU (an 8192^3 matmul). Model FLOPs per step are estimated as
``k * N * T`` with N the language-model parameters and T the tokens processed: k = 6 for a
full-fine-tuning forward+backward, 4 for LoRA (no weight gradients of the frozen base), 2 for a
forward-only pass (reference model, pi_ref, generation). The vision tower is counted with its own
parameters and patch count the same way. This is the usual estimate (Kaplan et al. 2020), not a
profiler count. Without CUDA, ``--device cuda`` stops with a clear error.

The steps run the same functions the trainers use (``vqalib.train.sft.answer_token_ce``,
``vqalib.train.aso_trainer.level_logprobs``, ``vqalib.method.aso``, ``vqalib.train.grpo``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqalib.schema.levels import DIMENSION_KEYS  # noqa: E402


class PeakRSS:
    """Peak resident memory of this process (CPU) sampled every 5 ms while active."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        self.base = self.rss()
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def synthetic_clip(seed: int, frames: int, side: int):
    """A SampledVideo of random frames (no file needed)."""
    from vqalib.video.frames import SampledVideo

    rng = np.random.default_rng(seed)
    idx = np.arange(frames, dtype=np.int64) * 4
    return SampledVideo(frames=rng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8), indices=idx,
                        timestamps=idx / 8.0, source_fps=8.0, width=side, height=side, n_source_frames=frames * 4,
                        backend="synthetic", path=f"synthetic-{seed}")


def build_model(args):
    """(model, processor, reference) for the tiny preset or a full-size config with random weights."""
    from vqalib.model.loading import LoraSettings, load_model_and_processor

    dtype = torch.bfloat16 if args.bf16 else torch.float32
    if args.config:
        from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        cfg = Qwen2_5_VLConfig.from_pretrained(str(Path(args.config).parent))
        cfg._attn_implementation = "sdpa"
        torch.manual_seed(0)
        with torch.device(args.device):
            model = Qwen2_5_VLForConditionalGeneration(cfg).to(dtype)
        processor = AutoProcessor.from_pretrained(str(Path(args.config).parent))
        if args.lora:
            from peft import get_peft_model

            model = get_peft_model(model, LoraSettings().to_peft())
    else:
        model, processor = load_model_and_processor("tiny", dtype=dtype,
                                                    lora=LoraSettings(r=4, alpha=8) if args.lora else None)
        model.to(args.device)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, processor


def lm_and_vision_params(model) -> tuple[int, int, int]:
    """(language-model params, vision params, trainable params)."""
    vis = sum(p.numel() for n, p in model.named_parameters() if ".visual." in n or n.startswith("visual."))
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total - vis, vis, train


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_matmul_tflops(device: str) -> float:
    """Measured bf16 dense matmul rate (TFLOP/s) of this GPU: best of 10 8192^3 matmuls."""
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e12


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="", help="HF config.json of a full-size model (random weights); empty: tiny preset")
    ap.add_argument("--lora", action="store_true", help="LoRA adapter (reference = adapter disabled)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 weights")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--batch", type=int, default=4, help="prompts (clips) per step")
    ap.add_argument("--G", type=int, default=8, help="GRPO completions per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="sampled tokens (GRPO, on-policy ASO)")
    ap.add_argument("--frames", type=int, default=8, help="frames per clip")
    ap.add_argument("--side", type=int, default=0, help="frame side in pixels (default: 112 tiny, 448 full-size)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per method (after one warm-up)")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--methods", default="sft,aso_cached,aso_on_policy,grpo")
    ap.add_argument("--json", default="", help="also write the rows and the setting as JSON to this file")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device; run on a GPU machine or use --device cpu",
              file=sys.stderr)
        return 2
    side = args.side or (448 if args.config else 112)

    from vqalib.method.aso import aso_loss, optimal_policy, reward_abs
    from vqalib.model.inputs import build_batch
    from vqalib.schema.prompts import format_answer
    from vqalib.train.aso_trainer import level_logprobs, rationale_ce, score_token_mask
    from vqalib.train.base import make_reference, reference_mode
    from vqalib.train.grpo import completion_logprobs, sample_completions
    from vqalib.method.grpo_math import group_advantages, grpo_loss
    from vqalib.train.sft import answer_token_ce

    model, processor = build_model(args)
    ref_model = None if args.lora else make_reference(model)
    tok = processor.tokenizer
    dev = args.device
    clips = [synthetic_clip(i, args.frames, side) for i in range(args.batch)]
    rng = np.random.default_rng(0)
    scores = [{k: float(rng.choice(np.arange(1, 5.01, 0.5))) for k in DIMENSION_KEYS} for _ in clips]
    answers = [format_answer(s, "Seen: blur, noise.") for s in scores]
    targets = torch.tensor([[s[k] for k in DIMENSION_KEYS] for s in scores], dtype=torch.float64)

    def to_dev(b):
        out = {k: v.to(dev) for k, v in b.items()}
        return out

    tf = build_batch(processor, clips, answers)
    tf_sp = tf.score_positions.to(dev)
    tf_in = to_dev(tf)
    prompt = to_dev(build_batch(processor, [c for c in clips for _ in range(args.G)]))
    prompt1 = to_dev(build_batch(processor, clips))
    logp_ref_cached = torch.log_softmax(torch.randn(args.batch, 5, 9, dtype=torch.float64), -1).to(dev)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    tokens = {"sft": 0, "aso_cached": 0, "aso_on_policy": 0, "grpo": 0}
    flops = {}
    n_lm, n_vis, n_train = lm_and_vision_params(model)
    k_train = 4 if args.lora else 6
    n_tf = int(tf_in["attention_mask"].sum())
    n_vis_patches = int(tf_in["pixel_values_videos"].shape[0])

    def batch_with(b, sp):
        d = dict(b)
        d["score_positions"] = sp
        return d

    def step_sft():
        out = model(**{k: v for k, v in tf_in.items() if k != "labels"})
        answer_token_ce(out.logits, tf_in["labels"]).backward()
        tokens["sft"] = n_tf
        flops["sft"] = k_train * (n_lm * n_tf + n_vis * n_vis_patches)

    def step_aso_cached():
        b = batch_with({k: v for k, v in tf_in.items()}, tf_sp)
        # as ASOTrainer.compute_loss: one tree-masked pass gives the level distributions and the
        # sequence logits of the rationale term
        logp, _, seq_logits = level_logprobs(model, b, tok, return_logits=True)
        target = optimal_policy(logp_ref_cached, reward_abs(targets.to(dev)), 1.0).float()
        loss = aso_loss(logp, target)
        loss = loss + rationale_ce(seq_logits, tf_in["labels"], score_token_mask(tf_in["labels"], tf_sp))
        loss.backward()
        tokens["aso_cached"] = n_tf
        flops["aso_cached"] = k_train * (n_lm * n_tf + n_vis * n_vis_patches)

    def step_aso_on_policy():
        from vqalib.schema.prompts import parse_answer

        roll = sample_completions(model, processor, prompt1, max_new_tokens=args.max_new_tokens)
        rats = [parse_answer(t).rationale for t in roll["texts"]]
        built = build_batch(processor, clips, [format_answer(s, r or None) for s, r in zip(scores, rats)])
        b = batch_with(to_dev(built), built.score_positions.to(dev))
        logp, _ = level_logprobs(model, b, tok)
        with torch.no_grad(), reference_mode(model, ref_model) as ref:
            logp_ref, _ = level_logprobs(ref, b, tok)
        target = optimal_policy(logp_ref.double(), reward_abs(targets.to(dev)), 1.0).float()
        aso_loss(logp, target).backward()
        n_gen = int(roll["mask"].sum())
        n_b = int(b["attention_mask"].sum())
        tokens["aso_on_policy"] = n_gen + 2 * n_b
        flops["aso_on_policy"] = 2 * n_lm * n_gen + (k_train + 2) * (n_lm * n_b + n_vis * n_vis_patches)

    def step_grpo():
        roll = sample_completions(model, processor, prompt, max_new_tokens=args.max_new_tokens)
        r = torch.rand(args.batch * args.G, device=dev)  # the reward parse is CPU text work, timed in the trainer only
        adv = group_advantages(r, args.G)
        logp = completion_logprobs(model, prompt, roll["completion"], roll["mask"])
        with torch.no_grad(), reference_mode(model, ref_model) as ref:
            ref_logp = completion_logprobs(ref, prompt, roll["completion"], roll["mask"])
        loss, _ = grpo_loss(logp, logp.detach(), ref_logp, adv, roll["mask"])
        loss.backward()
        n_gen = int(roll["mask"].sum())
        n_all = int(prompt["attention_mask"].sum()) + n_gen
        tokens["grpo"] = n_gen + 2 * n_all
        flops["grpo"] = 2 * n_lm * n_gen + (k_train + 2) * (n_lm * n_all + n_vis * n_vis_patches * args.G)

    steps = {"sft": step_sft, "aso_cached": step_aso_cached, "aso_on_policy": step_aso_on_policy, "grpo": step_grpo}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows = []
    for name in methods:
        fn = steps[name]
        torch.manual_seed(0)
        fn()
        opt.step()
        opt.zero_grad(set_to_none=True)  # warm-up
        times = []
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            mem0 = torch.cuda.memory_allocated()
        with PeakRSS() as rss:
            for _ in range(args.repeats):
                torch.manual_seed(0)
                sync(dev)
                t = time.perf_counter()
                fn()
                opt.step()
                opt.zero_grad(set_to_none=True)
                sync(dev)
                times.append(time.perf_counter() - t)
        peak = torch.cuda.max_memory_allocated() if dev.startswith("cuda") else rss.peak
        extra = (peak - mem0) if dev.startswith("cuda") else (rss.peak - rss.base)
        med = statistics.median(times)
        rows.append({"method": name, "s_per_step": med, "s_per_prompt": med / args.batch, "peak_mem_GiB": peak / 2**30,
                     "step_extra_mem_GiB": extra / 2**30, "tokens_per_s": tokens[name] / med, "flops": flops[name] / med})
    base = next((r for r in rows if r["method"] == "sft"), rows[0])
    where = f"{args.config or 'tiny preset'} | lora={args.lora} bf16={args.bf16} device={dev} batch={args.batch} " \
            f"G={args.G} frames={args.frames}x{side}^2 params: LM {n_lm / 1e6:.2f} M, vision {n_vis / 1e6:.2f} M, " \
            f"trainable {n_train / 1e6:.2f} M"
    print(where)
    peak_rate = measure_matmul_tflops(dev) if dev.startswith("cuda") else None
    head = f"{'method':<15}{'s/step':>9}{'s/prompt':>10}{'x SFT':>8}{'peak GiB':>10}{'x SFT':>8}{'tok/s':>10}"
    head += f"{'MFU':>8}" if peak_rate else ""
    print(head)
    for r in rows:
        line = (f"{r['method']:<15}{r['s_per_step']:>9.3f}{r['s_per_prompt']:>10.3f}{r['s_per_step'] / base['s_per_step']:>8.2f}"
                f"{r['peak_mem_GiB']:>10.3f}{r['peak_mem_GiB'] / base['peak_mem_GiB']:>8.2f}{r['tokens_per_s']:>10.0f}")
        if peak_rate:
            line += f"{r['flops'] / 1e12 / peak_rate:>8.1%}"
        print(line)
    if peak_rate:
        print(f"measured bf16 matmul rate: {peak_rate:.0f} TFLOP/s (MFU = estimated model FLOPs/s / this)")
    else:
        print("CPU: peak = resident memory of the process (includes the model, Python and the optimizer state)")
    if args.json:
        import json

        for r in rows:
            r["mfu"] = r["flops"] / 1e12 / peak_rate if peak_rate else None
        Path(args.json).write_text(json.dumps({"setting": where, "matmul_tflops": peak_rate, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
