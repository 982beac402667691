"""Benchmark: the scorer's two readouts (fast vs generate) and decoding overlapped with the model.

Side by side in one process, on the tiny preset and on a random model built from the real
Qwen2.5-VL-7B ``config.json`` with its sizes shrunk (needs ../shared/data/qwen2_5_vl; skipped
otherwise), over the same video files (generated H.264 clips, or ``--videos DIR``):

* ``fast``     : ``Scorer(mode="fast")``: one tree-masked pass per batch, no generation;
* ``generate`` : ``Scorer(mode="generate")``: greedy answer (``--max-new-tokens``) + parse +
                 distributions on the answer (an untrained model never stops early, so every
                 answer is ``--max-new-tokens`` long: the worst case);
* ``fast, W workers``: fast mode with decoding and the processor in ``W`` DataLoader workers.

Per run: clips/s and where the time goes (decode, processor, model; seconds summed over clips, from
the per-row timing columns). Overlap = (decode + processor + model - wall) / (decode + processor) of
the run with workers: the share of the workers' time that ran while the model worked (1.0 = fully
hidden; it cannot exceed model / (decode + processor)). Example::

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_score.py --clips 8 --batch-size 4 --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from model_helpers import QWEN_DIR, shrunk_real_model, write_clip  # noqa: E402
from vqalib.inference.scorer import Scorer  # noqa: E402
from vqalib.video.frames import SamplingConfig  # noqa: E402


def run(scorer: Scorer, videos, repeats: int) -> dict:
    best = None
    for _ in range(repeats):
        t = time.perf_counter()
        res = scorer.score(videos)
        wall = time.perf_counter() - t
        if best is None or wall < best[0]:
            best = (wall, res)
    wall, res = best
    ok = res.rows[res.rows["status"] == "ok"]
    return {"clips": len(ok), "wall": wall, "clips_s": len(ok) / wall, "decode": ok["decode_s"].sum(),
            "processor": ok["processor_s"].sum(), "model": ok["model_s"].sum()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8, help="generated clips (ignored with --videos)")
    ap.add_argument("--videos", default=None, help="score these videos instead of generated clips")
    ap.add_argument("--size", type=int, default=224, help="generated clip side in pixels")
    ap.add_argument("--frames", type=int, default=64, help="frames per generated clip (8 fps)")
    ap.add_argument("--max-frames", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["tiny", "shrunk_real"])
    ap.add_argument("--no-generate", action="store_true", help="skip generate mode (only the worker comparison)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_score_"))
    if args.videos:
        videos = args.videos
    else:
        for i in range(args.clips):
            write_clip(tmp / f"clip{i:02d}.mp4", n_frames=args.frames, size=args.size, seed=i)
        videos = tmp
    print(f"videos: {videos}; batch {args.batch_size}; max_frames {args.max_frames}; torch threads "
          f"{torch.get_num_threads()}; max_new_tokens {args.max_new_tokens}")
    header = "| model | run | clips/s | wall s | decode s | processor s | model s | vs generate |"
    print(header + "\n|" + " --- |" * 8)
    for name in args.models:
        if name == "tiny":
            base = Scorer("tiny", device="cpu")
            sampling = dataclasses.replace(base.sampling, max_frames=args.max_frames)
        else:
            if not QWEN_DIR.is_dir():
                print(f"| shrunk real config | skipped: {QWEN_DIR} not found |")
                continue
            net, proc = shrunk_real_model()
            base = Scorer(net, processor=proc)
            sampling = SamplingConfig(max_frames=args.max_frames, max_pixels=224 * 224)
        kw = dict(processor=base.processor, sampling=sampling, batch_size=args.batch_size)
        gen = None if args.no_generate else run(
            Scorer(base.model, mode="generate", max_new_tokens=args.max_new_tokens, **kw), videos, args.repeats)
        fast = run(Scorer(base.model, mode="fast", **kw), videos, args.repeats)
        fastw = run(Scorer(base.model, mode="fast", num_workers=args.workers, **kw), videos, args.repeats)
        for label, r in (("generate", gen), ("fast", fast), (f"fast, {args.workers} workers", fastw)):
            if r is None:
                continue
            ratio = f"{r['clips_s'] / gen['clips_s']:.1f}x" if gen else "-"
            print(f"| {name} | {label} | {r['clips_s']:.2f} | {r['wall']:.2f} | {r['decode']:.2f} | "
                  f"{r['processor']:.2f} | {r['model']:.2f} | {ratio} |")
        work = fastw["decode"] + fastw["processor"]
        hidden = (work + fastw["model"] - fastw["wall"]) / work if work else float("nan")
        print(f"| {name} | with {args.workers} workers, {hidden:.0%} of the decode + processor time "
              f"({work:.2f} s) ran while the model worked (serial sum {work + fastw['model']:.2f} s, wall "
              f"{fastw['wall']:.2f} s) | | | | | | |")


if __name__ == "__main__":
    main()
