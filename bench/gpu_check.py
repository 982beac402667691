"""GPU check: one command that measures, on one CUDA GPU and within about 8 minutes, the real
Qwen2.5-VL-7B architecture with random weights (no download; config and processor files from
``../shared/data/qwen2_5_vl``), and writes the results as a section of ``docs/benchmarks.md`` that
names the device::

    .venv/bin/python bench/gpu_check.py            # or: bash bench/gpu_check.sh

Parts (``--parts``, all by default, run in this order; a part that would start after ``--budget-s``
is skipped and reported as skipped):

* ``train``   - one LoRA optimisation step each of SFT, ASO with cached π_ref and GRPO with G = 8
  completions per prompt, bf16 (``bench/bench_train_steps.py``: s/step, tokens/s, peak GPU memory,
  MFU against the bf16 matmul rate measured on the same GPU);
* ``scoring`` - exact 9-level scoring of one clip: one tree-masked pass
  (:func:`vqalib.scoring.level_logprobs_raw`) vs 45 teacher-forced passes and vs 5 passes of the 9
  stacked candidates (:func:`vqalib.scoring.level_logprobs_independent`), with their max |difference|;
* ``qlora``   - one QLoRA SFT step: the random model is saved once and reloaded in 4 bit through the
  project's loader (``vqalib.models.load_model_and_processor(quantization="4bit")``, bitsandbytes).

Without CUDA it stops at once with exit code 2 and says so (tested on CPU, like the arguments).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PARTS: tuple[str, ...] = ("train", "scoring", "qlora")
DEFAULT_CONFIG = ROOT.parent / "shared" / "data" / "qwen2_5_vl" / "config.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- gpu_check:begin -->", "<!-- gpu_check:end -->"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="config.json of the full-size model (random weights)")
    ap.add_argument("--device", default="cuda", help="a CUDA device: cuda or cuda:N")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--batch", type=int, default=1, help="prompts (clips) per training step")
    ap.add_argument("--G", type=int, default=8, help="GRPO completions per prompt")
    ap.add_argument("--frames", type=int, default=8, help="frames per clip")
    ap.add_argument("--side", type=int, default=448, help="frame side in pixels")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="tokens sampled per GRPO completion")
    ap.add_argument("--repeats", type=int, default=2, help="timed steps per method (after one warm-up)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="skip parts that would start after this many seconds")
    ap.add_argument("--docs", default=str(DOCS), help="markdown file whose gpu_check section is (re)written; '' = none")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        ap.error(f"--parts {args.parts!r}: unknown part(s) {bad}; choose from {list(PARTS)}")
    args.parts = parts
    if not args.device.startswith("cuda"):
        ap.error(f"--device {args.device!r}: the GPU check runs on a CUDA device (cuda or cuda:N)")
    for name in ("batch", "G", "frames", "side", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if not Path(args.config).is_file():
        ap.error(f"--config {args.config}: no such file; point it at the Qwen2.5-VL-7B config.json "
                 f"(../shared/data/qwen2_5_vl/config.json beside the checkout)")
    return args


def require_cuda(device: str) -> str:
    """The device's name, or ``RuntimeError`` saying that there is no CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: torch.cuda.is_available() is False (torch "
                           f"{torch.__version__}, built for CUDA {torch.version.cuda}); run bench/gpu_check.py on a "
                           "machine with an NVIDIA GPU")
    return torch.cuda.get_device_name(torch.device(device))


def write_section(path: Path, body: str) -> None:
    """Put ``body`` between the gpu_check markers of ``path`` (replacing what was there, or appending)."""
    text = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, count=1, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def part_train(args, tmp: Path) -> dict:
    import bench_train_steps

    out = tmp / "train.json"
    argv = ["--config", args.config, "--lora", "--bf16", "--device", args.device, "--batch", str(args.batch),
            "--G", str(args.G), "--frames", str(args.frames), "--side", str(args.side), "--repeats", str(args.repeats),
            "--max-new-tokens", str(args.max_new_tokens), "--methods", "sft,aso_cached,grpo", "--json", str(out)]
    rc = bench_train_steps.main(argv)
    if rc != 0:
        raise RuntimeError(f"bench_train_steps exited {rc}")
    return json.loads(out.read_text())


def _random_model(config: str, device: str):
    """The full-size model with random weights in bf16 on ``device`` (``bench_train_steps.build_model``)."""
    from bench_train_steps import build_model

    model, processor = build_model(argparse.Namespace(config=config, device=device, bf16=True, lora=False,
                                                      gradient_checkpointing=False))
    return model.eval(), processor


