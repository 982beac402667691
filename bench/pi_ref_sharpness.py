"""Measure how peaked π_ref is when read after each rationale mode (issue 9, item 1).

Loads an SFT checkpoint (written by ``python -m vqalib train sft`` or notebook 04), takes its data,
video sampling and instruction from the checkpoint's manifest, and reads π_ref over the 9 levels
on ``--max-clips`` training clips after each rationale mode (``full``, ``scrubbed``, ``short``,
``none``; :func:`vqalib.train.aso_trainer.pi_ref_sharpness`). Prints, per mode, the mean max
probability, mean entropy (nats; uniform over 9 levels = 2.197), mean π_ref(s*) and π*(s*) at
λ = β = 1, and the number of clips whose teacher-forced rationale names the score. A mode that
gives the score away shows max probability ≈ π_ref(s*) ≈ 1 and entropy ≈ 0. Example::

    .venv/bin/python bench/pi_ref_sharpness.py --checkpoint runs/demo/checkpoints/sft --max-clips 64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="SFT checkpoint folder (with vqalib_train_manifest.json)")
    ap.add_argument("--max-clips", type=int, default=64, help="training clips to read π_ref on")
    ap.add_argument("--modes", default="full,scrubbed,short,none", help="comma-separated rationale modes")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", default="", help="also write the table to this JSON file")
    args = ap.parse_args(argv)

    from vqalib.train.aso_trainer import pi_ref_sharpness
    from vqalib.train.base import load_policy
    from vqalib.train.common import sampling_config
    from vqalib.train.collator import FrameCache, load_examples
    from vqalib.train.common import load_config, resolve_device
    from vqalib.core.runs import read_manifest

    ckpt = Path(args.checkpoint)
    man = read_manifest(ckpt)
    if not man:
        raise SystemExit(f"{ckpt}: no vqalib_train_manifest.json; pass a checkpoint written by `python -m vqalib train sft`")
    sft = man["config"]
    keep = ("data_dir", "sample_size", "data_seed", "split", "fps", "max_frames", "max_pixels", "instruction", "bf16")
    cfg = load_config("aso", None, {**{k: sft[k] for k in keep if k in sft}, "init_from": str(ckpt),
                                    "finetune": "full", "device": args.device, "rationale": "none"})
    device = resolve_device(cfg.device)
    model, processor = load_policy(cfg)
    examples = load_examples(cfg.data_dir, cfg.split, cfg.sample_size, cfg.data_seed, args.max_clips)
    table = pi_ref_sharpness(model.to(device), processor, examples, FrameCache(sampling_config(cfg)),
                             modes=tuple(args.modes.split(",")), batch_size=args.batch_size, device=device,
                             instruction=cfg.instruction, progress=True)
    print(f"checkpoint {ckpt} (trained with rationale={sft.get('rationale')!r}, "
          f"{sft.get('max_steps')} steps), {len(examples)} training clips")
    print(table.round(4).to_string(index=False))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(ckpt), "sft_rationale": sft.get("rationale"),
                                               "rows": table.to_dict(orient="records")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
