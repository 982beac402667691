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
# # 04 · Stage I: supervised fine-tuning (SFT)
#
# The model learns to write the answer format of `vqalib.schema.prompts` (a short rationale, then one
# `Dimension: level` line per dimension) from the human labels, with cross-entropy on the
# **answer tokens only** (prompt, instruction and video tokens carry label −100). This is the
# paper's Stage I; its checkpoint is the reference policy π_ref of GRPO (notebook 05) and ASO
# (notebook 06).
#
# On the embedded default a tiny Qwen2.5-VL (same class as the 7B model, about 0.4 M parameters) is
# trained on the generated sample dataset on CPU. Its language model starts random; its vision tower
# is first pre-trained on *unrated* generated clips (`model: tiny-pretrained` in `sft_tiny.yaml`, next
# section), the tiny stand-in for the pre-trained vision tower a real Qwen2.5-VL arrives with. The demo's
# settings come from `CONFIG` (`env/train_configs/sft_tiny.yaml`), `SET` overrides any of them. The same cell
# trains Qwen2.5-VL-7B when `CONFIG` points at `env/train_configs/sft_7b_lora.yaml` and `DATA_DIR`,
# `DEVICE` are changed (the `qwen7b_lora` parameter set); nothing else changes. Code:
# `vqalib.train.sft` (tests: `tests/unit/test_train_losses.py`, `tests/integration/test_train_runs.py`).

# %% tags=["parameters"]
RUN_DIR: str = "runs/demo"  # run folder; the checkpoint goes to RUN_DIR/checkpoints/sft
DATA_DIR: str = ""  # dataset folder; empty means the embedded sample dataset
SAMPLE_SIZE: str = "default"  # sample dataset size when DATA_DIR is empty: smoke | default | large
SCHEMA: str = ""  # rating schema when DATA_DIR is empty (the sample is generated on it): paper | mos9 | qalign5 | int10 | a .json/.yaml file; empty means the paper's. A DATA_DIR dataset carries its own rating_schema.json (a different SCHEMA is refused)
SEED: int = 0  # training seed (data order, augmentation, initialisation of LoRA)
CONFIG: str = "env/train_configs/sft_tiny.yaml"  # training config (YAML, from the project root): steps, batch, lr, rationale ... of the demo; a real run: sft_7b_lora.yaml
SET: str = ""  # config overrides, as `python -m vqalib train --set` takes them: space-separated key-value pairs joined by an equals sign (example below)
MODEL: str = ""  # model to fine-tune; empty means CONFIG's (sft_tiny.yaml: tiny-pretrained, vision tower pre-trained, built once) | tiny (all random) | a hub id (Qwen/Qwen2.5-VL-7B-Instruct) | a local folder
DEVICE: str = "cpu"  # cpu | cuda | auto
NUM_WORKERS: int = 1  # data-loader worker processes (prepare the next batch while the model trains)
EVAL_SPLIT: str = "test"  # held-out split for the predictions file
EVAL_LIMIT: int = 0  # evaluate on at most this many clips; 0 means all
N_BOOT: int = 300  # bootstrap resamples for the confidence intervals

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from vqalib.core.runs import Run
from vqalib.eval.predictions_file import read_predictions
from vqalib.report import training as report
from vqalib.report.stage_config import stage_config
from vqalib.train.sft import train_sft

# %% [markdown]
# The config: `CONFIG` (the demo's `sft_tiny.yaml`: 800 steps of 16 clips, lr 2e-3, scores only), the
# run folder, `MODEL`, then `SET` (e.g.
# `SET="max_steps=100 lr=1e-3"`; `vqalib.report.stage_config`).

# %%
run = Run(RUN_DIR, "04_sft")
cfg = stage_config("sft", CONFIG, RUN_DIR, SET, data_dir=DATA_DIR, sample_size=SAMPLE_SIZE, seed=SEED,
                   rating_schema=SCHEMA, model=MODEL or None, device=DEVICE, num_workers=NUM_WORKERS)
pd.Series(vars(cfg), name="value").to_frame()

# %% [markdown]
# ## The tiny model's vision tower: pre-trained on unrated clips
#
# A random vision tower of width 64 cannot learn camera speed from 667 rated clips while SFT also
# teaches the answer format: without this stage SFT reached held-out SRCC ~0.4 on motion amplitude,
# and a hand-feature probe showed why (docs/training.md, "Third round"). `vqalib.model.pretrain` therefore
# builds `tiny-pretrained` once (cached): the generator renders clips from its own seed stream with
# every setting drawn at random, *no raters, no scores, no text*, and the vision tower learns to
# regress the rendering's physical settings (camera speed, zoom, shake, flicker, stutter, blur, haze,
# exposure, colour cast, overlays) from its tokens, synthetic-distortion pre-training as in DB-CNN
# (Zhang et al., 2018). The table gives R² of each setting on clips the stage never trained on; it is
# ~0.4 for camera speed and blur: the stage is short (about 1.5 minutes) and far from converged.
# Read it plainly: the generator sets these values from the same latent levels the simulated raters
# score (camera speed is linear in the motion-amplitude level, blur and haze in the clarity level),
# so this is noise-free supervision of those quantities on 800 extra unrated clips, not generic
# pre-training, and much of what SFT gains from it on the sample data comes from that. It is not
# part of the paper's method; a real run sets `MODEL` to a hub id and skips it.

