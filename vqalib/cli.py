"""Command line: ``python -m vqalib <command> ...`` (also installed as ``vqalib``).

Commands
  run-notebooks   execute every numbered notebook in order into a run folder (the main job)
  train           SFT / GRPO / ASO training (``python -m vqalib train sft --config FILE``);
                  the same functions the notebooks call, so ``accelerate launch -m vqalib train ...``
                  runs them on several GPUs
  sample-data     generate (or find in the cache) the embedded sample dataset and print its path
"""

from __future__ import annotations

import sys
from typing import Sequence


def _sample_data(argv: Sequence[str]) -> int:
    import argparse

    from vqalib.synth import ensure_sample_dataset

    ap = argparse.ArgumentParser(prog="python -m vqalib sample-data")
    ap.add_argument("--size", default="default", help="smoke | default | large")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default=None, help="output folder (default: the cache)")
    args = ap.parse_args(argv)
    print(ensure_sample_dataset(size=args.size, seed=args.seed, root=args.root))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "run-notebooks":
        from vqalib.notebook_runner import main as run_main

        return run_main(rest)
    if cmd == "train":
        from vqalib.train.cli import main as train_main

        return train_main(rest)
    if cmd == "sample-data":
        return _sample_data(rest)
    print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
