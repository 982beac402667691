# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Stage II baseline: GRPO
#
# The paper's reinforcement-learning baseline. Starting from the SFT checkpoint (notebook 04), for
# each clip the policy samples `G` complete answers **with the video**; each answer is parsed and
# rewarded per dimension with `R_acc = 1[round(pred) = round(gt)]` (round = to the nearest level, so
# the exact level; `acc_rounding: integer` in the config is the literal integer reading, lopsided on
# the 0.5 grid) + `R_dist = 5 − |pred − gt|` plus a format reward (1 only for the strict answer
# format, `vqalib.schema.prompts.check_format`); rewards are normalised within the group per dimension, as
# the paper groups "per video and dimension", and averaged over the five dimensions (advantage), and
# the policy follows the clipped ratio objective with a KL penalty (coefficient 0.1)
# to the SFT model. A dimension that does not parse earns 0 and is **counted** (`n_unparsable`),
# never given a random score. Vision tokens (`<|video_pad|>` …) are never sampled.
# Code: `vqalib.train.grpo`, `vqalib.method.grpo_math` (tests: `tests/test_train_grpo_math.py`).

# %% tags=["parameters"]
RUN_DIR: str = "runs/demo"  # run folder; reads RUN_DIR/checkpoints/sft, writes RUN_DIR/checkpoints/grpo
DATA_DIR: str = ""  # dataset folder; empty means the embedded sample dataset
SAMPLE_SIZE: str = "default"  # sample dataset size when DATA_DIR is empty: smoke | default | large
SEED: int = 0  # first training seed (data order and sampling); seeds SEED ... SEED + SEEDS - 1 are trained
SEEDS: int = 2  # number of training seeds, each from the same SFT checkpoint (the first into checkpoints/grpo)
BUDGET_S: float = 10.0  # training seconds per seed, evaluation excluded; the demo default vqalib.train.budget.DEMO_BUDGET_S, as in notebook 06; 0 means no budget, STEPS steps
EVAL_EVERY_S: float = 5.0  # held-out curve: evaluate every this many training seconds (and at step 0 and the end); 0 means no curve
CONFIG: str = ""  # optional YAML training config (env/train_configs/*.yaml); the values below override it
FINETUNE: str = "full"  # full (frozen copy as reference) | lora (adapter disabled as reference) | qlora
STEPS: int = 5000  # cap on optimisation steps per seed (with BUDGET_S > 0 the budget stops training first)
BATCH_SIZE: int = 2  # prompts (clips) per step, each with NUM_GENERATIONS sampled answers
NUM_GENERATIONS: int = 8  # G, completions per prompt (paper: 8)
KL_COEF: float = 0.1  # KL penalty to the SFT reference (paper: 0.1)
TEMPERATURE: float = 1.0  # sampling temperature of the rollouts
MAX_NEW_TOKENS: int = 64  # longest sampled answer
LR: float = 2e-4  # peak learning rate
RATIONALE: str = "none"  # answer format the SFT stage used: none | short | full
INSTRUCTION: str = "Rate the video quality."  # instruction the SFT stage used; empty means vqalib.schema.prompts.INSTRUCTION
DEVICE: str = "cpu"  # cpu | cuda | auto
BF16: bool = False  # bfloat16 training (GPU)
EVAL_SPLIT: str = "test"  # held-out split for the predictions file
EVAL_LIMIT: int = 0  # final held-out predictions on at most this many clips; 0 means all
CURVE_LIMIT: int = 48  # held-out clips per point of the training curve (the first ones of EVAL_SPLIT); 0 means all
N_BOOT: int = 300  # bootstrap resamples for the confidence intervals

# %%
import dataclasses
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from vqalib.eval.predictions_file import read_predictions
from vqalib.core.runs import Run
from vqalib.report import training as report
from vqalib.train.common import load_config
from vqalib.report.compare import seed_run_name, train_seeds
from vqalib.train.grpo import train_grpo

