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
# # 06 · Stage III: Analytic Score Optimization (ASO)
#
# Starting from the SFT checkpoint (notebook 04), with the SFT model as reference policy:
#
# 1. **π_ref**: the SFT model's distribution over the 9 levels at each dimension's score position,
#    computed **once** over the training set (teacher-forced reference answer) and cached
#    (`RUN_DIR/checkpoints/aso/pi_ref.pt`), so no reference model is held for it. The answer is
#    teacher-forced with a rationale that never names the score (`rationale`: none, short or
#    scrubbed; the next section measures why);
# 2. **π\***: the closed form of the KL-regularised bandit (notebook 03),
#    `π*(s|x) = π_ref(s|x) exp(R(s, s*)/λ) / Z(x)` with `R = −β|s − s*|`;
# 3. **loss**: soft-target cross-entropy `−Σ_s π*(s) log π_θ(s)` on the score positions (its gradient
#    on the level scores is `π_θ − π*`, tested), with π_θ the model's own level probabilities, not
#    renormalised over the 9 levels, so mass off the levels costs `−log(1 − outside)`; plus a
#    rationale term (KL to the SFT model on the answer's other tokens, the paper's whole-sequence KL;
#    or cross-entropy on the reference answer; or none).
#
# `on_policy: true` samples the rationale from the current policy and scores there instead (then
# π_ref is evaluated on the sampled text, with the reference kept in memory). The settings come from
# `CONFIG` (`env/train_configs/aso_tiny.yaml` for the demo), `SET` overrides any of them. Code:
# `vqalib.train.aso_trainer`, `vqalib.method.aso` (tests: `tests/unit/test_train_losses.py`, `tests/unit/test_aso.py`).

# %% tags=["parameters"]
RUN_DIR: str = "runs/demo"  # run folder; reads RUN_DIR/checkpoints/sft, writes RUN_DIR/checkpoints/aso
DATA_DIR: str = ""  # dataset folder; empty means the embedded sample dataset
SAMPLE_SIZE: str = "default"  # sample dataset size when DATA_DIR is empty: smoke | default | large
SCHEMA: str = ""  # rating schema when DATA_DIR is empty (the sample is generated on it): paper | mos9 | qalign5 | int10 | a .json/.yaml file; empty means the paper's. A DATA_DIR dataset carries its own rating_schema.json (a different SCHEMA is refused)
SEED: int = 0  # first training seed; seeds SEED ... SEED + SEEDS - 1 are trained
SEEDS: int = 2  # number of training seeds, each from the same SFT checkpoint and one cached pi_ref (the first into checkpoints/aso)
BUDGET_S: float = 10.0  # training seconds per seed, evaluation and pi_ref excluded; the demo default vqalib.train.budget.DEMO_BUDGET_S, as in notebook 05; 0 means no budget, STEPS steps
EVAL_EVERY_S: float = 5.0  # held-out curve: evaluate every this many training seconds (and at step 0 and the end); 0 means no curve
CONFIG: str = "env/train_configs/aso_tiny.yaml"  # training config (YAML, from the project root): lam, beta, reward, rationale, lr ... of the demo; a real run: aso_7b.yaml
SET: str = ""  # config overrides, as `python -m vqalib train --set` takes them: space-separated key-value pairs joined by an equals sign (example below)
STEPS: int = 5000  # cap on optimisation steps per seed (with BUDGET_S > 0 the budget stops training first)
DEVICE: str = "cpu"  # cpu | cuda | auto
N_SHOW: int = 3  # clips whose distributions are drawn
EVAL_SPLIT: str = "test"  # held-out split for the predictions file
EVAL_LIMIT: int = 0  # final held-out predictions on at most this many clips; 0 means all
CURVE_LIMIT: int = 48  # held-out clips per point of the training curve (the first ones of EVAL_SPLIT); 0 means all
N_BOOT: int = 300  # bootstrap resamples for the confidence intervals
N_SHARP: int = 64  # training clips on which pi_ref's sharpness is measured per rationale mode
EPS: float = 0.05  # floor under pi_ref for the limitation section: pi_ref becomes (1 - 9 EPS) pi_ref + EPS (0 < EPS < 1/9)
EPS_STEPS: int = 20  # steps of the short ASO run with the floor (limitation section), from the same SFT checkpoint

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from vqalib.core.runs import Run
from vqalib.report import aso_diagnostics as diag, stage_files, training as report
from vqalib.report.compare import answer_views, train_seeds
from vqalib.report.stage_config import seed_configs, stage_config
from vqalib.train.aso_trainer import train_aso

