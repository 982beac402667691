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
# is first pre-trained on *unrated* generated clips (`MODEL="tiny-pretrained"`, next section), the
# tiny stand-in for the pre-trained vision tower a real Qwen2.5-VL arrives with. The same cell
# trains Qwen2.5-VL-7B when `MODEL`, `DATA_DIR`, `DEVICE` and the precision are changed (or
# `CONFIG` points at `env/train_configs/sft_7b_lora.yaml`); nothing else changes. Code:
# `vqalib.train.sft` (tests: `tests/test_train_losses.py`, `tests/test_train_runs.py`).

# %% tags=["parameters"]
RUN_DIR: str = "runs/demo"  # run folder; the checkpoint goes to RUN_DIR/checkpoints/sft
DATA_DIR: str = ""  # dataset folder; empty means the embedded sample dataset
SAMPLE_SIZE: str = "default"  # sample dataset size when DATA_DIR is empty: smoke | default | large
SEED: int = 0  # training seed (data order, augmentation, initialisation of LoRA)
CONFIG: str = ""  # optional YAML training config (env/train_configs/*.yaml); the values below override it
MODEL: str = "tiny-pretrained"  # tiny-pretrained (vision tower pre-trained, built once) | tiny (all random) | a hub id (Qwen/Qwen2.5-VL-7B-Instruct) | a local folder
FINETUNE: str = "full"  # full | lora | qlora (qlora needs a CUDA GPU)
FREEZE_VISION: bool = False  # keep the vision tower frozen
STEPS: int = 800  # optimisation steps
BATCH_SIZE: int = 16  # clips per device step
GRAD_ACCUM: int = 1  # gradient accumulation steps; global batch is BATCH_SIZE x GRAD_ACCUM x devices
LR: float = 2e-3  # peak learning rate (cosine decay after warm-up); paper, full 7B: 1e-6
WARMUP_STEPS: int = 20  # linear warm-up steps
WEIGHT_DECAY: float = 0.1  # AdamW weight decay; paper: 0.01 for the 7B model
RATIONALE: str = "none"  # rationale in the target answer: none (scores only) | short (defects seen) | full
INSTRUCTION: str = "Rate the video quality."  # user instruction; empty means the full vqalib.schema.prompts.INSTRUCTION
AUGMENT: bool = True  # random flips / time reversal of the cached frames
TIME_JITTER: int = 4  # with AUGMENT: each training draw shifts the sampled times by a random phase (1: off; decodes 4x the frames once)
DEVICE: str = "cpu"  # cpu | cuda | auto
BF16: bool = False  # bfloat16 training (GPU)
NUM_WORKERS: int = 1  # data-loader worker processes (prepare the next batch while the model trains)
EVAL_SPLIT: str = "test"  # held-out split for the predictions file
EVAL_LIMIT: int = 0  # evaluate on at most this many clips; 0 means all
N_BOOT: int = 300  # bootstrap resamples for the confidence intervals

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from vqalib.eval.predictions_file import read_predictions
from vqalib.core.runs import Run
from vqalib.report import training as report
from vqalib.train.common import load_config
from vqalib.train.sft import train_sft

