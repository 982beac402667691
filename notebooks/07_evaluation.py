# ---
# jupyter:
#   jupytext:
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
# # 07 · Evaluation: Table 1, confusion matrices, calibration, cross-benchmark
#
# Everything here is rebuilt from the predictions files in `RUN_DIR/predictions/*.jsonl`
# (one row per video and dimension, with the parsed answer, the 9-level distribution and a
# manifest of model, sampling settings and versions), so no model is run to make a table:
# `base` (zero-shot), `sft`, `grpo`, `aso`, whichever exist. On the embedded default, if
# `base.jsonl` does not exist yet, the untrained tiny model is run once to create it.
#
# Two readouts of the same model are reported: the **parsed** answer (what the model wrote, the
# paper's setting; parse failures are counted, never filled in) and the **expected score**
# `Σ s π(s)` from the level distribution. Metrics: Acc@0.5 (|ŷ − y| ≤ 0.5), MAE, SRCC, PLCC (paper),
# plus KRCC, RMSE and PLCC after the 4-parameter logistic fit in the long tables. Code:
# `vqalib.eval.tables`, `vqalib.eval.metrics`, `vqalib.data.mos` (tests: `tests/unit/test_evaluation.py`, `test_metrics.py`, `test_mos.py`).

# %% tags=["parameters"]
RUN_DIR: str = "runs/demo"  # run folder; predictions are read from RUN_DIR/predictions/*.jsonl
DATA_DIR: str = ""  # dataset for creating base predictions when missing; empty means the embedded sample dataset
SAMPLE_SIZE: str = "default"  # sample dataset size when DATA_DIR is empty: smoke | default | large
SEED: int = 0  # seed of the bootstrap resampling (and of the base-prediction run)
SCHEMA: str = ""  # rating schema of the sample dataset when DATA_DIR is empty (as notebooks 01-06): paper | mos9 | qalign5 | int10 | a .json/.yaml file; empty means the paper's
CREATE_BASE: bool = True  # run the untrained model to create predictions/base.jsonl when it is missing
BASE_MODEL: str = "tiny-pretrained"  # model for the base predictions (notebook 04 writes them with its MODEL): tiny-pretrained, tiny, a hub id or a local folder
DEVICE: str = "cpu"  # device for the base-prediction run
SPLIT: str = "test"  # dataset split the base predictions are made on
N_BOOT: int = 300  # bootstrap resamples for the confidence intervals (0 for none)
CONFUSION_READOUT: str = "argmax_score"  # readout of the confusion matrices: argmax_score | parsed_score | expected_score
BENCHMARK_DIR: str = ""  # folder with a public MOS benchmark's videos; empty skips the cross-benchmark section
BENCHMARK: str = "KoNViD"  # KoNViD | LIVE_VQC | YouTubeUGC | LSVQ
BENCHMARK_SPLIT: str = ""  # label split; empty means the benchmark's first (all, or test for LSVQ)
LABELS_DIR: str = ""  # folder with the FAST-VQA label files; empty means ../shared/data/labels beside the checkout
BENCHMARK_LABELS: str = ""  # the benchmark's label file as distributed (KoNViD_1k_mos.csv, data.mat, ...); empty: look beside the videos, then LABELS_DIR
BENCHMARK_MODEL: str = "tiny"  # model that scores the benchmark videos: "tiny", a hub id or a checkpoint folder
BENCHMARK_MODE: str = "fast"  # scorer readout for the benchmark: fast (one pass, no generation) | generate

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from vqalib.core.runs import Run, resolve_path
from vqalib.eval import tables as ev
from vqalib.report import stage_files

# %% [markdown]
# The stages' predictions files (`base`, `sft`, `grpo`, `aso`; the extra training seeds `<method>_seed<k>`
# are read by the comparison section, the benchmark runs `<model>@<benchmark>` by the cross-benchmark one)
# and what their manifests say.

# %%
run = Run(RUN_DIR, "07_evaluation")
pd.set_option("display.precision", 3)
pd.set_option("display.width", 200)