# %%
t0 = time.time()
pretrain = report.pretrain_record(cfg.model)  # builds tiny-pretrained once (cached); None for another model
if pretrain is not None:
    run.log_metrics(report.pretrain_metrics(pretrain, time.time() - t0))
    print(report.pretrain_sentence(pretrain))
    display(pd.Series(pretrain["heldout_r2"], name="held-out R²").to_frame().T)
else:
    print(f"model {cfg.model!r}: no pre-training stage (it exists for the tiny preset only)")

# %% [markdown]
# ## Train
#
# The first epoch decodes every clip once (2 fps, at most 8 frames, 112 × 112); the frames are
# cached in memory and on disk, so later epochs and notebooks 05–06 skip decoding.

# %%
t0 = time.time()
result = train_sft(cfg)
train_s = time.time() - t0
losses = report.log_frame(result.log_history, report.STAGE_CURVES["sft"].keys)
fig = report.plot_stage_curves("sft", losses)
run.save_fig(fig, "sft_loss")
plt.show()
run.log_metrics(report.sft_metrics(losses, train_s))
print(report.sft_sentence(losses, train_s))

# %% [markdown]
# ## Held-out predictions
#
# The SFT model answers every clip of the held-out split greedily; each dimension's
# 9-level distribution is read exactly at its score position (`vqalib.eval.predict`). The file
# `RUN_DIR/predictions/sft.jsonl` is what notebook 07 tabulates. The untrained model's answers
# (`base.jsonl`) are made here too if missing, to show what training changed.

# %%
sft_path, sft_rows = report.write_stage_predictions(RUN_DIR, "sft", cfg.output_dir, cfg, split=EVAL_SPLIT,
                                                    limit=EVAL_LIMIT)
base_path = run.path("predictions", "base.jsonl")
if not base_path.is_file():  # the untrained model (finetune does not matter: nothing is trained)
    report.write_stage_predictions(RUN_DIR, "base", cfg.model, cfg, split=EVAL_SPLIT, limit=EVAL_LIMIT)
preds = {"base": read_predictions(base_path)[0], "sft": sft_rows}
table = report.compare_stages(preds, "parsed_score", n_boot=N_BOOT, seed=SEED)
run.save_table(table, "sft_vs_base", index=False)
wide = table.pivot_table(index="dimension", columns=["metric", "model"], values="value")
display(wide.round(3))

# %%
TARGET_SRCC = 0.6  # issue 12's bar for "learned": held-out SRCC of the parsed answers
srcc = report.model_srcc(table, "sft")
run.log_metrics(report.sft_heldout_metrics(srcc, sft_rows, TARGET_SRCC))
fig = report.plot_srcc_by_model(table, TARGET_SRCC)
run.save_fig(fig, "sft_srcc")
plt.show()
print(report.bar_sentence(srcc, TARGET_SRCC))

# %% [markdown]
# ## What this shows, and what it cannot
#
# The numbers above are measured on held-out clips the model never saw, each with a bootstrap
# interval; with the 133 test clips of the default sample dataset an SRCC interval is roughly ±0.1
# wide, so small differences between dimensions are noise. The embedded default trains on scores
# only (`rationale: none`) with a one-line instruction: shorter sequences mean about twice the
# optimisation steps in the same minutes. What decides whether a dimension is learned in this budget
# is whether the vision tower can see it: with a random tower (`MODEL="tiny"`) overlays, borders,
# exposure and colour are learned, but camera speed (motion amplitude) stays at SRCC ~0.4, because
# it can only be read from differences between the 8 sampled frames, mixed with shake, flicker and
# static overlays; more SFT steps only memorise. With the pre-trained tower, and sample data version 9
# (whose low-resolution and screen-in-screen clips no longer look sharper than their clarity level),
# every dimension passed the 0.6 bar on both seeds measured; motion amplitude varies most between
# pre-training draws and SFT seeds (docs/training.md, "Fourth round", has the runs). The line above
# names every dimension below the bar in this run.
# A tiny model trained for minutes on a CPU learns the degradations the sample generator makes
# *salient*; it does not learn what a 7B model knows about real video, and its numbers say nothing about Qwen2.5-VL-7B on
# UltraVQA. What it does show is that the full pipeline (video sampling, the processor, answer-only
# loss, exact level distributions, predictions files) trains end to end with the code a GPU run uses.
