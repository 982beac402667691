"""Wall time of ASO's π_ref precompute with 1 process vs N processes (each rank scores its shard).

    .venv/bin/python bench/bench_pi_ref.py --nproc 2 --sample-size default

runs ``python bench/bench_pi_ref.py --worker`` once alone and once under
``torchrun --standalone --nproc_per_node N`` (gloo on CPU, one torch thread per process, standing in
for one GPU per process), after a warm-up run that fills the frame cache, and prints the two times
and their ratio. The worker times only :func:`vqalib.train.aso_trainer.precompute_pi_ref` (with its
gather) on the tiny model, between two barriers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worker(args) -> None:
    import torch

    from vqalib.model.loading import load_model_and_processor
    from vqalib.train.aso_trainer import precompute_pi_ref
    from vqalib.train.common import sampling_config
    from vqalib.train.collator import FrameCache, load_examples
    from vqalib.train.common import ASOConfig
    from vqalib.core.distributed import gather_dict, is_main_process, num_processes, process_index, wait_for_everyone

    torch.set_num_threads(1)
    cfg = ASOConfig(sample_size=args.sample_size, device="cpu")
    examples = load_examples("", "train", cfg.sample_size, 0, args.max_clips)
    model, processor = load_model_and_processor("tiny")
    cache = FrameCache(sampling_config(cfg))
    wait_for_everyone()
    t0, c0 = time.perf_counter(), time.process_time()
    pi = precompute_pi_ref(model, processor, examples, cache, "short", batch_size=args.batch_size, progress=False)
    cpu = time.process_time() - c0
    wait_for_everyone()
    wall = time.perf_counter() - t0
    cpus = gather_dict({str(process_index()): cpu})
    if is_main_process():
        print(json.dumps({"processes": num_processes(), "clips": len(pi), "wall_s": round(wall, 3),
                          "max_rank_cpu_s": round(max(cpus.values()), 3), "sum_cpu_s": round(sum(cpus.values()), 3)}),
              flush=True)


def run(cmd: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--sample-size", default="default", help="embedded sample dataset: smoke | default | large")
    ap.add_argument("--max-clips", type=int, default=0, help="use the first N training clips (0: all)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    me = [str(Path(__file__).resolve()), "--worker", "--sample-size", args.sample_size, "--max-clips",
          str(args.max_clips), "--batch-size", str(args.batch_size)]
    run([sys.executable, *me])  # warm-up: dataset, tiny model and frame cache on disk
    one = run([sys.executable, *me])
    many = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc), *me])
    print(f"pi_ref precompute, {one['clips']} clips: wall 1 process {one['wall_s']:.2f} s, {args.nproc} processes "
          f"{many['wall_s']:.2f} s, ratio {many['wall_s'] / one['wall_s']:.2f} (ideal {1 / args.nproc:.2f}); "
          f"CPU time of the busiest rank {many['max_rank_cpu_s']:.2f} s vs {one['max_rank_cpu_s']:.2f} s, ratio "
          f"{many['max_rank_cpu_s'] / one['max_rank_cpu_s']:.2f} (all ranks together {many['sum_cpu_s']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