if CREATE_BASE:
    base_path, created = ev.ensure_base_predictions(RUN_DIR, DATA_DIR, SAMPLE_SIZE, SEED, BASE_MODEL, SPLIT, DEVICE,
                                                    schema=SCHEMA)
    print(("created " if created else "found ") + str(base_path))

preds, manifests = stage_files.table1_predictions(RUN_DIR)
stage_files.manifest_table(preds, manifests)

# %% [markdown]
# ## Parse failures
#
# Answers whose score line for a dimension is missing or unreadable. They are left out of the
# parsed-readout metrics (the `n` column of the long table says how many items each metric used)
# and are **not** replaced by any score; a second view below scores every item, failures counted
# as wrong.

# %%
fails = run.save_table(ev.parse_failure_table(preds), "parse_failures")
run.log_metrics({f"parse_failures/{m}": int(fails.loc[m, "total"]) for m in fails.index})
fails

# %% [markdown]
# ## Table 1 (paper layout)
#
# Rows = models, column groups = dimensions × (Acc@0.5, MAE, SRCC, PLCC). First the parsed
# answers, then the expected score from the 9-level distribution.

# %%
t1_parsed, long_parsed = ev.table1(preds, "parsed_score", n_boot=N_BOOT, seed=SEED)
run.save_table(t1_parsed, "table1_parsed")
run.save_table(long_parsed, "table1_parsed_long", index=False)
run.log_metrics(ev.flat_metrics(long_parsed, "table1_parsed"))
t1_parsed

# %% [markdown]
# The table above leaves failed answers out, so two models with different failure rates are scored
# on different clips. The same table **on all items**: a failure counts as wrong for Acc@0.5 and as
# the scale midpoint 3.0 for MAE, SRCC and PLCC (`vqalib.eval.tables.FAILURE_SCORE`), so every model
# is compared on the same clips and failing cannot raise a score.

# %%
t1_all, long_all = ev.table1(preds, "parsed_score", n_boot=N_BOOT, seed=SEED, failures="all_items")
run.save_table(t1_all, "table1_parsed_all_items")
run.save_table(long_all, "table1_parsed_all_items_long", index=False)
run.log_metrics(ev.flat_metrics(long_all, "table1_parsed_all_items"))
t1_all

# %%
t1_expected, long_expected = ev.table1(preds, "expected_score", n_boot=N_BOOT, seed=SEED)
run.save_table(t1_expected, "table1_expected")
run.save_table(long_expected, "table1_expected_long", index=False)
run.log_metrics(ev.flat_metrics(long_expected, "table1_expected"))
t1_expected

# %% [markdown]
# The long table holds the 95 % bootstrap intervals (items resampled), the number of items each
# metric used, the parse failures and, for every NaN, the reason (e.g. "prediction is constant").

# %%
show = long_expected[long_expected["metric"].isin(["srcc", "plcc", "plcc_fit", "acc"])]
show[["model", "dimension", "metric", "value", "ci_low", "ci_high", "n", "n_failed", "reason"]]

# %%
nan_reasons = pd.concat([long_parsed.assign(readout="parsed"), long_expected.assign(readout="expected")])
nan_reasons = nan_reasons[nan_reasons["reason"].notna()].groupby(["readout", "model", "reason"]).size().rename("metrics")
nan_reasons.to_frame() if len(nan_reasons) else print("every metric is defined")

# %% [markdown]
# ## Confusion matrices
#
# Human level (rows) against the predicted level (columns), one panel per dimension.

# %%
for name, df in preds.items():
    fig = ev.plot_confusions(df, name, CONFUSION_READOUT)
    run.save_fig(fig, f"confusion_{name}")
    plt.show()

# %% [markdown]
# ## Calibration
#
# Confidence = probability of the argmax level, accuracy = share of items whose argmax level is
# the human level. A calibrated model lies on the diagonal; ECE is the item-weighted gap.

# %%
cal = run.save_table(ev.calibration_table(preds), "calibration", index=False)
run.log_metrics({f"calibration/{r.model}/{r.dimension}/ece": r.ece for r in cal.itertuples()})
fig = ev.plot_reliability(preds)
run.save_fig(fig, "reliability")
plt.show()
cal

