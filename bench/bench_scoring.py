"""Benchmark: exact 9-level scoring in one tree-masked pass vs nine full teacher-forced passes.

Runs, side by side in one process, on the tiny preset and on a random model built from the real
Qwen2.5-VL-7B ``config.json`` with its sizes shrunk (needs ../shared/data/qwen2_5_vl; skipped
otherwise), at 8 and 32 frames:

* ``tree``     : :func:`vqalib.method.distributions.level_logprobs_raw`, one forward pass for the whole batch;
* ``9 passes`` : one full forward pass of prefix + level for every clip x dimension x level
                 (45 passes per clip), :func:`vqalib.method.distributions.level_logprobs_independent`;
* ``9 batched``: the 9 candidates of a dimension stacked as one batch (5 passes of 9 per clip).

Also times the tree pass forward + backward for a training batch (ASO's use). Prints a table;
the max |difference| column checks the results agree. Example (2 CPU threads)::

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_scoring.py --clips 2 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from model_helpers import QWEN_DIR, shrunk_real_model, synthetic_clip  # noqa: E402
from vqalib.model import loading as models  # noqa: E402
from vqalib.schema import prompts
from vqalib.method import distributions as scoring
from vqalib.model.inputs import build_batch  # noqa: E402
from vqalib.schema.levels import DIMENSION_KEYS  # noqa: E402


def _time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _answers(n: int) -> list[str]:
    scores = dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0]))
    return [prompts.format_answer(scores, prompts.template_rationale("clarity_quality", 2.5, ["blur"]))] * n


def bench_model(name: str, model, proc, frames: int, size: tuple[int, int], clips: int, repeats: int,
                train_batch: int) -> list[dict]:
    videos = [synthetic_clip(n_frames=frames, size=size, n_source_frames=frames * 15, seed=i) for i in range(clips)]
    batch = build_batch(proc, videos, _answers(clips))
    rows = []
    with torch.no_grad():
        t_tree, tree = _time(lambda: scoring.level_logprobs_raw(model, batch), repeats)
        t_b9, b9 = _time(lambda: scoring.level_logprobs_independent(model, batch, batched_levels=True), 1)
        t_n9, n9 = _time(lambda: scoring.level_logprobs_independent(model, batch), 1)
    diff = max(float((tree - n9).abs().max()), float((tree - b9).abs().max()))
    seq = int(batch["attention_mask"].sum(1).float().mean())
    for method, t in (("tree (1 pass)", t_tree), ("9 batched (5 passes/clip)", t_b9), ("9 passes (45/clip)", t_n9)):
        rows.append({"model": name, "frames": frames, "tokens": seq, "method": method,
                     "ms_per_clip": 1000 * t / clips, "x_vs_tree": t / t_tree, "max_abs_diff": diff})
    if train_batch:
        tv = [synthetic_clip(n_frames=frames, size=size, n_source_frames=frames * 15, seed=i) for i in range(train_batch)]
        tb = build_batch(proc, tv, _answers(train_batch))

        def step():
            model.zero_grad(set_to_none=True)
            lp, _ = scoring.level_logprobs(model, tb)
            lp.sum().backward()

        t_train, _ = _time(step, repeats)
        rows.append({"model": name, "frames": frames, "tokens": seq, "method": f"tree fwd+bwd, batch {train_batch}",
                     "ms_per_clip": 1000 * t_train / train_batch, "x_vs_tree": float("nan"), "max_abs_diff": float("nan")})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=2, help="clips per scoring batch")
    ap.add_argument("--frames", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--repeats", type=int, default=3, help="best-of repeats for the tree pass")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--train-batch", type=int, default=16, help="batch for the fwd+bwd timing (0 = skip)")
    ap.add_argument("--real-size", type=int, nargs=2, default=[224, 224], help="frame H W for the shrunk real model")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tiny, tiny_proc = models.load_model_and_processor("tiny")
    entries = [("tiny", tiny.eval(), tiny_proc, (112, 112))]
    if (QWEN_DIR / "config.json").is_file():
        real, real_proc = shrunk_real_model()
        entries.append(("shrunk real config", real, real_proc, tuple(args.real_size)))
    else:
        print(f"(shrunk real-config model skipped: {QWEN_DIR} not found)")
    rows = []
    for name, model, proc, size in entries:
        for f in args.frames:
            rows.extend(bench_model(name, model, proc, f, size, args.clips, args.repeats, args.train_batch))
    import pandas as pd

    df = pd.DataFrame(rows)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.clips} clips per batch, best of {args.repeats}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