# %% [markdown]
# The config: `CONFIG` (the demo's `aso_tiny.yaml`: λ = β = 1, `R = −β|s − s*|`, rationale term KL with
# weight 1, `rationale: none`, ...), the run folder, the time budget, then `SET`
# (e.g. `SET="lam=0.5 on_policy=true"`; `vqalib.report.stage_config`). One config per seed, the same but for the seed and the output folder.

# %%
run = Run(RUN_DIR, "06_aso")
cfg = stage_config("aso", CONFIG, RUN_DIR, SET, data_dir=DATA_DIR, sample_size=SAMPLE_SIZE, seed=SEED, device=DEVICE,
                   rating_schema=SCHEMA, max_steps=STEPS, max_train_seconds=BUDGET_S, eval_every_seconds=EVAL_EVERY_S,
                   eval_limit=CURVE_LIMIT, eval_split=EVAL_SPLIT)
seed_cfgs = seed_configs(cfg, RUN_DIR, range(SEED, SEED + SEEDS))  # SEED -> checkpoints/aso
pd.Series(vars(cfg), name="value").to_frame()

# %% [markdown]
# ## What π_ref is read after (before training)
#
# The answer puts the rationale before the score lines, and the dataset's rationales name the level
# ("Overall, the clarity quality is good."), as the paper's rationale prompts ask. Teacher-forced, that
# text tells the model the score, so π_ref would be almost one-hot on the label, π\* ≈ the label and
# ASO ≈ SFT on the score tokens. `vqalib.train.aso_trainer.pi_ref_sharpness` reads the SFT model's
# π_ref on `N_SHARP` training clips after each rationale mode: `full` (as written), `scrubbed` (every
# sentence naming a level removed), `short` (the ticked defects), `none`. Columns: mean max
# probability, mean entropy (nats; uniform = 2.197), mean π_ref(s\*) and π\*(s\*) at λ = β = 1, and how
# many clips' teacher-forced text names the score. The demo SFT model is trained without rationales
# (`rationale: none` in `sft_tiny.yaml`), so its `full` row shows text it never saw; on a model trained
# with full rationales (the 7B recipe) the `full` row is the one that collapses. docs/training.md
# (section "ASO: what π_ref is conditioned on") has the measurement for a model trained with full
# rationales.

# %%
sharp, sharp_examples = diag.sharpness_table(cfg, N_SHARP)
run.save_table(sharp, "pi_ref_sharpness", index=False)
run.log_metrics({f"aso/pi_ref_entropy/{r.rationale}": r.entropy for r in sharp.itertuples() if not r.skipped})
display(sharp.round(3))

# %% [markdown]
# ## Train
#
# `SEEDS` runs from the same SFT checkpoint, each for `BUDGET_S` seconds of **training clock**: the
# clock starts at the first step, so loading the model and computing π_ref (once, by the first seed:
# `pi_ref_path`; the other seeds read the same file, its key leaves the seed out) are `setup_s`, and
# it stops while the held-out curve is evaluated (`vqalib.train.budget`), as for GRPO in notebook 05.
# The curve goes to `tables/curve.csv`; notebook 07 compares the two methods on it.

# %%
t0 = time.time()
results, budget_table, curve = train_seeds(train_aso, seed_cfgs)
train_s = time.time() - t0
run.save_table(budget_table, "budget", index=False)
if len(curve):
    run.save_table(curve, "curve", index=False)
result = results[SEED]
display(budget_table)

# %%
curves, all_curves = report.seed_log_frames(results, "aso", first=SEED)
fig = report.plot_stage_curves("aso", all_curves)
run.save_fig(fig, "aso_curves")
plt.show()
run.log_metrics(report.budget_metrics("aso", budget_table))
run.log_metrics(report.aso_metrics(curves, train_s, SEEDS, BUDGET_S, len(curve)))
print(report.aso_ce_reading(curves, all_curves))
curves.tail()

