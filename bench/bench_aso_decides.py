"""ASO where the model decides (issue 20): the score read in ASO's training context vs the generated answer.

    .venv/bin/python bench/bench_aso_decides.py                       # SFT 400 + 2 x ASO 60 steps, 64 test clips
    .venv/bin/python bench/bench_aso_decides.py --sft-steps 800 --aso-steps 120 --seeds 3   # the tiny YAMLs' steps

Trains SFT on the tiny-pretrained preset with ``rationale: full`` (``env/train_configs/sft_tiny.yaml`` plus
overrides), then ASO from it twice per seed, side by side in one run:

* **before** - the paper's reading (``target_position: score``, ``rationale: scrubbed``, ``rationale_loss: kl``):
  the soft target at the score line after the scrubbed reference rationale;
* **after** - the chosen design (``target_position: keyword``, ``rationale: full``, ``rationale_loss: kl``):
  the soft target at each dimension's evaluation keyword, where the model commits to the level.

On the held-out test split each model is read two ways: **teacher-forced** (the expected score over the nine
levels at the score line after the scrubbed reference rationale, i.e. ASO-score's training context) and
**generated** (greedy answer, parsed: SRCC over the parsed scores, parse rate, and the share of parsed
scores equal to the level of the answer's own keyword for that dimension). SRCC is the mean over the five
dimensions; the intervals are 95 % percentile bootstraps over clips (and over seeds when ``--seeds > 1``).
Prints one table, SFT -> before -> after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _srcc_mean(y: np.ndarray, p: np.ndarray) -> float:
    """Mean over dimensions of Spearman's rho between labels y [N, 5] and predictions p [N, 5] (NaN = skipped)."""
    from scipy.stats import spearmanr

    vals = []
    for d in range(y.shape[1]):
        ok = np.isfinite(p[:, d])
        if ok.sum() >= 3 and np.std(p[ok, d]) > 0 and np.std(y[ok, d]) > 0:
            vals.append(spearmanr(y[ok, d], p[ok, d]).statistic)
        else:
            vals.append(0.0)  # a constant prediction ranks nothing
    return float(np.mean(vals))


def _keyword_levels(text: str) -> list[float | None]:
    """The level named by each dimension's own keyword in ``text`` (``vqalib.report.compare.own_keyword_levels``)."""
    from vqalib.report.compare import own_keyword_levels

    return own_keyword_levels(text)


