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
# # 01 · Data statistics (the paper's Fig. 1)
#
# What is in the dataset: how the labels are distributed over the 9-level grid per dimension,
# how the dimensions correlate, the videos' resolution / frame rate / duration and categories,
# which sub-attribute tags raters ticked, and how long the rationales are (in words and tokens).
#
# It runs on any dataset in the project's schema (`DATA_DIR`, see `data_cards/ultravqa_format.md`);
# empty means the embedded sample dataset (`data_cards/sample_dataset.md`), generated on first use.
# All logic lives in `vqalib.data.dataset` and `vqalib.report.dataset_stats` (tests: `tests/unit/test_data.py`, `tests/unit/test_stats.py`).

# %% tags=["parameters"]
RUN_DIR: str = "runs/demo"  # run folder for figures, tables and metrics
DATA_DIR: str = ""  # dataset folder (videos/ratings/rationales .jsonl or .parquet); empty means the embedded sample dataset
SAMPLE_SIZE: str = "default"  # sample dataset size when DATA_DIR is empty: smoke | default | large
SEED: int = 0  # seed of the sample dataset
SCHEMA: str = ""  # rating schema when DATA_DIR is empty (the sample is generated on it): paper | mos9 | qalign5 | int10 | a .json/.yaml file; empty means the paper's. A DATA_DIR dataset carries its own rating_schema.json (a different SCHEMA is refused)
PHASE: str = "final"  # rating phase the labels are aggregated from: final | pilot
MIN_RATERS: int = -1  # minimum raters per video and dimension (fewer is a validation error); -1 takes the value the dataset folder was converted with (dataset.json), else 3
STRICT: bool = True  # True: stop on any invalid row; False: drop invalid rows and show the report
TOKENIZER: str = "tiny"  # rationale token counts: tiny (project tokenizer) | whitespace | path to a tokenizer folder

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from vqalib.report import dataset_stats as stats
from vqalib.data.dataset import aggregate, high_variance_threshold, load_dataset
from vqalib.core.runs import Run
from vqalib.data.synth import dataset_root

# %% [markdown]
# The dataset, validated (`STRICT`), and its labels: per video and dimension the mean of the raters'
# scores in `PHASE`, snapped to the grid.

# %%
run = Run(RUN_DIR, "01_data_statistics")
pd.set_option("display.precision", 3)
data_dir = dataset_root(DATA_DIR, SAMPLE_SIZE, SEED, schema=SCHEMA or None)
# this notebook reads only the tables, so the video files need not be here (a ratings-only study)
ds = load_dataset(data_dir, strict=STRICT, min_raters=None if MIN_RATERS < 0 else MIN_RATERS, check_files=False)
labels = aggregate(ds, phase=PHASE)
schema = ds.schema  # dimensions, levels and scale come from the data
print(ds)
print(schema)
print("validation:", ds.report.summary(max_lines=10))
n_files = sum(ds.video_path(v).is_file() for v in ds.videos["video_id"])
print(f"video files present: {n_files} of {len(ds.videos)} (not needed here; training and evaluation decode them)")

# %% [markdown]
# ## Size of the dataset

# %%
size = {
    "videos": len(ds.videos),
    "ratings": len(ds.ratings),
    "raters": ds.ratings["rater"].nunique(),
    "ratings_per_video_dimension": float(labels["n_raters"].mean()),
    "rationales": len(ds.rationales),
    "train_videos": int((ds.videos["split"] == "train").sum()),
    "test_videos": int((ds.videos["split"] == "test").sum()),
    "high_variance_labels": int(labels["high_variance"].sum()),
}
run.log_metrics(**{f"n_{k}" if not k.startswith("ratings_per") else k: v for k, v in size.items()})
display(pd.Series(size, name="count").to_frame())

# %% [markdown]
# ## Label distribution per dimension
# Labels are the mean of the raters' scores, snapped to the grid (round half up).