# %% [markdown]
# ### π_ref health (issue 20)
#
# Before training, the trainer checks the cached π_ref (`vqalib.method.aso.pi_ref_health`, stored in `pi_ref.pt`
# beside it): how much of the SFT model's mass at the score positions is **off** the nine level strings
# (renormalising hides it; mostly off means π_ref is close to noise), its entropy, π_ref(s\*), and how far
# λ and β move it: KL(π\*‖π_ref), the share of items whose argmax flips and the mean change of the
# expected score. It warns (`pi_ref_health: warn`, the default) or refuses (`refuse`) when π_ref is mostly
# off the levels, when π\* ≈ π_ref (ASO a no-op) or when π\* ≈ the one-hot label (ASO = SFT on the scores).

# %%
health = diag.cached_health(cfg)
if health is not None:
    print(diag.health_text(health))
    run.log_metrics(diag.health_metrics(health))
else:
    print(diag.skip_reason(cfg, "check"))

# %% [markdown]
# ### Mass off the nine levels
#
# `outside_mass` above is the probability the model puts on anything that is not one of the nine
# level strings at a score position. The score term is computed on the model's own level
# probabilities (`penalise_outside: true`), which equals the 9-level cross-entropy plus
# `−log(1 − outside)`; renormalising over the nine levels first would make 0 %, 78 % and 99.98 %
# outside mass cost the same. The numbers for this run and for those three cases:

# %%
first_out, last_out = float(curves["outside_mass"].iloc[0]), float(curves["outside_mass"].iloc[-1])
run.log_metrics({"aso/outside_mass_first": first_out, "aso/outside_mass_last": last_out})
diag.outside_mass_table((0.0, 0.78, 0.9998, first_out, last_out)).round(4)

# %% [markdown]
# ## π_ref → π\* → π_θ for a few training clips
#
# Grey: the SFT model (π_ref); orange: the closed-form target π\* (π_ref tilted towards the human
# level, dashed line, by `exp(−β|s − s*|/λ)`); blue: the trained ASO model. Levels where π_ref is 0
# stay 0 in π\* (the paper's limitation; `vqalib.method.aso.zero_mass`).

# %%
if diag.skip_reason(cfg) is None:
    ids = sorted(report.load_pi_ref(cfg.pi_ref_path))[:N_SHOW]
    dists = report.aso_distributions(cfg.pi_ref_path, cfg.output_dir, cfg, ids, cfg.lam, cfg.beta)
    fig = report.plot_aso_distributions(dists)
    run.save_fig(fig, "aso_distributions")
    plt.show()
else:
    print(diag.skip_reason(cfg, "draw"))

# %% [markdown]
# ## Held-out predictions and what changed
#
# `RUN_DIR/predictions/aso.jsonl` (seed `SEED`) and `aso_seed<k>.jsonl` (the other seeds) for
# notebook 07; paired change in held-out SRCC of the first seed against SFT (and against GRPO's first
# seed when notebook 05 ran), same clips and bootstrap resamples for both models.

# %%
aso_rows = stage_files.write_seed_predictions(RUN_DIR, seed_cfgs, split=EVAL_SPLIT, limit=EVAL_LIMIT)[SEED]
others = stage_files.stage_predictions(RUN_DIR, ("sft", "grpo"))  # grpo only when notebook 05 ran
change = pd.concat([report.paired_change(rows, aso_rows, n_boot=N_BOOT, seed=SEED).assign(versus=name)
                    for name, rows in others.items()])
run.save_table(change, "aso_vs_sft_grpo", index=False)
run.log_metrics({f"aso/delta_srcc_vs_{r.versus}/{r.dimension}": r.delta for r in change.itertuples()})
run.log_metrics({f"aso/test_srcc/{r.dimension}": r.srcc_after for r in change[change["versus"] == "sft"].itertuples()})
display(change.round(3))

# %% [markdown]
# Both views per method (issue 20), labelled: the **generated** answer (parsed score: what a user reads; parse
# rate; the share of parsed scores equal to the level of the answer's own keyword) and the **teacher-forced**
# readout (the expected score over the nine levels). ASO's soft target is trained in a teacher-forced
# context, so only the generated view says whether the answers users get improved.

