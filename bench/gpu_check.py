"""GPU check: the configured 7B training workload on one CUDA GPU, in one command that needs nothing
outside the checkout (no ``../shared``, no virtual environment, no video decoder, no download)::

    bash bench/gpu_check.sh --out $OUT/gpu_check.json     # python3 (or .venv/bin/python) bench/gpu_check.py
    bash bench/gpu_check.sh --dry-run                     # the same code path on CPU, shrunk model (~1 min)

What runs, per stage (``--stages``; each stage's settings are read from its ``env/train_configs/*_7b*.yaml``):

* ``sft_lora`` (``sft_7b_lora.yaml``), ``sft_full`` (``sft_7b.yaml``), ``aso`` (``aso_7b.yaml``: full
  fine-tuning, cached π_ref, rationale KL to a frozen copy) and ``grpo`` (``grpo_7b_lora.yaml``: G = 8
  rollouts of ``max_new_tokens`` each, reference = adapter disabled); ``sft_qlora`` (``sft_7b_lora.yaml``
  with ``finetune=qlora``) only where bitsandbytes is installed, else reported as skipped;
* the model: the Qwen2.5-VL-7B architecture (:data:`QWEN2_5_VL_7B`, numbers kept in this file and
  checked against the real ``config.json`` by ``tests/system/test_gpu_check.py``) with random weights,
  saved once in bf16 and loaded by the trainers' own loader (``vqalib.train.base.load_policy``:
  LoRA, frozen vision tower, gradient checkpointing as configured); the project's embedded tokenizer
  (``vqalib.model.tokenizer``: its special-token ids are written into the config; vocabulary size and
  every layer size stay the 7B's);
* the input: one clip per step of ``max_frames`` synthetic frames (random uint8, no decoding) at the
  largest square frame within ``max_pixels`` (32 frames of 448 x 448 = 200704 pixels: 16 x 32 x 32
  patches, 4096 video tokens), through the real collator (``VideoCollator``: processor, answer
  text under the configured ``rationale``, labels, score positions);
* the model family: everything that differs between Qwen-VL families comes from the family adapter
  (``vqalib.model.family.family_of`` of the checkpoint): the frame side is a multiple of its
  ``patch_factor`` (28 here), the LoRA parameters of the memory table are counted on its ``lora_targets``
  (what ``LoraSettings()`` adapts when the trainers load the model), the batch is built by the collator
  through it; the output records it (``model.family`` and each stage's ``family``);
* the step: ``Trainer.train()`` of the stage's own trainer class (``SFTTrainer``, ``ASOTrainer``,
  ``GRPOTrainer``) for one warm-up step and ``--steps`` timed steps, built as ``train_sft`` /
  ``train_aso`` / ``train_grpo`` build it (``training_arguments``, the reference policy, the
  collator), so the loss functions, generation, clipping and optimiser are the project's.

Per stage it reports s/step, tokens/s (sequence tokens the model was trained on; GRPO also the
generated tokens and the rollout time), peak GPU memory, and FLOPs **counted as executed**
(:class:`FlopCounter`: every ``nn.Linear`` / ``nn.Conv3d`` call and every
``scaled_dot_product_attention`` call, forward always, backward only where a gradient is actually
computed: no weight gradient for frozen weights, nothing for a frozen tower whose inputs need no
gradient; GRPO's generation prefill and decode counted; gradient-checkpointing recomputation counted
separately). MFU = executed FLOPs without the recomputation / time / the device's dense bf16 peak
(:data:`PEAK_BF16_TFLOPS`, datasheet); HFU adds the recomputation; beside them the measured rate of
an 8192³ bf16 matmul as a fraction of the same peak (what this software stack reaches at best).

Writes a JSON (``--out``) and the ``gpu_check`` section of ``docs/benchmarks.md`` (``--docs``; not in
``--dry-run`` unless ``--docs`` is given), and ends stdout with a compact summary. Without CUDA (and
without ``--dry-run``) it stops at once with exit code 2 saying so.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- gpu_check:begin -->", "<!-- gpu_check:end -->"
#: The oldest transformers this check is written for (the lent GPU machine has 5.17).
MIN_TRANSFORMERS = (5, 17)

#: stage -> (trainer stage, config file, overrides)
STAGES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sft_lora": ("sft", "env/train_configs/sft_7b_lora.yaml", {}),
    "grpo": ("grpo", "env/train_configs/grpo_7b_lora.yaml", {}),  # second: the longest, never cut by --budget-s
    "sft_full": ("sft", "env/train_configs/sft_7b.yaml", {}),
    "aso": ("aso", "env/train_configs/aso_7b.yaml", {}),
    "sft_qlora": ("sft", "env/train_configs/sft_7b_lora.yaml", {"finetune": "qlora"}),
}

#: Qwen2.5-VL-7B-Instruct's architecture (facts of the published config.json; token ids come from the
#: tokenizer in use, see :func:`qwen2_5_vl_7b_config`).
QWEN2_5_VL_7B: dict[str, Any] = {
    "text": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                 num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000, rms_norm_eps=1e-6,
                 rope_theta=1000000.0, hidden_act="silu", max_window_layers=28, sliding_window=32768,
                 use_sliding_window=False, attention_dropout=0.0, initializer_range=0.02,
                 rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
    "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3,
                   out_hidden_size=3584, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                   window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, hidden_act="silu"),
    "tie_word_embeddings": False,
}

#: Dense (no 2:4 sparsity) bf16 tensor-core peak in TFLOP/s by device-name substring, from NVIDIA's
#: datasheets (H100/H200 SXM: 1,979 TFLOP/s "with sparsity" = 989.4 dense). First match wins.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1), ("A10G", 70.0),
)


def peak_bf16_tflops(device_name: str) -> float | None:
    """The datasheet dense bf16 peak (TFLOP/s) of ``device_name`` (e.g. ``"NVIDIA H200"``), None if unknown."""
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


# ----------------------------------------------------------------------------------------------- environment
def check_environment() -> dict[str, str]:
    """Versions of what the check imports; raises ``RuntimeError`` naming what is missing or too old."""
    import importlib

    found = {}
    for name in ("torch", "transformers", "peft", "accelerate", "yaml", "numpy", "tokenizers"):
        try:
            found[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError as exc:
            raise RuntimeError(f"bench/gpu_check.py needs the Python package {name!r}, which is not importable "
                               f"here ({exc}); install it or carry it as a wheel") from None
    ver = tuple(int(x) for x in re.findall(r"\d+", found["transformers"])[:2])
    if ver < MIN_TRANSFORMERS:
        raise RuntimeError(f"transformers {found['transformers']} is older than "
                           f"{'.'.join(map(str, MIN_TRANSFORMERS))}, the oldest this check is written for")
    try:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor  # noqa: F401
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"transformers {found['transformers']} lacks the Qwen2.5-VL classes this check "
                           f"builds ({exc})") from None
    try:
        import bitsandbytes  # noqa: F401

        found["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:
        found["bitsandbytes"] = ""
    return found


def qwen2_5_vl_7b_config(special_ids: dict[str, int], shrink: bool = False):
    """``Qwen2_5_VLConfig`` of the 7B architecture (:data:`QWEN2_5_VL_7B`) with the token ids of the
    tokenizer in use (``special_ids``: ``<|video_pad|>``, ``<|im_end|>`` ... -> id). ``shrink=True``:
    the same config with every size shrunk (``vqalib.model.loading.shrink_config``) and a 4096-token
    vocabulary, for ``--dry-run``."""
    import copy

    from transformers import Qwen2_5_VLConfig

    t = copy.deepcopy(QWEN2_5_VL_7B["text"])
    v = copy.deepcopy(QWEN2_5_VL_7B["vision"])
    t.update(bos_token_id=special_ids["<|endoftext|>"], eos_token_id=special_ids["<|im_end|>"],
             pad_token_id=special_ids["<|endoftext|>"])
    cfg = Qwen2_5_VLConfig(text_config=t, vision_config=v, tie_word_embeddings=QWEN2_5_VL_7B["tie_word_embeddings"],
                           image_token_id=special_ids["<|image_pad|>"], video_token_id=special_ids["<|video_pad|>"],
                           vision_start_token_id=special_ids["<|vision_start|>"],
                           vision_end_token_id=special_ids["<|vision_end|>"])
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    if shrink:
        from vqalib.model.tiny import shrink_config

        cfg = shrink_config(cfg, text={"vocab_size": 4096})  # > the tokenizer's, so sampled ids outside it occur too
    return cfg


def architecture_numbers(cfg) -> dict[str, Any]:
    """The layer sizes of a Qwen2.5-VL config as a flat dict (what :data:`QWEN2_5_VL_7B` fixes)."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    text = d.get("text_config") or d
    vis = d["vision_config"]
    keys_t = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "vocab_size", "rms_norm_eps", "hidden_act")
    keys_v = ("depth", "hidden_size", "intermediate_size", "num_heads", "out_hidden_size", "patch_size",
              "spatial_merge_size", "temporal_patch_size", "window_size", "fullatt_block_indexes", "tokens_per_second")
    out = {f"text.{k}": text.get(k, d.get(k)) for k in keys_t}
    rope = text.get("rope_parameters") or text.get("rope_scaling") or d.get("rope_scaling") or {}
    out["text.rope_theta"] = float(rope.get("rope_theta", text.get("rope_theta", d.get("rope_theta"))))
    out["text.mrope_section"] = list(rope.get("mrope_section", []))
    out.update({f"vision.{k}": vis.get(k) for k in keys_v})
    out["tie_word_embeddings"] = bool(d.get("tie_word_embeddings", text.get("tie_word_embeddings")))
    return out