# %% [markdown]
# ## GRPO vs ASO at equal compute
#
# Notebooks 05 and 06 train GRPO and ASO from the same SFT checkpoint, each seed for the same budget
# of **training seconds** (the clock starts at the first step and stops while the held-out set is
# evaluated; model loading and ASO's π_ref precompute are counted apart as setup), with a held-out
# curve: SRCC, PLCC and MAE of the greedy answers per dimension at step 0 (the SFT model), every few
# training seconds and at the end (`vqalib.train.budget`). Below: the curves against training seconds
# (line: mean over seeds, band: their range) and against the optimisation step (one line per seed:
# the two methods take very different numbers of steps in the same time), then the final held-out
# values per method and the differences ASO − GRPO, ASO − SFT, GRPO − SFT with 95 % intervals from a
# **hierarchical bootstrap**: each resample draws the seeds of each method and the clips (the same clips
# for every method, so the differences are paired) with replacement
# (`vqalib.eval.tables.hierarchical_bootstrap`). A parse failure is scored as the scale midpoint 3.0,
# so every method is scored on the same clips. The sentences after the table are computed from it.
# Notebooks 05 and 06 each show the paired change of their *first* seed against SFT, resampling clips
# only; the intervals here also resample the seeds, so they are wider, and they are the ones to read
# for a method comparison. A verdict of "no detectable difference" needs every mean-SRCC and mean-MAE interval to
# contain 0: the same ranking (SRCC) with a different calibration (MAE) is still a difference.

# %%
from IPython.display import Markdown

from vqalib.report import compare

curve = compare.load_curves(RUN_DIR)
if curve is None:
    print(f"no held-out curves in {resolve_path(RUN_DIR)}/05_grpo/tables or 06_aso/tables (notebooks 05 and 06 did "
          f"not run here, or ran with EVAL_EVERY_S = 0): the curves are skipped")
else:
    for x, name in (("at_seconds", "method_curves_seconds"), ("step", "method_curves_steps")):
        fig = compare.plot_method_curves(curve, x=x)
        run.save_fig(fig, name)
        plt.show()
    run.save_table(curve, "method_curves", index=False)

# %%
seed_preds, seed_table = compare.seed_runs(RUN_DIR)
compared = {"grpo", "aso"} <= set(seed_preds)
if not compared:
    print(f"the comparison needs GRPO and ASO predictions (notebooks 05 and 06); found {sorted(seed_preds) or 'none'}: "
          f"section skipped")
else:
    boot = compare.compare_methods(seed_preds, n_boot=N_BOOT, seed=SEED)
    run.save_table(boot, "method_comparison", index=False)
    run.save_table(seed_table, "method_runs", index=False)
    run.log_metrics({f"compare/{r.kind}/{r.name}/{r.dimension}/{r.metric}/{k}": getattr(r, k)
                     for r in boot.itertuples() for k in ("estimate", "ci_low", "ci_high")})
    run.log_metrics({f"compare/{m}/seeds": len(v) for m, v in seed_preds.items()})
    display(seed_table)
    display(compare.summary_table(seed_table, boot))

# %%
if compared:  # issue 20: both views of every method, labelled; the verdict below is on the generated answers
    views = compare.answer_views(seed_preds, n_boot=N_BOOT, seed=SEED)
    run.save_table(views.reset_index(), "method_views", index=False)
    display(views)
    display(Markdown("The verdict is computed on the **generated** answers (`parsed_score`, what a user reads); the "
                     "teacher-forced column above (`expected_score`) is shown beside it, not used for the verdict."))
    display(Markdown(compare.verdicts(seed_table, boot, curve)))