# %%
views = answer_views({name: [rows] for name, rows in {**others, "aso": aso_rows}.items()}, n_boot=N_BOOT, seed=SEED)
run.save_table(views.reset_index(), "aso_views", index=False)
views

# %% [markdown]
# ## Using every rater's score (`reward: multi_rater`)
#
# The label s\* is the mean of at least three raters snapped to the grid. `reward: multi_rater` (in `CONFIG`,
# or `SET="reward=multi_rater"`) uses each rater's score instead: `R(s) = −β · mean_r |s − s_r|`
# (`vqalib.method.aso.reward_multi_rater`, beyond the paper), so a clip the raters disagree on gets a wider
# π\*. Below, the training clip whose raters disagree most: π\* under both rewards with a uniform π_ref (GRPO
# has the same option, `reward: multi_rater`, which averages `R_dist` over the raters).

# %%
caption, multi_rater = diag.multi_rater_case(sharp_examples, cfg.lam, cfg.beta)
print(caption)
multi_rater.round(3)

# %% [markdown]
# ## The limitation: levels π_ref rules out
#
# The paper names it (Appendix E): ASO only re-weights the reference, `π* ∝ π_ref · exp(R/λ)`, so a
# level the SFT model gives probability 0 keeps probability 0 in π\* for every λ, however far the
# human label s\* is from where π_ref sits; a level it gives a tiny probability can grow by at most
# `exp(β·max|s − s*|/λ)` (≈ 55 at λ = β = 1). The model trained on π\* then has no reason to move
# mass there either. A floor ε under π_ref, `(1 − 9ε) π_ref + ε` (`vqalib.method.aso.as_log_probs`, config
# key `eps`, 0 = the paper), gives every level at least ε before the re-weighting.
#
# First a short run on that floored target: `EPS_STEPS` steps with ε = `EPS` from the same SFT checkpoint
# (`RUN_DIR/checkpoints/aso_eps`; a fixed number of steps, no time budget, no held-out curve: this run only
# shows the floor; it reads the seeds' cached π_ref).

# %%
if diag.skip_reason(cfg) is None:
    eps_cfg = diag.floor_config(cfg, EPS, EPS_STEPS, RUN_DIR)
    t0 = time.time()
    eps_result = train_aso(eps_cfg, progress=False)
    run.log_metrics({"aso/eps/train_s": time.time() - t0, "aso/eps/steps": EPS_STEPS, "aso/eps/eps": EPS})
else:
    print(diag.skip_reason(cfg, "search"))

# %% [markdown]
# Then, from the cached π_ref of this run (`report.zero_mass_case`): the training (clip, dimension)
# pair where π_ref puts the least mass on s\*, with π_ref, π\* (ε = 0, the target used above), the ASO
# model trained above, π\* with ε = `EPS` and the floored model; then the counts over every
# training pair. All numbers are read from the run, none are typed in.

# %%
if diag.skip_reason(cfg) is None:
    aso_steps = int(result.budget.get("steps", curves["step"].max()))  # what the budgeted seed-SEED run reached
    models = diag.floor_models(cfg, eps_cfg, aso_steps)
    zm = report.zero_mass_case(f"{cfg.output_dir}/pi_ref.pt", cfg, EPS, models, cfg.lam, cfg.beta)
    fig = report.plot_zero_mass_case(zm)
    run.save_fig(fig, "zero_mass_case")
    plt.show()
    run.log_metrics(diag.zero_mass_metrics(zm, models))
    run.save_table(zm.counts, "zero_mass_counts", index=False)
    display(zm.counts.set_index("threshold").T)
    print(zm.verdict())
    print(diag.floor_reading(zm, models, EPS_STEPS, aso_steps))

# %% [markdown]
# ## Reading the result honestly
#
# ASO starts from the same SFT model as GRPO and uses the human labels through π\*, a dense target
# over all nine levels, instead of a few sampled answers: per step it gets a full-distribution
# signal for every clip, which is why the paper finds it more sample-efficient. Whether this
# tiny run *improves* a dimension is read from the paired interval above; an interval containing 0
# means no measurable change on these 133 clips, in either direction. The numbers come from a
# 0.4 M-parameter model trained for `BUDGET_S` seconds per seed on generated clips: they demonstrate the method
# and the code path, not the paper's 7B results.