# ----------------------------------------------------------------------------------------------- FLOP counting
class FlopCounter:
    """Counts the FLOPs a model executes, by forward hooks on every ``nn.Linear`` / ``nn.Conv3d`` and a
    wrapper around ``torch.nn.functional.scaled_dot_product_attention`` (active inside ``with``).

    Per call (a multiply-add = 2 FLOPs): Linear ``2 * rows * in * out``; Conv3d ``2 * out.numel() * in/groups
    * prod(kernel)``; attention ``4 * B * H * Lq * Lk * D`` (QKᵀ and AV over the whole square, as a
    kernel given an explicit mask computes it; half when ``is_causal`` and no mask). Backward, added at
    forward time when the output will get a gradient: the input gradient (same FLOPs as the forward)
    when the input requires grad, the weight gradient (same again) when the weight does; attention
    backward = 2 x its forward (dQ, dK, dV, dP). A forward that runs inside autograd's backward is
    gradient-checkpointing recomputation and goes to ``recompute`` (its backward is already counted).
    Elementwise work, norms, softmax and embeddings are not counted (small next to the matmuls).

    ``forward``, ``backward``, ``recompute``: FLOPs so far; ``executed`` = all three;
    ``model_flops`` = forward + backward (what MFU counts); ``attention``: the part of ``executed`` that
    is attention (the rest is the Linear / Conv3d matmuls)."""

    def __init__(self, model):
        self.model = model
        self.forward = self.backward = self.recompute = self.attention = 0
        self._handles: list = []
        self._orig_sdpa = None

    @staticmethod
    def _in_backward() -> bool:
        import torch

        return torch._C._current_graph_task_id() != -1

    def _add(self, fwd: int, bwd: int) -> None:
        if self._in_backward():
            self.recompute += fwd
        else:
            self.forward += fwd
            self.backward += bwd

    def _linear_hook(self, module, inputs, output):
        x = inputs[0]
        fwd = 2 * (x.numel() // module.in_features) * module.in_features * module.out_features
        bwd = 0
        if getattr(output, "requires_grad", False):
            bwd = fwd * (int(x.requires_grad) + int(module.weight.requires_grad))
        self._add(fwd, bwd)

    def _conv_hook(self, module, inputs, output):
        x = inputs[0]
        k = math.prod(module.kernel_size) * (module.in_channels // module.groups)
        fwd = 2 * output.numel() * k
        bwd = fwd * (int(x.requires_grad) + int(module.weight.requires_grad)) if output.requires_grad else 0
        self._add(fwd, bwd)

    def __enter__(self):
        import torch

        for m in self.model.modules():
            if isinstance(m, torch.nn.Linear):
                self._handles.append(m.register_forward_hook(self._linear_hook))
            elif isinstance(m, torch.nn.Conv3d):
                self._handles.append(m.register_forward_hook(self._conv_hook))
        orig = self._orig_sdpa = torch.nn.functional.scaled_dot_product_attention
        counter = self

        def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *args, **kwargs):
            b, h, lq, d = query.shape[0], query.shape[-3] if query.dim() > 3 else 1, query.shape[-2], query.shape[-1]
            b = query.numel() // (h * lq * d)
            fwd = 4 * b * h * lq * key.shape[-2] * d
            if is_causal and attn_mask is None:
                fwd //= 2
            out = orig(query, key, value, attn_mask, dropout_p, is_causal, *args, **kwargs)
            grad = query.requires_grad or key.requires_grad or value.requires_grad
            bwd = 2 * fwd if (grad and torch.is_grad_enabled()) else 0
            counter._add(fwd, bwd)
            counter.attention += fwd if counter._in_backward() else fwd + bwd
            return out

        torch.nn.functional.scaled_dot_product_attention = sdpa
        return self

    def __exit__(self, *exc):
        import torch

        for h in self._handles:
            h.remove()
        self._handles = []
        if self._orig_sdpa is not None:
            torch.nn.functional.scaled_dot_product_attention = self._orig_sdpa
            self._orig_sdpa = None

    @property
    def model_flops(self) -> int:
        return self.forward + self.backward

    @property
    def executed(self) -> int:
        return self.forward + self.backward + self.recompute

    def snapshot(self) -> tuple[int, int, int]:
        return self.forward, self.backward, self.recompute


# ----------------------------------------------------------------------------------------------- memory (computed)
def param_counts(cfg, lora_r: int = 16) -> dict[str, int]:
    """Parameter counts of the architecture ``cfg`` (built on the meta device, no memory): ``total``,
    ``vision``, ``lm`` (everything outside the vision tower), ``embed_head`` (input embeddings + lm_head),
    ``lm_linear`` (the LM's attention/MLP ``nn.Linear`` weights: what 4-bit quantises and LoRA adapts),
    ``vision_linear`` (the vision tower's ``nn.Linear`` weights) and ``lora`` (LoRA r=``lora_r`` parameters on the
    modules the model family's LoRA targets: ``vqalib.model.family.family_of(cfg).lora_targets``, what
    ``LoraSettings()`` adapts). The model is built as the family's ``model_class``."""
    import torch
    import transformers

    from vqalib.model.family import family_of

    family = family_of(cfg)
    with torch.device("meta"):
        model = getattr(transformers, family.model_class)(cfg)
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}")
    emb = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    pat = re.compile(family.lora_targets)
    lin = vis_lin = lora = 0
    for name, m in model.named_modules():
        if not isinstance(m, torch.nn.Linear) or name.endswith("lm_head"):
            continue
        if ".visual." in f".{name}":
            vis_lin += m.weight.numel()
            continue
        lin += m.weight.numel()
        if pat.fullmatch(name):
            lora += lora_r * (m.in_features + m.out_features)
    return {"total": total, "vision": vision, "lm": total - vision, "embed_head": emb, "lm_linear": lin,
            "vision_linear": vis_lin, "lora": lora}