# %% [markdown]
# ## Cross-benchmark (Table 2 style)
#
# Runs when `BENCHMARK_DIR` points at a folder with a public MOS dataset's videos, with the same
# code as `python -m vqalib benchmark` (`vqalib.inference.benchmark`): the label file as its
# authors distribute it (`BENCHMARK_LABELS`, or found beside the videos, or the FAST-VQA list in
# `LABELS_DIR`), the videos present scored by `BENCHMARK_MODEL` into a resumable file under
# `RUN_DIR/benchmarks/`, and one row per combination of dimensions: SRCC, PLCC, PLCC after the
# logistic fit and KRCC against the MOS (mapped to 1–5 over the dataset's nominal scale), each with
# a 95 % bootstrap CI, and the counts found / missing / failed. Predictions files named
# `RUN_DIR/predictions/<model>@<benchmark>.jsonl` are added as further rows.
# See `data_cards/public_mos_benchmarks.md`.

# %%
if not BENCHMARK_DIR:
    print("BENCHMARK_DIR is empty: cross-benchmark section skipped")
else:
    from vqalib.eval.combine import all_combinations
    from vqalib.eval.predictions_file import schema_of_frames
    from vqalib.inference.benchmark import format_row, run_benchmark, table2

    table2_rows, binfo = run_benchmark(
        BENCHMARK, BENCHMARK_DIR, BENCHMARK_MODEL, labels=BENCHMARK_LABELS or None, split=BENCHMARK_SPLIT or None,
        labels_root=LABELS_DIR or None, mode=BENCHMARK_MODE, combinations="all", n_boot=N_BOOT,
        seed=SEED, device=DEVICE, output=resolve_path(RUN_DIR) / "benchmarks" / BENCHMARK / f"{BENCHMARK_MODE}.csv")
    bench = binfo["bench"]
    print(bench.summary())
    print(binfo["run"].summary())

# %%
if BENCHMARK_DIR:  # predictions files RUN_DIR/predictions/<model>@<benchmark>.jsonl are further rows
    bpreds = stage_files.benchmark_predictions(RUN_DIR, BENCHMARK)
    if bpreds:
        combos = all_combinations(schema_of_frames(list(bpreds.values())))  # the files' rating schema
        table2_rows = pd.concat([table2_rows, table2(bench, bpreds, combos, n_boot=N_BOOT, seed=SEED)],
                                ignore_index=True)
    run.save_table(table2_rows, f"table2_{BENCHMARK}", index=False)
    run.log_metrics({f"table2/{BENCHMARK}/{r['model']}/{r['combination']}/{k}": r[k]
                     for r in table2_rows.to_dict("records") for k in ("SRCC", "PLCC", "n", "n_found", "n_missing")})
    for r in table2_rows.to_dict("records"):
        print(format_row(r))
    display(table2_rows)

# %% [markdown]
# ## What these numbers mean
#
# - **Untrained tiny model (the embedded default at first).** Its language model is random (with
#   `tiny-pretrained` only the vision tower was pre-trained, on unrated clips), so its
#   answers rarely parse (expect most parsed-readout cells to be NaN with the reason "no items")
#   and its level distributions are not trained on the video: read its expected-score row as a
#   reference point, not as chance (a random network's readout can still correlate with a label by
#   accident, with either sign). These numbers test the *pipeline* (files, readouts, metrics,
#   plots), not a model.
# - **Tiny model after minutes of CPU training (notebooks 04–06).** Differences between SFT, GRPO
#   and ASO of a few hundredths are inside the bootstrap intervals shown above on a test split of
#   this size; read the CI columns before reading a ranking. Which dimensions the tiny model learns
#   in this budget, and which it memorises, is measured in docs/training.md ("The embedded demo on a
#   CPU"); the GRPO-vs-ASO section above says, from its own intervals, whether the methods differ.
# - **What transfers to a real run.** The code path, the readouts, the parse-failure accounting
#   and the metric definitions are the same for Qwen2.5-VL-7B on UltraVQA. The values do not: the
#   paper's Table 1 numbers come from a 7B model trained on thousands of real clips.
# - **Calibration** only makes sense for the distribution readout; the parsed answer carries no
#   confidence. ASO's soft targets put mass on neighbouring levels; whether that changes the
#   calibration of this tiny model is what the reliability table above measures (mean confidence and
#   ECE per model), not something to assume.