run = Run(RUN_DIR, "04_sft")
cfg = load_config("sft", CONFIG or None, {
    "model": MODEL, "data_dir": DATA_DIR, "sample_size": SAMPLE_SIZE, "seed": SEED, "finetune": FINETUNE,
    "freeze_vision": FREEZE_VISION, "max_steps": STEPS, "batch_size": BATCH_SIZE, "grad_accum": GRAD_ACCUM,
    "lr": LR, "warmup_steps": WARMUP_STEPS, "weight_decay": WEIGHT_DECAY, "rationale": RATIONALE, "instruction": INSTRUCTION, "augment": AUGMENT, "time_jitter": TIME_JITTER, "device": DEVICE,
    "bf16": BF16, "num_workers": NUM_WORKERS, "output_dir": f"{RUN_DIR}/checkpoints/sft",
    "logging_steps": max(1, min(20, STEPS // 10)),
})
pd.Series({k: v for k, v in vars(cfg).items()}, name="value").to_frame()

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
import json
from pathlib import Path

from vqalib.model.loading import resolve_model_path
from vqalib.model.tiny import TINY_PRETRAINED

if MODEL == TINY_PRETRAINED:
    t0 = time.time()
    pretrain_record = json.loads((Path(resolve_model_path(MODEL)) / "vqalib_pretrain.json").read_text())
    run.log_metrics({"pretrain/seconds": time.time() - t0, "pretrain/steps": pretrain_record["config"]["steps"],
                     "pretrain/n_clips": pretrain_record["config"]["n_clips"],
                     **{f"pretrain/heldout_r2/{k}": v for k, v in pretrain_record["heldout_r2"].items()}})
    print(f"{pretrain_record['config']['steps']} steps on {pretrain_record['config']['n_clips']} unrated clips "
          f"(built in {pretrain_record['render_seconds'] + pretrain_record['train_seconds']:.0f} s, or read from the cache); "
          f"loss {pretrain_record['loss_first']:.2f} -> {pretrain_record['loss_last']:.2f} (standardised targets)")
    display(pd.Series(pretrain_record["heldout_r2"], name="held-out R²").to_frame().T)
else:
    print(f"MODEL={MODEL!r}: no pre-training stage (it exists for the tiny preset only)")

# %% [markdown]
# ## Train
#
# The first epoch decodes every clip once (2 fps, at most 8 frames, 112 × 112); the frames are
# cached in memory and on disk, so later epochs and notebooks 05–06 skip decoding.

# %%
t0 = time.time()
result = train_sft(cfg)
train_s = time.time() - t0
losses = report.log_frame(result.log_history, ["loss", "grad_norm", "learning_rate"])
fig = report.plot_curves(losses, ["loss", "grad_norm", "learning_rate"], "SFT: answer-token cross-entropy",
                         ylabel={"loss": "cross-entropy (nats per answer token)", "grad_norm": "gradient L2 norm",
                                 "learning_rate": "learning rate"})
run.save_fig(fig, "sft_loss")
plt.show()
run.log_metrics({"sft/train_s": train_s, "sft/steps": int(losses["step"].max()),
                 "sft/first_loss": float(losses["loss"].iloc[0]), "sft/final_loss": float(losses["loss"].iloc[-1])})
print(f"trained {int(losses['step'].max())} steps in {train_s:.0f} s; loss {losses['loss'].iloc[0]:.3f} -> {losses['loss'].iloc[-1]:.3f}")

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
if not base_path.is_file():  # the untrained model (FINETUNE does not matter: nothing is trained)
    report.write_stage_predictions(RUN_DIR, "base", MODEL, cfg, split=EVAL_SPLIT, limit=EVAL_LIMIT)
preds = {"base": read_predictions(base_path)[0], "sft": sft_rows}
table = report.compare_stages(preds, "parsed_score", n_boot=N_BOOT, seed=SEED)
run.save_table(table, "sft_vs_base", index=False)
wide = table.pivot_table(index="dimension", columns=["metric", "model"], values="value")
display(wide.round(3))

# %%
TARGET_SRCC = 0.6  # issue 12's bar for "learned": held-out SRCC of the parsed answers
srcc = table[(table["model"] == "sft") & (table["metric"] == "srcc")].set_index("dimension")["value"]
n_learned = int((srcc >= TARGET_SRCC).sum())
run.log_metrics({f"sft/test_srcc/{d}": float(v) for d, v in srcc.items()})
run.log_metrics({"sft/n_dims_srcc_ge_0.6": n_learned,
                 "sft/parse_failures": int((sft_rows["parse_status"] != "ok").sum()),
                 "sft/n_test_clips": int(sft_rows["video_id"].nunique())})
fig, ax = plt.subplots(figsize=(7, 3))
sub = table[(table["metric"] == "srcc")]
for i, (name, g) in enumerate(sub.groupby("model", sort=False)):
    x = range(len(g))
    ax.errorbar([j + 0.15 * i for j in x], g["value"], yerr=[g["value"] - g["ci_low"], g["ci_high"] - g["value"]],
                fmt="o", capsize=3, label=name)
ax.set_xticks(range(len(g)), g["dimension"], rotation=20)
ax.axhline(TARGET_SRCC, color="gray", ls=":")
ax.set_ylabel("held-out SRCC (95 % CI)")
ax.legend()
run.save_fig(fig, "sft_srcc")
plt.show()
below = {d: round(float(v), 2) for d, v in srcc.items() if not v >= TARGET_SRCC}
print(f"held-out SRCC >= {TARGET_SRCC} on {n_learned} of 5 dimensions"
      + (f"; below it: {below}" if below else ""))

# %% [markdown]
# ## What this shows, and what it cannot
#
# The numbers above are measured on held-out clips the model never saw, each with a bootstrap
# interval; with the 133 test clips of the default sample dataset an SRCC interval is roughly ±0.1
# wide, so small differences between dimensions are noise. The embedded default trains on scores
# only (`RATIONALE="none"`) with a one-line instruction: shorter sequences mean about twice the
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