def memory_rows(p: dict[str, int]) -> list[dict[str, Any]]:
    """Computed static GPU memory (bytes) per 7B setting from :func:`param_counts`: weights, gradients,
    AdamW states, a frozen reference copy; activations are not included (measured on a device only).

    Assumptions, stated per row: vision tower frozen (``freeze_vision: true``); AdamW keeps 2 states per
    trainable weight in that weight's dtype; peft keeps LoRA weights in fp32 (``autocast_adapter_dtype``);
    QLoRA: NF4 with double quantisation = 0.5 + 1/64 + 4/(64*256) bytes per quantised weight (the LM's and
    the vision tower's Linear layers), and ``prepare_model_for_kbit_training`` casts the rest
    (embeddings, lm_head, norms, the patch embedding) to fp32."""
    total, vis, lm, lora = p["total"], p["vision"], p["lm"], p["lora"]
    nf4 = 0.5 + 1 / 64 + 4 / (64 * 256)
    rows = [
        dict(setting="full, bf16 weights (AdamW states in bf16)", weights=2 * total, grads=2 * lm, optim=4 * lm, ref=0,
             note="today's `bf16: true` path; issue 19 item 1: updates below bf16 resolution are lost"),
        dict(setting="full, fp32 master weights (fp32 params + bf16 autocast)", weights=4 * lm + 2 * vis, grads=4 * lm,
             optim=8 * lm, ref=0, note="vision tower kept in bf16 (frozen)"),
        dict(setting="ASO full + rationale KL, bf16 weights", weights=2 * total, grads=2 * lm, optim=4 * lm,
             ref=2 * total, note="+ frozen bf16 reference copy (`aso_7b.yaml`)"),
        dict(setting="ASO full + rationale KL, fp32 master weights", weights=4 * lm + 2 * vis, grads=4 * lm,
             optim=8 * lm, ref=2 * total, note="+ frozen bf16 reference copy"),
        dict(setting="LoRA r=16 (bf16 base; SFT and GRPO)", weights=2 * total + 4 * lora, grads=4 * lora,
             optim=8 * lora, ref=0, note="reference = adapter disabled (no copy)"),
    ]
    q_lin = p["lm_linear"] + p["vision_linear"]
    rest = total - q_lin
    rows.append(dict(setting="QLoRA r=16 (NF4 base)", weights=int(nf4 * q_lin + 4 * rest + 4 * lora), grads=4 * lora,
                     optim=8 * lora, ref=0, note="needs bitsandbytes (CUDA)"))
    for r in rows:
        r["static"] = r["weights"] + r["grads"] + r["optim"] + r["ref"]
    return rows


