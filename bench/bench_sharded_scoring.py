"""Benchmark: ``score`` over N processes (``torchrun``) against one process, on the same clips.

Each configuration is launched as its own job, loads the model, then times ``Scorer.score`` only (the
model load is left out: it is paid once per job, whatever the number of clips). Rank 0 reports the wall
time of the whole sharded score, merge included. One process gets every thread (``OMP_NUM_THREADS`` =
the cores); N processes get cores / N threads each, so both use the same cores. Printed: clips/s per
configuration and the N-process / 1-process throughput ratio. The rows of both runs are compared (the
score columns must agree to 1e-5). Example::

    .venv/bin/python bench/bench_sharded_scoring.py --clips 24 --processes 2

On a GPU machine pass ``--device cuda``: each rank takes its own GPU (``cuda:<local rank>``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def worker(args) -> None:
    """One job (1 process, or one rank of N): score ``args.videos`` into ``args.output`` and time it."""
    from vqalib.inference.scorer import Scorer
    from vqalib.inference.shards import world

    scorer = Scorer(args.model, mode="fast", batch_size=args.batch_size, num_workers=0, device=args.device)
    t0 = time.perf_counter()
    run = scorer.score(args.videos, args.output)
    wall = time.perf_counter() - t0
    if world()[0] == 0:
        Path(args.report).write_text(json.dumps({"wall_s": wall, "n": run.n_scored, "failed": run.n_failed}))


def launch(n: int, clips: Path, out: Path, report: Path, args) -> dict:
    cores = os.cpu_count() or 1
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // n)), TOKENIZERS_PARALLELISM="false")
    head = [sys.executable] if n == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                            "--nproc_per_node", str(n)]
    cmd = head + [__file__, "--worker", "--videos", str(clips), "--output", str(out), "--report", str(report),
                  "--model", args.model, "--batch-size", str(args.batch_size), "--device", args.device]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"{n}-process run failed:\n{proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--videos", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    import numpy as np

    from model_helpers import write_clip
    from vqalib.inference.store import read_scores

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = tmp / "clips"
        clips.mkdir()
        for i in range(args.clips):
            write_clip(clips / f"clip{i:03d}.mp4", n_frames=16, size=112, seed=i)
        res = {}
        for n in (1, args.processes):
            res[n] = launch(n, clips, tmp / f"scores{n}.csv", tmp / f"report{n}.json", args)
            print(f"{n} process(es): {res[n]['n']} clips in {res[n]['wall_s']:.1f} s = "
                  f"{res[n]['n'] / res[n]['wall_s']:.2f} clips/s ({res[n]['failed']} failed)")
        a, b = read_scores(tmp / "scores1.csv"), read_scores(tmp / f"scores{args.processes}.csv")
        cols = [c for c in a.columns if c.startswith(("p_", "expected_", "argmax_"))]
        same = a["video_id"].tolist() == b["video_id"].tolist() and np.allclose(a[cols], b[cols], atol=1e-5)
        ratio = (res[args.processes]["n"] / res[args.processes]["wall_s"]) / (res[1]["n"] / res[1]["wall_s"])
        print(f"throughput ratio {args.processes} processes / 1 process: {ratio:.2f} "
              f"({os.cpu_count()} cores, device {args.device}); rows equal (1e-5): {same}")


if __name__ == "__main__":
    main()
