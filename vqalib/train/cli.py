"""``python -m vqalib train sft|grpo|aso --config FILE [--set KEY=VALUE [KEY=VALUE ...]]``.

The same functions notebooks 04-06 call (:func:`vqalib.train.sft.train_sft`, ``train_grpo``,
``train_aso``), so ``accelerate launch -m vqalib train sft --config env/train_configs/sft_7b.yaml``
runs them on several GPUs (configs in ``env/accelerate_*.yaml``). Example, one step of each on CPU::

    python -m vqalib train sft --config env/train_configs/sft_tiny.yaml --set max_steps=1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from vqalib.core.runs import cli_path, resolve_path
from vqalib.train.common import STAGES, load_config


def run_config(cfg):
    """Dispatch a loaded config to its stage's training function."""
    if cfg.stage == "sft":
        from vqalib.train.sft import train_sft

        return train_sft(cfg)
    if cfg.stage == "grpo":
        from vqalib.train.grpo import train_grpo

        return train_grpo(cfg)
    from vqalib.train.aso_trainer import train_aso

    return train_aso(cfg)


def default_config(stage: str):
    """``env/train_configs/<stage>_tiny.yaml`` of the checkout (the demo's settings, the same values
    notebooks 04-06 set), or None where there is no such file (an installed package)."""
    path = resolve_path(f"env/train_configs/{stage}_tiny.yaml")
    return path if path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vqalib train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=STAGES, help="training stage")
    ap.add_argument("--config", default=None, type=cli_path,
                    help="YAML config (see env/train_configs/; from the working directory); omitted = "
                         "env/train_configs/STAGE_tiny.yaml, the demo's model and data settings with a fixed step "
                         "count (the dataclass defaults where the checkout has no such file)")
    ap.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override config keys: one or more KEY=VALUE after one --set, and --set may repeat, "
                         "e.g. --set data_dir=/data/my_vqa finetune=lora lr=5e-5 (paths in values, like those in "
                         "the YAML file, are from the project root)")
    ap.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    config = args.config
    if config is None and (demo := default_config(args.stage)) is not None:
        config = str(demo)
        print(f"config: {demo} (no --config given: the demo's model and data settings, with a fixed step count; "
              "notebooks 05-06 train GRPO and ASO on a time budget instead)", file=sys.stderr)
    try:
        cfg = load_config(args.stage, config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(dataclasses.asdict(cfg), indent=2))
        return 0
    result = run_config(cfg)
    from vqalib.core.distributed import is_main_process

    if not is_main_process():  # under torchrun / accelerate launch one process reports
        return 0
    losses = result.losses()
    last = float(losses["loss"].iloc[-1]) if len(losses) else float("nan")
    print(f"{cfg.stage}: saved to {result.output_dir} after {result.wall_s:.1f} s; last logged loss {last:.4f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