# %%
dist = stats.score_distribution(labels, schema=schema)
run.save_table(dist, "score_distribution")
fig = stats.plot_score_distributions(dist, schema=schema)
run.save_fig(fig, "score_distributions")
plt.show()
levels_used = {dim: int((row > 0).sum()) for dim, row in dist.iterrows()}
run.log_metrics(levels_used=levels_used, label_mean={d: float(labels.loc[labels.dimension == d, "score"].mean())
                                                     for d in dist.index})
display(dist)

# %% [markdown]
# ## Correlation between dimensions

# %%
corr = stats.dimension_correlation(labels, schema=schema)
run.save_table(corr, "dimension_correlation")
fig = stats.plot_correlation(corr)
run.save_fig(fig, "dimension_correlation")
plt.show()
off = pd.Series(corr.to_numpy()[~np.eye(len(corr), dtype=bool)])  # the off-diagonal entries
run.log_metrics(max_abs_inter_dimension_correlation=float(off.abs().max()),
                mean_inter_dimension_correlation=float(off.mean()))
print(f"off-diagonal Spearman correlation: mean {off.mean():.2f}, max |r| {off.abs().max():.2f}")

# %% [markdown]
# ## Videos: resolution, frame rate, duration, categories

# %%
fig = stats.plot_video_properties(ds.videos)
run.save_fig(fig, "video_properties")
plt.show()
display(run.save_table(stats.video_summary(ds.videos), "video_summary"))
display(run.save_table(stats.category_counts(ds.videos), "categories"))

# %% [markdown]
# ## Tags per dimension
# Share of the ratings in the phase that carry each tag (raters tick tags when a dimension is below perfect).

# %%
tags = stats.tag_frequencies(ds.ratings, phase=PHASE, schema=schema)
run.save_table(tags, "tag_frequencies", index=False)
fig = stats.plot_tag_frequencies(tags)
run.save_fig(fig, "tag_frequencies")
plt.show()
top = tags.sort_values("share", ascending=False).groupby("dimension").head(1).set_index("dimension")["tag"]
run.log_metrics(most_frequent_tag=top.to_dict())
display(tags.pivot(index="tag", columns="dimension", values="share").fillna(""))

# %% [markdown]
# ## Rationale length

# %%
if len(ds.rationales):
    lengths = stats.rationale_lengths(ds.rationales, tokenizer=TOKENIZER)
    summary = stats.length_summary(lengths)
    run.save_table(summary, "rationale_lengths")
    fig = stats.plot_rationale_lengths(lengths)
    run.save_fig(fig, "rationale_lengths")
    plt.show()
    run.log_metrics(rationale_words_mean=float(lengths["words"].mean()),
                    rationale_tokens_mean=float(lengths["tokens"].mean()), tokenizer=TOKENIZER)
    display(summary)
else:
    print("this dataset has no rationales table")

# %% [markdown]
# ## What the numbers show
#
# The cell below states the facts computed above. On the embedded sample dataset the latent levels are
# drawn uniformly over the grid with a mild positive correlation (0.2 in the generator) between
# dimensions, so the label histograms should be roughly flat (the mean of 3-4 noisy raters pulls a
# little mass away from the two ends), every level should be used on every dimension at the default
# size (the 32-clip smoke size can miss one), and the off-diagonal correlations should be small and
# positive; the printed numbers say whether that holds for the data you ran on. The real UltraVQA labels are not uniform (the paper's Fig. 1 shows them concentrated in the
# middle-to-upper levels), so do not read the sample's flat histograms as a property of real data.

# %%
full = [d for d, n in levels_used.items() if n == schema.n_levels]
print(f"{len(ds.videos)} videos, {len(labels)} labels from the {PHASE} phase; "
      f"{len(full)} of {len(levels_used)} dimensions use all {schema.n_levels} levels"
      + (f" (not all levels on: {[d for d in levels_used if d not in full]})" if len(full) < len(levels_used) else "") + ".")
print(f"Dimensions correlate with mean Spearman {off.mean():.2f} (max |r| {off.abs().max():.2f}).")
print(f"{size['high_variance_labels']} of {len(labels)} labels are high-variance "
      f"(rater std > {high_variance_threshold(schema):g}).")
