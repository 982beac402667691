"""Issue 19 item 5: how much a checkpoint's generation_config changes answers, before -> after.

Loads a checkpoint (e.g. a tiny SFT run), then gives the same weights the sampling fields of a
``generation_config.json`` (default: Qwen2.5-VL-7B-Instruct's, ``../shared/data/qwen2_5_vl``: the
``repetition_penalty: 1.05`` every fine-tuned 7B checkpoint inherits; token ids are not copied) and
measures, side by side in one run on the same clips:

* greedy prediction: the share of parsed scores (clip x dimension; a parse failure counts as a
  value) that differ from those of the same weights with a clean generation config, for the call
  ``predict.generate_ids`` made before this change (copied below) and for the current one
  (``vqalib.model.generation.generate`` with greedy settings, what ``generate_ids`` calls);
* GRPO rollouts (same seed): the share of completions that differ, old call vs current one.

Run::

    .venv/bin/python bench/bench_generation_leak.py --checkpoint runs/demo/checkpoints/sft --clips 40
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
QWEN_FILE = ROOT.parent / "shared" / "data" / "qwen2_5_vl" / "generation_config.json"
OLD_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")


def old_greedy_ids(model, processor, inputs, max_new_tokens):
    """``vqalib.eval.predict.generate_ids`` before this change (commit 56d816e), verbatim."""
    tok = processor.tokenizer
    suppress = [tok.convert_tokens_to_ids(t) for t in OLD_VISION_TOKENS]
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, suppress_tokens=suppress,
                             eos_token_id=eos, pad_token_id=tok.pad_token_id)
    return out[:, inputs["input_ids"].shape[1]:]


def old_rollout_ids(model, processor, inputs, max_new_tokens, temperature=1.0, top_p=1.0):
    """``vqalib.train.grpo.sample_completions``'s generate call before this change, verbatim."""
    from vqalib.model.generation import suppressed_token_ids

    tok = processor.tokenizer
    gen_cfg = model.generation_config
    eos = gen_cfg.eos_token_id or tok.eos_token_id
    eos_ids = list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]
    pad = tok.pad_token_id if gen_cfg.pad_token_id is None else gen_cfg.pad_token_id
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=True, temperature=temperature, top_p=top_p, top_k=None,
                             max_new_tokens=max_new_tokens, suppress_tokens=suppressed_token_ids(processor, model),
                             eos_token_id=eos_ids, pad_token_id=pad)
    return out[:, inputs["input_ids"].shape[1]:]


def parsed(processor, ids):
    from vqalib.schema.levels import DIMENSION_KEYS
    from vqalib.schema.prompts import parse_answer

    texts = processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [[parse_answer(t).scores[k] for k in DIMENSION_KEYS] for t in texts]


def share_changed(a, b):
    pairs = [(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
    return sum(x != y for x, y in pairs) / len(pairs), len(pairs)


def rows_differ(a: torch.Tensor, b: torch.Tensor, pad: int) -> float:
    n = max(a.shape[1], b.shape[1])
    a = torch.nn.functional.pad(a, (0, n - a.shape[1]), value=pad)
    b = torch.nn.functional.pad(b, (0, n - b.shape[1]), value=pad)
    return float((a != b).any(1).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="model folder (e.g. a tiny SFT checkpoint)")
    ap.add_argument("--generation-config", default=str(QWEN_FILE), help="generation_config.json to give the weights")
    ap.add_argument("--clips", type=int, default=40, help="test clips of the embedded sample dataset")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--json", default="", help="also write the numbers here")
    args = ap.parse_args()

    from vqalib.model import generation
    from vqalib.data.dataset import load_dataset
    from vqalib.inference.scorer import default_sampling, load_scoring_model
    from vqalib.model.inputs import build_batch
    from vqalib.eval.predict import items_from
    from vqalib.data.synth import dataset_root
    from vqalib.video.frames import sample_video

    model, proc, info = load_scoring_model(args.checkpoint, device="cpu")
    sampling = default_sampling(info)
    fields = {k: v for k, v in json.loads(Path(args.generation_config).read_text()).items()
              if not k.endswith("token_id") and k != "transformers_version"}
    clean_cfg = model.generation_config
    penal_cfg = clean_cfg.__class__.from_dict({**clean_cfg.to_dict(), **fields})
    items = items_from(load_dataset(dataset_root("", "default", 0)), "test").head(args.clips)
    batches = []
    for s in range(0, len(items), args.batch):
        vids = [sample_video(p, sampling) for p in items["path"].iloc[s: s + args.batch]]
        batches.append(build_batch(proc, vids).model_inputs(False))

    def run(fn, cfg, seed=None):
        model.generation_config = cfg
        out = []
        for b in batches:
            if seed is not None:
                torch.manual_seed(seed)
            out.append(fn(b))
        model.generation_config = clean_cfg
        return out

    T = args.max_new_tokens
    res = {"checkpoint": args.checkpoint, "generation_config": args.generation_config, "fields": fields,
           "clips": len(items)}
    greedy = {"old": lambda b: old_greedy_ids(model, proc, b, T),
              "new": lambda b: generation.generate(model, proc, b, generation.GenerationSettings.greedy(T))}
    for name, fn in greedy.items():
        a = [r for ids in run(fn, clean_cfg) for r in parsed(proc, ids)]
        b = [r for ids in run(fn, penal_cfg) for r in parsed(proc, ids)]
        res[f"greedy_{name}_share_changed"], res["n_scores"] = share_changed(a, b)
        res[f"greedy_{name}_share_parsed_clean"] = sum(x is not None for r in a for x in r) / max(1, res["n_scores"])
    pad = generation.pad_token_id(proc)
    settings = generation.GenerationSettings.sampling(T)
    roll = {"old": lambda b: old_rollout_ids(model, proc, b, T),
            "new": lambda b: generation.generate(model, proc, b, settings)}
    outs = {(n, c): run(fn, cfg, seed=0) for n, fn in roll.items() for c, cfg in (("clean", clean_cfg), ("penal", penal_cfg))}
    for n in roll:
        res[f"rollout_{n}_share_changed"] = sum(rows_differ(x, y, pad) for x, y in zip(outs[(n, "clean")], outs[(n, "penal")])) / len(batches)
    print(f"checkpoint {args.checkpoint}; generation config fields given to it: {fields}; {len(items)} clips, "
          f"{res['n_scores']} scores; share parsed (clean): {res['greedy_new_share_parsed_clean']:.1%}")
    print(f"greedy: parsed scores changed by the file: before {res['greedy_old_share_changed']:.1%} -> "
          f"after {res['greedy_new_share_changed']:.1%}")
    print(f"GRPO rollouts (seed 0): completions changed by the file: before {res['rollout_old_share_changed']:.1%} -> "
          f"after {res['rollout_new_share_changed']:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