MEM_BEGIN, MEM_END = "<!-- gpu_check_memory:begin -->", "<!-- gpu_check_memory:end -->"
TRAINING_DOCS = ROOT / "docs" / "training.md"


def _measured_for(setting: str, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stage results whose run corresponds to a memory-table row (by finetune and weight dtype)."""
    out = []
    for r in stages:
        if "peak_GiB" not in r or "s_per_step" not in r:
            continue
        dtype = r.get("param_dtype", "")
        if setting.startswith("full, bf16") and r["stage"] == "sft_full" and dtype == "bfloat16" \
                or setting.startswith("full, fp32") and r["stage"] == "sft_full" and dtype == "float32" \
                or setting.startswith("ASO") and r["stage"] == "aso" and ("bf16" in setting) == (dtype == "bfloat16") \
                or setting.startswith("LoRA") and r["stage"] in ("sft_lora", "grpo") \
                or setting.startswith("QLoRA") and r["stage"] == "sft_qlora":
            out.append(r)
    return out


def memory_markdown(p: dict[str, int], stages: list[dict[str, Any]] | None = None, device: str = "") -> str:
    """The 7B memory table of ``docs/training.md``: computed static memory per setting (:func:`memory_rows`)
    and, from a GPU run (``stages`` of :func:`run_stage_check`, ``device`` named), the measured peak."""
    g = lambda b: f"{b / 2**30:.1f}"  # noqa: E731
    lines = ["| setting | weights | gradients | AdamW states | reference copy | static total | peak in one step |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in memory_rows(p):
        meas = _measured_for(r["setting"], stages or [])
        peak = "; ".join(f"{m['peak_GiB']:.1f} ({m['stage']}) *measured ({device})*" for m in meas) or "not measured yet"
        lines.append(f"| {r['setting']} | {g(r['weights'])} | {g(r['grads'])} | {g(r['optim'])} | "
                     f"{g(r['ref']) if r['ref'] else '–'} | **{g(r['static'])}** | {peak} |")
    return "\n".join(lines)


def write_between(path: Path, begin: str, end: str, body: str) -> None:
    """Replace the text between the ``begin`` and ``end`` markers of ``path`` (both must be there)."""
    text = path.read_text()
    if begin not in text or end not in text:
        raise ValueError(f"{path}: markers {begin} / {end} not found; the section was removed or renamed")
    text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: f"{begin}\n{body.rstrip()}\n{end}", text,
                  count=1, flags=re.S)
    path.write_text(text)


# ----------------------------------------------------------------------------------------------- the run
def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true",
                    help="run the same code path on CPU with a shrunk model and small clips (no GPU needed)")
    ap.add_argument("--device", default="", help="cuda, cuda:N (default) or, with --dry-run, cpu (default)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--steps", type=int, default=2, help="timed optimisation steps per stage, after one warm-up step")
    ap.add_argument("--grpo-steps", type=int, default=1, help="timed steps of the grpo stage (each holds G rollouts)")
    ap.add_argument("--G", type=int, default=0, help="GRPO completions per prompt (0: the config's num_generations)")
    ap.add_argument("--max-new-tokens", type=int, default=0, help="GRPO tokens per completion (0: the config's)")
    ap.add_argument("--frames", type=int, default=0, help="frames per clip (0: the config's max_frames)")
    ap.add_argument("--max-pixels", type=int, default=0, help="pixels per frame (0: the config's max_pixels)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stages that would start after this many seconds are skipped")
    ap.add_argument("--out", default="", help="write the results as JSON to this file")
    ap.add_argument("--docs", default=None, help="markdown file whose gpu_check section is rewritten "
                    "(default docs/benchmarks.md on a GPU, none with --dry-run; '' = none)")
    ap.add_argument("--from-json", default="", help="measure nothing: write the docs sections and the summary "
                    "from the JSON of an earlier run (--out of the run on the GPU machine)")
    ap.add_argument("--training-docs", default=None, help="markdown file whose 7B memory table gets the measured "
                    "peaks (default docs/training.md on a GPU, none with --dry-run; '' = none)")
    args = ap.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        ap.error(f"--stages {args.stages!r}: unknown stage(s) {bad}; choose from {list(STAGES)}")
    args.stages = stages
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    if args.from_json and not Path(args.from_json).is_file():
        ap.error(f"--from-json {args.from_json}: no such file")
    if not args.dry_run and not args.from_json and not args.device.startswith("cuda"):
        ap.error(f"--device {args.device!r}: the GPU check runs on a CUDA device (cuda or cuda:N); "
                 "use --dry-run for the CPU run")
    for name in ("steps", "grpo_steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("G", "max_new_tokens", "frames", "max_pixels"):
        if getattr(args, name) < 0:
            ap.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.docs is None:
        args.docs = "" if args.dry_run else str(DOCS)
    if args.training_docs is None:
        args.training_docs = "" if args.dry_run else str(TRAINING_DOCS)
    return args


def write_docs(result: dict[str, Any], docs: str, training_docs: str) -> None:
    """Write the gpu_check section (``docs``) and the measured column of the 7B memory table
    (``training_docs``, not for a dry run) from a run's result; '' skips either."""
    if docs:
        write_section(Path(docs), render(result))
        print(f"wrote the gpu_check section of {docs}")
    if training_docs and not result["dry_run"]:
        from vqalib.model.tokenizer import SPECIAL_TOKENS, build_tokenizer

        tok = build_tokenizer()
        cfg = qwen2_5_vl_7b_config({t: int(tok.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS})
        write_between(Path(training_docs), MEM_BEGIN, MEM_END,
                      memory_markdown(param_counts(cfg), result["stages"], result["device"]))
        print(f"wrote the measured column of the 7B memory table in {training_docs}")


def require_cuda(device: str) -> str:
    """The device's name, or ``RuntimeError`` saying that there is no CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: torch.cuda.is_available() is False (torch "
                           f"{torch.__version__}, built for CUDA {torch.version.cuda}); run bench/gpu_check.py on a "
                           "machine with an NVIDIA GPU, or pass --dry-run for the CPU run")
    return torch.cuda.get_device_name(torch.device(device))


def frame_side(max_pixels: int, unit: int = 28) -> int:
    """The largest square frame side (a multiple of ``unit`` = patch x merge) with side² <= ``max_pixels``."""
    side = int(math.isqrt(max_pixels)) // unit * unit
    if side < unit:
        raise ValueError(f"max_pixels={max_pixels} is below one {unit} x {unit} merged patch")
    return side


class SyntheticFrames:
    """A frame cache (``FrameCache``'s ``get``/``draw``) that returns random uint8 frames instead of decoding:
    ``frames`` frames of ``side`` x ``side`` at 2 fps, one fixed clip per path."""

    def __init__(self, frames: int, side: int):
        self.frames, self.side = frames, side
        self.n_decoded = self.n_from_disk = 0

    def get(self, path):
        import zlib

        import numpy as np

        from vqalib.video.frames import SampledVideo

        rng = np.random.default_rng(zlib.crc32(str(path).encode()))
        idx = np.arange(self.frames, dtype=np.int64) * 12  # 2 fps of a 24 fps source
        return SampledVideo(frames=rng.integers(0, 256, (self.frames, self.side, self.side, 3), dtype=np.uint8),
                            indices=idx, timestamps=idx / 24.0, source_fps=24.0, width=self.side, height=self.side,
                            n_source_frames=int(idx[-1]) + 12, backend="synthetic", path=str(path))

    def draw(self, path, rng):
        return self.get(path)


def synthetic_examples(n: int) -> list:
    """``n`` training clips with labels, template rationales and tags (what the collator needs)."""
    from vqalib.schema.levels import DIMENSION_KEYS, TAGS
    from vqalib.schema.prompts import template_rationale
    from vqalib.train.collator import ClipExample

    out = []
    for i in range(n):
        scores = {k: [3.5, 2.0, 4.0, 1.5, 4.5][(j + i) % 5] for j, k in enumerate(DIMENSION_KEYS)}
        tags = {k: list(TAGS[k][:1]) for k in DIMENSION_KEYS}
        rats = {k: template_rationale(k, scores[k], tuple(tags[k])) for k in DIMENSION_KEYS}
        out.append(ClipExample(f"synthetic-{i}", Path(f"synthetic-{i}.mp4"), scores, rats, tags))
    return out


def build_checkpoint(folder: Path, dry_run: bool, max_pixels: int, device: str) -> dict[str, Any]:
    """Save the random-weight model (bf16) and the processor into ``folder``; returns its description."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vqalib.model.tiny import build_processor
    from vqalib.model.tokenizer import SPECIAL_TOKENS, build_tokenizer

    tok = build_tokenizer()
    ids = {t: int(tok.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    cfg = qwen2_5_vl_7b_config(ids, shrink=dry_run)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=torch.float32 if dry_run else torch.bfloat16)
    model.save_pretrained(str(folder))
    build_processor(tok, frame_pixels=max_pixels).save_pretrained(str(folder))
    n = sum(p.numel() for p in model.parameters())
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    from vqalib.model.family import family_of

    return {"n_params": n, "build_and_save_s": time.perf_counter() - t0, "config": architecture_numbers(cfg),
            **family_of(cfg).describe()}


class _StepClock:
    """Trainer callback: wall time, peak GPU memory and counted FLOPs of each optimisation step."""

    def __init__(self, device: str, counter: FlopCounter | None):
        from transformers import TrainerCallback

        self.device, self.counter, self.rows = device, counter, []
        clock = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                clock._sync()
                if clock.device.startswith("cuda"):
                    import torch

                    torch.cuda.reset_peak_memory_stats()
                clock._f0 = clock.counter.snapshot() if clock.counter else (0, 0, 0)
                clock._t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                clock._sync()
                t = time.perf_counter() - clock._t0
                f = clock.counter.snapshot() if clock.counter else (0, 0, 0)
                peak = 0
                if clock.device.startswith("cuda"):
                    import torch

                    peak = torch.cuda.max_memory_allocated()
                clock.rows.append({"s": t, "peak_bytes": peak, "fwd": f[0] - clock._f0[0], "bwd": f[1] - clock._f0[1],
                                   "recompute": f[2] - clock._f0[2]})

        self.callback = CB()

    def _sync(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()


def stage_config(stage: str, args, ckpt: Path, work: Path):
    """The training config of ``stage``: its ``env/train_configs`` YAML as written, with only what a
    benchmark must change overridden (model = the random checkpoint, device, no saving/logging, one
    prompt per optimiser step, 1 + N steps) and, where given, ``--frames`` / ``--max-pixels`` / ``--G`` /
    ``--max-new-tokens``; ``--dry-run`` also trains in float32 (CPU bf16 matmuls are very slow)."""
    from vqalib.train.common import load_config

    kind, cfg_file, extra_over = STAGES[stage]
    over: dict[str, Any] = {"model": str(ckpt), "init_from": "", "device": args.device, "report_to": "none",
                            "output_dir": str(work / stage), "grad_accum": 1, "save_steps": 0, "logging_steps": 1000,
                            "num_workers": 0, "max_train_seconds": 0.0, "eval_every_seconds": 0.0, "warmup_steps": 0,
                            "augment": False, "resume": "", **extra_over}
    if args.frames:
        over["max_frames"] = args.frames
    if args.max_pixels:
        over["max_pixels"] = args.max_pixels
    if kind == "grpo":
        if args.G:
            over["num_generations"] = args.G
        if args.max_new_tokens:
            over["max_new_tokens"] = args.max_new_tokens
    if args.dry_run:  # CPU bf16 matmuls are orders of magnitude slower than fp32 here; same code path otherwise
        over["bf16"] = False
    over["max_steps"] = 1 + (args.grpo_steps if kind == "grpo" else args.steps)
    return load_config(kind, ROOT / cfg_file, over)


def run_stage_check(stage: str, ckpt: Path, args, work: Path) -> dict[str, Any]:
    """One stage: its trainer, built as ``train_<stage>`` builds it, trained for 1 + N steps on synthetic clips."""
    import torch

    from vqalib.train.base import load_policy, make_reference
    from vqalib.train.collator import VideoCollator
    from vqalib.train.common import config_family, training_arguments

    kind, cfg_file, _ = STAGES[stage]
    cfg = stage_config(stage, args, ckpt, work)
    if cfg.finetune == "qlora" and (args.dry_run or not args.env.get("bitsandbytes")):
        why = "needs CUDA" if args.dry_run else "bitsandbytes is not installed here"
        return {"stage": stage, "config": cfg_file, "skipped": f"QLoRA's 4-bit base {why}"}
    family = config_family(cfg)  # the checkpoint's config.json: frame sides and LoRA targets are the family's
    side = frame_side(cfg.max_pixels, family.patch_factor)
    model, processor = load_policy(cfg)
    extra: dict[str, Any] = {}
    examples = synthetic_examples(cfg.max_steps * cfg.batch_size)
    cache = SyntheticFrames(cfg.max_frames - cfg.max_frames % 2, side)
    if kind == "sft":
        from vqalib.train.sft import SFTTrainer as cls

        collator = VideoCollator(processor, cache, with_answers=True, rationale=cfg.rationale, instruction=cfg.instruction)
    elif kind == "aso":
        from vqalib.train.aso_trainer import ASOTrainer as cls

        if cfg.on_policy or cfg.rationale_loss == "kl":
            extra["ref_model"] = make_reference(model)
        g = torch.Generator().manual_seed(0)
        extra["pi_ref"] = {ex.video_id: torch.log_softmax(torch.randn(5, 9, generator=g), -1) for ex in examples}
        collator = VideoCollator(processor, cache, with_answers=True, rationale=cfg.rationale, instruction=cfg.instruction,
                                 keywords=cfg.target_position == "keyword")  # aso_7b.yaml: pi* at the keyword
    else:
        from vqalib.train.grpo import GRPOTrainer as cls

        extra["ref_model"] = make_reference(model) if cfg.kl_coef else None
        collator = VideoCollator(processor, cache, with_answers=False, rationale=cfg.rationale,
                                 repeat=cfg.num_generations, seed=cfg.seed, instruction=cfg.instruction)
    targs = training_arguments(cfg, disable_tqdm=True, report_to=[], save_strategy="no", logging_strategy="no")
    counter = FlopCounter(model)
    clock = _StepClock(args.device, counter)
    trainer = cls(model=model, args=targs, train_dataset=examples, data_collator=collator, processing_class=processor,
                  cfg=cfg, callbacks=[clock.callback], **extra)
    gen = {"s": [], "tokens": []}
    unwrapped = model
    orig_generate = unwrapped.generate

    def timed_generate(*a, **kw):  # rollout time and length (GRPO); same call, timed around it
        clock._sync()
        t = time.perf_counter()
        out = orig_generate(*a, **kw)
        clock._sync()
        gen["s"].append(time.perf_counter() - t)
        gen["tokens"].append(int(out.shape[0] * (out.shape[1] - kw["input_ids"].shape[1])) if "input_ids" in kw else 0)
        return out

    unwrapped.generate = timed_generate
    sample = collator(examples[:cfg.batch_size])
    seq_tokens = int(sample["attention_mask"].sum())
    n_video = int((sample["input_ids"] == model.config.video_token_id).sum()) if hasattr(model, "config") else 0
    t0 = time.perf_counter()
    try:
        with counter:
            trainer.train()
    except torch.cuda.OutOfMemoryError as exc:
        return {"stage": stage, "error": f"out of GPU memory: {str(exc)[:200]}", "config": cfg_file,
                "peak_GiB": torch.cuda.max_memory_allocated() / 2**30}
    finally:
        unwrapped.generate = orig_generate
    wall = time.perf_counter() - t0
    rows = clock.rows[1:] or clock.rows  # drop the warm-up step
    n = len(rows)
    s = sum(r["s"] for r in rows) / n
    res: dict[str, Any] = {
        "stage": stage, "config": cfg_file, "family": family.name, "finetune": cfg.finetune,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "freeze_vision": cfg.freeze_vision, "frames": cache.frames, "frame_side": side, "batch": cfg.batch_size,
        "seq_tokens": seq_tokens, "video_tokens": n_video, "timed_steps": n, "s_per_step": s,
        "s_per_step_all": [r["s"] for r in rows], "peak_GiB": max(r["peak_bytes"] for r in rows) / 2**30,
        "flops_forward": sum(r["fwd"] for r in rows) / n, "flops_backward": sum(r["bwd"] for r in rows) / n,
        "flops_recompute": sum(r["recompute"] for r in rows) / n, "wall_s": wall,
        "n_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "param_dtype": str(next(p for p in model.parameters() if p.requires_grad).dtype).replace("torch.", ""),
    }
    if kind == "sft":
        res["rationale"] = cfg.rationale
    if kind == "aso":
        res.update(rationale=cfg.rationale, rationale_loss=cfg.rationale_loss, reference="frozen copy"
                   if extra.get("ref_model") is not None else "adapter disabled")
    if kind == "grpo":
        gs, gt = gen["s"][-n:], gen["tokens"][-n:]
        res.update(G=cfg.num_generations, max_new_tokens=cfg.max_new_tokens, rollout_s=sum(gs) / max(len(gs), 1),
                   generated_tokens=sum(gt) / max(len(gt), 1), kl_coef=cfg.kl_coef,
                   reference="frozen copy" if extra.get("ref_model") is not None else "adapter disabled")
        # trained sequences: G x (prompt + completion); the prompt batch is the G-fold repeated clip
        seq_tokens = seq_tokens + int(res["generated_tokens"])
        res["seq_tokens"] = seq_tokens
    res["tokens_per_s"] = seq_tokens / s
    del trainer, model, extra
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return res


def measure_matmul_tflops(device: str, n: int = 8192, repeats: int = 10) -> float:
    """Achieved bf16 TFLOP/s of an ``n``³ matmul on ``device`` (mean of ``repeats`` after 3 warm-ups)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e12


def add_utilisation(res: dict[str, Any], peak_tflops: float | None) -> None:
    """Add ``tflops`` (model FLOPs/s), ``mfu`` and ``hfu`` (with recomputation) to a stage result."""
    if "s_per_step" not in res:
        return
    model = res["flops_forward"] + res["flops_backward"]
    res["tflops"] = model / res["s_per_step"] / 1e12
    res["tflops_with_recompute"] = (model + res["flops_recompute"]) / res["s_per_step"] / 1e12
    res["mfu"] = res["tflops"] / peak_tflops if peak_tflops else None
    res["hfu"] = res["tflops_with_recompute"] / peak_tflops if peak_tflops else None


def write_section(path: Path, body: str) -> None:
    """Put ``body`` between the gpu_check markers of ``path`` (replacing what was there, or appending)."""
    text = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, count=1, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1%}"


def render(result: dict[str, Any]) -> str:
    """The markdown section (device named; every number from this run is *measured (device)*)."""
    dev = result["device"]
    lines = [f"### GPU check, measured on {dev}", "",
             f"`bash bench/gpu_check.sh` on {result['date']}: {dev}, torch {result['env'].get('torch')}, transformers "
             f"{result['env'].get('transformers')}; Qwen2.5-VL-7B architecture, random weights in bf16 "
             f"({result['model']['n_params'] / 1e9:.2f} B parameters), one clip per step, synthetic frames; "
             f"wall {result['wall_s']:.0f} s. Peak dense bf16 {result['peak_tflops']} TFLOP/s (datasheet); an 8192³ bf16 "
             f"matmul reached {result['matmul_tflops']:.0f} TFLOP/s = {_pct(result.get('matmul_ratio'))} of it.", "",
             "| stage | config | tokens/step | s/step | tokens/s | peak GiB | TFLOP/s executed | MFU | HFU (+recompute) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    for r in result["stages"]:
        if "s_per_step" in r:
            lines.append(f"| {r['stage']} | `{Path(r['config']).name}` | {r['seq_tokens']} | {r['s_per_step']:.2f} | "
                         f"{r['tokens_per_s']:.0f} | {r['peak_GiB']:.1f} | {r['tflops']:.0f} | {_pct(r.get('mfu'))} | "
                         f"{_pct(r.get('hfu'))} |")
            if r["stage"] == "grpo":
                notes.append(f"GRPO: G = {r['G']}, max_new_tokens {r['max_new_tokens']}: {r['generated_tokens']:.0f} "
                             f"tokens generated per step in {r['rollout_s']:.1f} s of the {r['s_per_step']:.1f} s step "
                             f"({r['generated_tokens'] / max(r['rollout_s'], 1e-9):.0f} tokens/s).")
        else:
            lines.append(f"| {r['stage']} | `{Path(r.get('config', '')).name}` | – | – | – | "
                         f"{r.get('peak_GiB', 0):.1f} | – | – | {r.get('skipped') or r.get('error')} |")
    lines += [""] + notes + [
        "", "tokens/step: the sequence tokens trained on (video + prompt + answer; GRPO: G x (prompt + completion)). "
        "FLOPs are counted as executed (`FlopCounter` in bench/gpu_check.py): no backward through frozen weights "
        "or the frozen vision tower, GRPO's prefill and decode and the reference passes included; HFU adds the "
        "forward recomputed by gradient checkpointing. Reproduce: `bash bench/gpu_check.sh`."]
    return "\n".join(lines)


def summary(result: dict[str, Any]) -> str:
    """The compact summary that ends stdout."""
    out = [f"gpu_check summary ({result['device']}{', DRY RUN: shrunk model on CPU' if result['dry_run'] else ''}; "
           f"matmul {result['matmul_tflops']:.0f} TFLOP/s = {_pct(result.get('matmul_ratio'))} of peak "
           f"{result['peak_tflops']}; wall {result['wall_s']:.0f} s)"]
    for r in result["stages"]:
        if "s_per_step" in r:
            out.append(f"  {r['stage']:<10} {r['s_per_step']:8.3f} s/step {r['tokens_per_s']:9.0f} tok/s "
                       f"peak {r['peak_GiB']:6.1f} GiB  MFU {_pct(r.get('mfu')):>6}  HFU {_pct(r.get('hfu')):>6}")
        else:
            out.append(f"  {r['stage']:<10} {r.get('skipped') or r.get('error')}")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        write_docs(result, args.docs, args.training_docs)
        print(summary(result), flush=True)
        return 0
    try:
        args.env = check_environment()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        device_name = "CPU (dry run)"
    else:
        try:
            device_name = require_cuda(args.device)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.dry_run:
        if not args.frames:
            args.frames = 4
        if not args.max_pixels:
            args.max_pixels = 56 * 56
        if not args.max_new_tokens:
            args.max_new_tokens = 6
        args.steps = min(args.steps, 1)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    result: dict[str, Any] = {"device": device_name, "dry_run": args.dry_run, "date": time.strftime("%Y-%m-%d"),
                              "env": args.env, "stages": []}
    try:
        ckpt = work / "random-7b"
        from vqalib.train.common import load_config

        px = args.max_pixels or load_config("sft", ROOT / STAGES["sft_lora"][1]).max_pixels
        print(f"== gpu_check: building the {'shrunk' if args.dry_run else '7B'} model with random weights", flush=True)
        result["model"] = build_checkpoint(ckpt, args.dry_run, px, args.device)
        for stage in args.stages:
            if time.perf_counter() - t0 > args.budget_s:
                result["stages"].append({"stage": stage, "skipped": f"time budget {args.budget_s:.0f} s reached"})
                continue
            print(f"== gpu_check: {stage}", flush=True)
            try:
                res = run_stage_check(stage, ckpt, args, work)
            except Exception as exc:  # noqa: BLE001 - reported; the other stages still run
                if args.dry_run:
                    raise
                res = {"stage": stage, "config": STAGES[stage][1], "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            result["stages"].append(res)
            if args.out:  # after every stage, so a run cut short still leaves what it measured
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(result, indent=1, default=str))
            print(f"   {json.dumps({k: v for k, v in res.items() if not isinstance(v, (list, dict))})}", flush=True)
            gc.collect()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
        peak = None if args.dry_run else peak_bf16_tflops(device_name)
        result["peak_tflops"] = peak
        result["matmul_tflops"] = measure_matmul_tflops(args.device, n=512 if args.dry_run else 8192,
                                                        repeats=2 if args.dry_run else 10)
        result["matmul_ratio"] = result["matmul_tflops"] / peak if peak else None
        for r in result["stages"]:
            add_utilisation(r, peak)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["wall_s"] = time.perf_counter() - t0
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {args.out}")
    write_docs(result, args.docs, args.training_docs)
    print(summary(result), flush=True)
    failed = [r for r in result["stages"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