run = Run(RUN_DIR, "05_grpo")
cfg = load_config("grpo", CONFIG or None, {
    "init_from": f"{RUN_DIR}/checkpoints/sft", "output_dir": f"{RUN_DIR}/checkpoints/grpo",
    "data_dir": DATA_DIR, "sample_size": SAMPLE_SIZE, "seed": SEED, "finetune": FINETUNE, "max_steps": STEPS,
    "batch_size": BATCH_SIZE, "num_generations": NUM_GENERATIONS, "kl_coef": KL_COEF, "temperature": TEMPERATURE,
    "max_new_tokens": MAX_NEW_TOKENS, "lr": LR, "rationale": RATIONALE, "instruction": INSTRUCTION, "device": DEVICE, "bf16": BF16,
    "augment": False, "warmup_steps": min(2, STEPS - 1), "logging_steps": max(1, min(5, STEPS // 6)),
    "max_train_seconds": BUDGET_S, "eval_every_seconds": EVAL_EVERY_S, "eval_limit": CURVE_LIMIT, "eval_split": EVAL_SPLIT,
    # a budget stops training at a step not known in advance: a schedule that decays over max_steps would be cut
    **({"lr_scheduler": "constant_with_warmup"} if BUDGET_S > 0 else {}),
})
# one config per seed, the same but for the seed and the output folder (SEED -> checkpoints/grpo)
seed_cfgs = {s: dataclasses.replace(cfg, seed=s, output_dir=f"{RUN_DIR}/checkpoints/{seed_run_name('grpo', s, SEED)}")
             for s in range(SEED, SEED + SEEDS)}
pd.Series(vars(cfg), name="value").to_frame()

# %% [markdown]
# ## Train
#
# `SEEDS` runs, each from the same SFT checkpoint for `BUDGET_S` seconds of **training clock**: the
# clock starts at the first step (model loading and the reference copy are `setup_s`) and stops
# while the held-out curve is evaluated (`vqalib.train.budget`), so GRPO and ASO (notebook 06) get
# the same compute. The curve (held-out SRCC, PLCC, MAE per dimension at step 0, every
# `EVAL_EVERY_S` training seconds and at the end) goes to `tables/curve.csv`; notebook 07 compares
# the two methods on it.

# %%
t0 = time.time()
results, budget_table, curve = train_seeds(train_grpo, seed_cfgs)
train_s = time.time() - t0
budgets = run.save_table(budget_table, "budget", index=False).to_dict("records")
if len(curve):
    run.save_table(curve, "curve", index=False)
display(budget_table)
result = results[SEED]
keys = ["loss", "reward", "reward_acc", "reward_dist", "reward_format", "reward_std", "kl", "n_unparsable", "n_completions"]
curves = report.log_frame(result.log_history, keys)
all_curves = pd.concat([report.log_frame(r.log_history, keys).assign(seed=str(s)) for s, r in results.items()])
fig = report.plot_curves(all_curves, ["reward", "reward_acc", "reward_dist", "reward_format", "kl", "loss"],
                         "GRPO: mean reward of the sampled answers, KL to the SFT model", hue="seed", errorbar=None,
                         col_wrap=3,
                         ylabel={"reward": "mean R_acc + R_dist + format", "reward_acc": "mean R_acc",
                                 "reward_dist": "mean R_dist", "reward_format": "mean format reward", "kl": "KL to π_ref (k3, nats per token)",
                                 "loss": "−clipped objective + β·KL (≈ β·KL)"})
run.save_fig(fig, "grpo_curves")
plt.show()
n_bad, n_all = int(curves["n_unparsable"].sum()), int(curves["n_completions"].sum())
run.log_metrics({"grpo/train_s": train_s, "grpo/steps": int(curves["step"].max()),
                 "grpo/first_reward": float(curves["reward"].iloc[0]), "grpo/final_reward": float(curves["reward"].iloc[-1]),
                 "grpo/unparsable_completions": n_bad, "grpo/completions": n_all,
                 "grpo/seeds": SEEDS, "grpo/budget_s": BUDGET_S, "grpo/curve_rows": len(curve)})
run.log_metrics({f"grpo/{k}/seed{b['seed']}": b[k] for b in budgets for k in ("steps", "train_seconds", "setup_s",
                                                                               "stopped_by")})
print(f"seed {SEED}: {int(curves['step'].max())} steps; {n_bad} of {n_all} sampled answers had a missing or "
      f"unparsable score (no accuracy or distance reward for that dimension, no format reward for the answer); "
      f"all {SEEDS} seed(s) took {train_s:.0f} s with setup and evaluations")
third = max(1, len(curves) // 3)
print(f"mean reward, first third of the logged points {curves['reward'].iloc[:third].mean():.2f}, last third "
      f"{curves['reward'].iloc[-third:].mean():.2f} (seed {SEED}): each point is one batch of clips, so it moves with "
      "the clips drawn as much as with the policy; the KL to π_ref says how far the policy moved, and the held-out "
      "curve (notebook 07) says whether that helped")
curves

# %% [markdown]
# ## Held-out predictions and what changed against SFT
#
# `RUN_DIR/predictions/grpo.jsonl` (seed `SEED`) and `grpo_seed<k>.jsonl` (the other seeds) for
# notebook 07. The change in held-out SRCC per dimension of the first seed is paired (same test
# clips, same bootstrap resamples for both models); notebook 07 compares all seeds with ASO.

# %%
for s, c in seed_cfgs.items():  # every seed's final held-out answers (grpo.jsonl, grpo_seed<k>.jsonl)
    path, rows = report.write_stage_predictions(RUN_DIR, seed_run_name("grpo", s, SEED), c.output_dir, c,
                                                split=EVAL_SPLIT, limit=EVAL_LIMIT)
    if s == SEED:
        grpo_path, grpo_rows = path, rows
sft_rows = read_predictions(run.path("predictions", "sft.jsonl"))[0]
change = run.save_table(report.paired_change(sft_rows, grpo_rows, n_boot=N_BOOT, seed=SEED), "grpo_vs_sft", index=False)
run.log_metrics({f"grpo/test_srcc/{r.dimension}": r.srcc_after for r in change.itertuples()})
run.log_metrics({f"grpo/delta_srcc_vs_sft/{r.dimension}": r.delta for r in change.itertuples()})
display(change.round(3))

# %% [markdown]
# ## Reading the result honestly
#
# With `G` answers per clip and the few dozen steps an idle 2-core machine fits in the demo budget
# (the budget table above has this run's count; a busy machine can fit only one or two, which leave
# the SFT model almost unchanged because the first warm-up step has learning rate 0), GRPO sees at
# most a few hundred sampled answers:
# its reward curve is noisy and the held-out change against SFT is usually inside the bootstrap
# interval. When all `G` answers of a group get the same reward the advantage is 0 and the group
# teaches nothing (see `reward_std`); this is the variance problem that ASO's closed form avoids
# (notebook 03's bandit comparison). Only an interval that excludes 0 says GRPO changed a dimension.
