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
# never given a random score. Vision tokens (`<|video_pad|>` …) are never sampled. The settings come
# from `CONFIG` (`env/train_configs/grpo_tiny.yaml` for the demo), `SET` overrides any of them.
# Code: `vqalib.train.grpo`, `vqalib.method.grpo_math` (tests: `tests/unit/test_train_grpo_math.py`).

# %% tags=["parameters"]
RUN_DIR: str = "runs/demo"  # run folder; reads RUN_DIR/checkpoints/sft, writes RUN_DIR/checkpoints/grpo
DATA_DIR: str = ""  # dataset folder; empty means the embedded sample dataset
SAMPLE_SIZE: str = "default"  # sample dataset size when DATA_DIR is empty: smoke | default | large
SCHEMA: str = ""  # rating schema when DATA_DIR is empty (the sample is generated on it): paper | mos9 | qalign5 | int10 | a .json/.yaml file; empty means the paper's. A DATA_DIR dataset carries its own rating_schema.json (a different SCHEMA is refused)
SEED: int = 0  # first training seed (data order and sampling); seeds SEED ... SEED + SEEDS - 1 are trained
SEEDS: int = 2  # number of training seeds, each from the same SFT checkpoint (the first into checkpoints/grpo)
BUDGET_S: float = 10.0  # training seconds per seed, evaluation excluded; the demo default vqalib.train.budget.DEMO_BUDGET_S, as in notebook 06; 0 means no budget, STEPS steps
EVAL_EVERY_S: float = 5.0  # held-out curve: evaluate every this many training seconds (and at step 0 and the end); 0 means no curve
CONFIG: str = "env/train_configs/grpo_tiny.yaml"  # training config (YAML, from the project root): G, KL coefficient, lr ... of the demo; a real run: grpo_7b_lora.yaml
SET: str = ""  # config overrides, as `python -m vqalib train --set` takes them: space-separated key-value pairs joined by an equals sign (example below)
STEPS: int = 5000  # cap on optimisation steps per seed (with BUDGET_S > 0 the budget stops training first)
DEVICE: str = "cpu"  # cpu | cuda | auto
EVAL_SPLIT: str = "test"  # held-out split for the predictions file
EVAL_LIMIT: int = 0  # final held-out predictions on at most this many clips; 0 means all
CURVE_LIMIT: int = 48  # held-out clips per point of the training curve (the first ones of EVAL_SPLIT); 0 means all
N_BOOT: int = 300  # bootstrap resamples for the confidence intervals

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from vqalib.core.runs import Run
from vqalib.eval.predictions_file import read_predictions
from vqalib.report import stage_files, training as report
from vqalib.report.compare import train_seeds
from vqalib.report.stage_config import seed_configs, stage_config
from vqalib.train.grpo import train_grpo

# %% [markdown]
# The config: `CONFIG` (the demo's `grpo_tiny.yaml`: G = 8 answers per clip, KL coefficient 0.1, the
# answer format the SFT stage used), the run folder, the time budget, then `SET`
# (e.g. `SET="num_generations=4 kl_coef=0.05"`; `vqalib.report.stage_config`). One config per seed, the same but for the seed and the output folder.

# %%
run = Run(RUN_DIR, "05_grpo")
cfg = stage_config("grpo", CONFIG, RUN_DIR, SET, data_dir=DATA_DIR, sample_size=SAMPLE_SIZE, seed=SEED, device=DEVICE,
                   rating_schema=SCHEMA, max_steps=STEPS, max_train_seconds=BUDGET_S, eval_every_seconds=EVAL_EVERY_S,
                   eval_limit=CURVE_LIMIT, eval_split=EVAL_SPLIT)
seed_cfgs = seed_configs(cfg, RUN_DIR, range(SEED, SEED + SEEDS))  # SEED -> checkpoints/grpo
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
run.save_table(budget_table, "budget", index=False)
if len(curve):
    run.save_table(curve, "curve", index=False)
display(budget_table)

# %%
curves, all_curves = report.seed_log_frames(results, "grpo", first=SEED)
fig = report.plot_stage_curves("grpo", all_curves)
run.save_fig(fig, "grpo_curves")
plt.show()
run.log_metrics(report.grpo_metrics(curves, train_s, SEEDS, BUDGET_S, len(curve)))
run.log_metrics(report.budget_metrics("grpo", budget_table))
print(report.grpo_reading(curves, SEED, SEEDS, train_s))
curves

# %% [markdown]
# ## Held-out predictions and what changed against SFT
#
# `RUN_DIR/predictions/grpo.jsonl` (seed `SEED`) and `grpo_seed<k>.jsonl` (the other seeds) for
# notebook 07. The change in held-out SRCC per dimension of the first seed is paired (same test
# clips, same bootstrap resamples for both models); notebook 07 compares all seeds with ASO.

# %%
grpo_rows = stage_files.write_seed_predictions(RUN_DIR, seed_cfgs, split=EVAL_SPLIT, limit=EVAL_LIMIT)[SEED]
sft_rows = read_predictions(run.path("predictions", "sft.jsonl"))[0]  # notebook 04's
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