def _clip_batch(processor, args, n: int = 1):
    from bench_train_steps import synthetic_clip

    from vqalib.inputs import build_batch
    from vqalib.levels import DIMENSION_KEYS
    from vqalib.prompts import format_answer

    clips = [synthetic_clip(i, args.frames, args.side) for i in range(n)]
    answers = [format_answer(dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Seen: blur, noise.")] * n
    return build_batch(processor, clips, answers).to(args.device)


def _timed(fn, repeats: int) -> tuple[float, object]:
    import torch

    out = fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def part_scoring_and_save(args, tmp: Path, save_to: Path | None) -> dict:
    """Tree vs 45 passes vs 9-stacked at real size; optionally saves the random model for the QLoRA part."""
    import torch

    from vqalib import scoring

    model, processor = _random_model(args.config, args.device)
    batch = _clip_batch(processor, args)
    with torch.no_grad():
        t_tree, tree = _timed(lambda: scoring.level_logprobs_raw(model, batch), args.repeats)
        t_b9, b9 = _timed(lambda: scoring.level_logprobs_independent(model, batch, batched_levels=True), 1)
        t_n9, n9 = _timed(lambda: scoring.level_logprobs_independent(model, batch), 1)
    diff = max(float((tree - n9).abs().max()), float((tree - b9).abs().max()))
    res = {"tokens": int(batch["attention_mask"].sum()), "tree_s": t_tree, "stacked9_s": t_b9, "passes45_s": t_n9,
           "max_abs_diff": diff}
    if save_to is not None:
        model.save_pretrained(str(save_to))
        processor.save_pretrained(str(save_to))
    del model
    torch.cuda.empty_cache()
    return res


def part_qlora(args, path: Path) -> dict:
    import torch

    from vqalib.models import LoraSettings, load_model_and_processor
    from vqalib.train.sft import answer_token_ce

    t0 = time.perf_counter()
    model, processor = load_model_and_processor(str(path), dtype=torch.bfloat16, quantization="4bit", lora=LoraSettings())
    load_s = time.perf_counter() - t0
    batch = _clip_batch(processor, args, args.batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def step():
        loss = answer_token_ce(model(**inputs).logits, batch["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    torch.cuda.reset_peak_memory_stats()
    s, loss = _timed(step, args.repeats)
    return {"load_s": load_s, "s_per_step": s, "tokens_per_s": int(batch["attention_mask"].sum()) / s,
            "peak_mem_GiB": torch.cuda.max_memory_allocated() / 2**30, "loss": loss}


def render(device_name: str, args, results: dict, skipped: list[str], wall: float) -> str:
    import torch

    lines = [f"## GPU check: {device_name}", "",
             f"`bench/gpu_check.py` on {time.strftime('%Y-%m-%d')}: one {device_name}, torch {torch.__version__}, "
             f"Qwen2.5-VL-7B architecture with random weights ({args.config}), bf16, {args.frames} frames of "
             f"{args.side}² per clip, batch {args.batch}, median of {args.repeats} steps after a warm-up; "
             f"wall {wall:.0f} s.", ""]
    tr = results.get("train")
    if tr:
        lines += [f"LoRA steps ({tr['setting']}); MFU against the measured bf16 matmul rate "
                  f"{tr['matmul_tflops']:.0f} TFLOP/s:", "",
                  "| method | s/step | tokens/s | peak GiB | MFU |", "| --- | --- | --- | --- | --- |"]
        for r in tr["rows"]:
            lines.append(f"| {r['method']} | {r['s_per_step']:.3f} | {r['tokens_per_s']:.0f} | {r['peak_mem_GiB']:.1f} "
                         f"| {r['mfu']:.1%} |")
        lines.append("")
    q = results.get("qlora")
    if q:
        lines += [f"QLoRA (4-bit NF4 base + LoRA) SFT step: {q['s_per_step']:.3f} s/step, {q['tokens_per_s']:.0f} tokens/s, "
                  f"peak {q['peak_mem_GiB']:.1f} GiB (4-bit load {q['load_s']:.0f} s).", ""]
    sc = results.get("scoring")
    if sc:
        lines += [f"Exact 9-level scoring of one clip ({sc['tokens']} tokens): tree pass {sc['tree_s'] * 1e3:.0f} ms; "
                  f"45 teacher-forced passes {sc['passes45_s'] * 1e3:.0f} ms (**{sc['passes45_s'] / sc['tree_s']:.1f}x**); "
                  f"9 stacked candidates × 5 {sc['stacked9_s'] * 1e3:.0f} ms ({sc['stacked9_s'] / sc['tree_s']:.1f}x); "
                  f"max |Δ log π| {sc['max_abs_diff']:.2g} (bf16).", ""]
    for name, err in results.get("errors", {}).items():
        lines += [f"Part `{name}` failed: {err}", ""]
    if skipped:
        lines += [f"Skipped (time budget {args.budget_s:.0f} s reached): {', '.join(skipped)}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        device_name = require_cuda(args.device)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results: dict = {"errors": {}}
    skipped: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    saved = tmp / "random-7b"
    try:
        for part in args.parts:
            if time.perf_counter() - t0 > args.budget_s:
                skipped.append(part)
                continue
            print(f"== gpu_check: {part}", flush=True)
            try:
                if part == "train":
                    results["train"] = part_train(args, tmp)
                elif part == "scoring":
                    results["scoring"] = part_scoring_and_save(args, tmp, saved if "qlora" in args.parts else None)
                elif part == "qlora":
                    if not (saved / "config.json").is_file():  # --parts without scoring: build and save here
                        part_scoring_and_save(args, tmp, saved)
                    results["qlora"] = part_qlora(args, saved)
            except Exception as exc:  # noqa: BLE001 - reported in the section, the other parts still run
                results["errors"][part] = f"{type(exc).__name__}: {str(exc)[:300]}"
                print(f"   {part} failed: {results['errors'][part]}", flush=True)
            import torch

            torch.cuda.empty_cache()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    body = render(device_name, args, results, skipped, time.perf_counter() - t0)
    print(body)
    if args.docs:
        write_section(Path(args.docs), body)
        print(f"wrote the gpu_check section of {args.docs}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