def evaluate(checkpoint: str, cfg, examples, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Teacher-forced expected scores, generated scores (NaN where unparsed) and keyword levels, each [N, 5]."""
    import torch

    from vqalib.model.inputs import build_batch
    from vqalib.schema.levels import DIMENSION_KEYS, LEVELS
    from vqalib.model.loading import load_model_and_processor
    from vqalib.eval.predict import generate_answers
    from vqalib.schema.prompts import parse_answer
    from vqalib.train.aso_trainer import precompute_pi_ref
    from vqalib.train.common import sampling_config
    from vqalib.train.collator import FrameCache

    model, proc = load_model_and_processor(checkpoint)
    model.eval()
    cache = FrameCache(sampling_config(cfg))
    pi = precompute_pi_ref(model, proc, examples, cache, "scrubbed", batch_size=batch_size, progress=False,
                           instruction=cfg.instruction)
    tf = np.stack([(pi[ex.video_id].exp().double().numpy() * LEVELS).sum(-1) for ex in examples])
    gen = np.full((len(examples), 5), np.nan)
    kwl = np.full((len(examples), 5), np.nan)
    texts = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        batch = build_batch(proc, [cache.get(ex.path) for ex in chunk], None, instruction=cfg.instruction or None)
        with torch.no_grad():
            texts += generate_answers(model, proc, batch, max_new_tokens=256)
    for n, text in enumerate(texts):
        res = parse_answer(text)
        for d, k in enumerate(DIMENSION_KEYS):
            if res.status[k] == "ok":
                gen[n, d] = res.scores[k]
        for d, lv in enumerate(_keyword_levels(text)):
            if lv is not None:
                kwl[n, d] = lv
    return {"tf": tf, "gen": gen, "kw": kwl, "texts": texts}


def summarise(y: np.ndarray, runs: list[dict[str, np.ndarray]], n_boot: int, seed: int = 0) -> dict[str, str]:
    """Point values (mean over seeds) and 95 % bootstrap intervals over clips (and seeds) of the four columns."""
    rng = np.random.default_rng(seed)
    n = len(y)

    def stats(r, idx):
        g = r["gen"][idx]
        parsed = np.isfinite(g)
        both = parsed & np.isfinite(r["kw"][idx])
        return (_srcc_mean(y[idx], r["tf"][idx]), _srcc_mean(y[idx], g), float(parsed.mean()),
                float((g[both] == r["kw"][idx][both]).mean()) if both.any() else float("nan"))

    point = np.mean([stats(r, np.arange(n)) for r in runs], axis=0)
    boots = np.array([stats(runs[rng.integers(len(runs))], rng.integers(0, n, n)) for _ in range(n_boot)])
    lo, hi = np.nanpercentile(boots, 2.5, axis=0), np.nanpercentile(boots, 97.5, axis=0)
    names = ("srcc_teacher_forced", "srcc_generated", "parse_rate", "score_equals_keyword")
    return {k: f"{p:.3f} [{a:.3f}, {b:.3f}]" for k, p, a, b in zip(names, point, lo, hi)} | \
        {k + "_value": float(p) for k, p in zip(names, point)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft-steps", type=int, default=400, help="SFT steps (sft_tiny.yaml: 800)")
    ap.add_argument("--aso-steps", type=int, default=60, help="ASO steps per run (aso_tiny.yaml: 120)")
    ap.add_argument("--seeds", type=int, default=1, help="ASO seeds per design, from the one SFT checkpoint")
    ap.add_argument("--test-limit", type=int, default=64, help="test clips evaluated (0 = all)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--lam", type=float, default=1.0)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--out", default="runs/bench_aso_decides", help="folder for the checkpoints and results.json")
    args = ap.parse_args(argv)

    from vqalib.train.aso_trainer import train_aso
    from vqalib.train.collator import load_examples
    from vqalib.train.common import load_config
    from vqalib.train.sft import train_sft

    out = Path(args.out)
    t0 = time.time()
    sft_cfg = load_config("sft", ROOT / "env/train_configs/sft_tiny.yaml", {
        "rationale": "full", "max_steps": args.sft_steps, "output_dir": str(out / "sft")})
    if not (out / "sft" / "config.json").is_file():
        train_sft(sft_cfg, progress=False)
    print(f"SFT (rationale: full, {args.sft_steps} steps): {time.time() - t0:.0f} s", flush=True)
    designs = {"before: score after scrubbed (paper)": {"target_position": "score", "rationale": "scrubbed"},
               "after: keyword (chosen)": {"target_position": "keyword", "rationale": "full"}}
    ckpts: dict[str, list[str]] = {}
    for name, over in designs.items():
        for s in range(args.seeds):
            folder = out / f"aso_{over['target_position']}_seed{s}"
            cfg = load_config("aso", ROOT / "env/train_configs/aso_tiny.yaml", {
                **over, "init_from": str(out / "sft"), "output_dir": str(folder), "max_steps": args.aso_steps,
                "seed": s, "lam": args.lam, "beta": args.beta, "rationale_loss": "kl", "instruction": sft_cfg.instruction})
            if not (folder / "config.json").is_file():
                t1 = time.time()
                train_aso(cfg, progress=False)
                print(f"ASO {name} seed {s}: {time.time() - t1:.0f} s", flush=True)
            ckpts.setdefault(name, []).append(str(folder))
    test = load_examples("", "test", sft_cfg.sample_size, 0, args.test_limit)
    y = np.array([ex.targets() for ex in test])
    rows = {"SFT (rationale: full)": summarise(y, [evaluate(str(out / "sft"), sft_cfg, test)], args.n_boot)}
    for name, folders in ckpts.items():
        rows[f"ASO {name}"] = summarise(y, [evaluate(f, sft_cfg, test) for f in folders], args.n_boot)
    cols = ("srcc_teacher_forced", "srcc_generated", "parse_rate", "score_equals_keyword")
    print(f"\n{len(test)} test clips, lam={args.lam}, beta={args.beta}, {args.seeds} seed(s); 95 % bootstrap intervals")
    print(f"{'model':44s}" + "".join(f"{c:>26s}" for c in cols))
    for name, r in rows.items():
        print(f"{name:44s}" + "".join(f"{r[c]:>26s}" for c in cols))
    names = list(rows)
    for c in ("srcc_teacher_forced", "srcc_generated"):
        b, a = rows[names[1]][c + "_value"], rows[names[2]][c + "_value"]
        print(f"{c}: before {b:.3f} -> after {a:.3f} (SFT {rows[names[0]][c + '_value']:.3f})")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"total {time.time() - t0:.0f} s; results in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
