"""Dataset statistics and the plots of notebooks 01 (paper Fig. 1) and 02 (paper Table 3).

Functions return DataFrames (what a test checks) and ``plot_*`` functions draw them on a new
matplotlib figure and return it (what the notebook saves with ``Run.save_fig``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import levels as L


# ----------------------------------------------------------------------------------------------
# tables


def score_distribution(labels: pd.DataFrame) -> pd.DataFrame:
    """Count of videos per dimension (rows, keys) and grid level (columns ``"1.0"..."5.0"``)."""
    t = pd.crosstab(labels["dimension"], labels["score"].map(L.level_string))
    t = t.reindex(index=[k for k in L.DIMENSION_KEYS if k in t.index], columns=list(L.LEVEL_STRINGS), fill_value=0)
    t.columns.name, t.index.name = "level", "dimension"
    return t


def dimension_correlation(labels: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Correlation between the five dimensions' labels across videos (``spearman`` or ``pearson``)."""
    from .data import labels_wide

    return labels_wide(labels).astype(float).corr(method=method)


def video_summary(videos: pd.DataFrame) -> pd.DataFrame:
    """Count, min, median, max of duration, fps, width, height (empty cells are counted as missing)."""
    cols = ["duration", "fps", "width", "height"]
    v = videos[cols].apply(pd.to_numeric, errors="coerce")
    out = pd.DataFrame({"n": v.notna().sum(), "missing": v.isna().sum(), "min": v.min(), "median": v.median(),
                        "max": v.max()})
    return out


def resolution_counts(videos: pd.DataFrame) -> pd.Series:
    """Number of videos per resolution ``WxH``."""
    res = videos["width"].astype("Int64").astype(str) + "x" + videos["height"].astype("Int64").astype(str)
    return res.value_counts().rename("videos")


def category_counts(videos: pd.DataFrame) -> pd.DataFrame:
    """Videos per category and split."""
    t = pd.crosstab(videos["category"].replace("", "(none)"), videos["split"].replace("", "(none)"), margins=True,
                    margins_name="all")
    return t.sort_values("all", ascending=False)


def tag_frequencies(ratings: pd.DataFrame, phase: str = "final") -> pd.DataFrame:
    """How often each tag was ticked: ``dimension, tag, count, share`` (share of that dimension's
    ratings in the phase carrying the tag; tags never ticked appear with count 0)."""
    r = ratings[ratings["phase"] == phase]
    rows = []
    for dim in L.DIMENSION_KEYS:
        sub = r[r["dimension"] == dim]
        counts = pd.Series([t for tags in sub["tags"] for t in tags], dtype=object).value_counts()
        for tag in L.TAGS[dim]:
            n = int(counts.get(tag, 0))
            rows.append({"dimension": dim, "tag": tag, "count": n, "share": n / len(sub) if len(sub) else np.nan})
    return pd.DataFrame(rows)


def get_token_counter(tokenizer: str = "tiny") -> Callable[[str], int]:
    """A function counting tokens of a text.

    ``"tiny"``: the project's own Qwen2-style BPE (:mod:`vqalib.tokenizer`, digits split one per
    token); ``"whitespace"``: words split on white space and punctuation; any other value: a folder
    with a Hugging Face tokenizer (e.g. ``../shared/data/qwen2_5_vl`` for the real Qwen2.5 counts).
    """
    if tokenizer == "whitespace":
        import re

        pat = re.compile(r"\w+|[^\w\s]")
        return lambda text: len(pat.findall(text))
    if tokenizer == "tiny":
        from .tokenizer import build_tokenizer_object

        tok = build_tokenizer_object()
        return lambda text: len(tok.encode(text).ids)
    from transformers import AutoTokenizer

    from .runs import resolve_path

    path = resolve_path(tokenizer)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer folder {path} does not exist; use 'tiny', 'whitespace' or a tokenizer folder")
    hf = AutoTokenizer.from_pretrained(str(path))
    return lambda text: len(hf(text, add_special_tokens=False)["input_ids"])


def rationale_lengths(rationales: pd.DataFrame, tokenizer: str = "tiny") -> pd.DataFrame:
    """Per rationale: ``words`` (white-space split) and ``tokens`` (see :func:`get_token_counter`)."""
    count = get_token_counter(tokenizer)
    out = rationales[["video_id", "dimension"]].copy()
    out["words"] = [len(str(t).split()) for t in rationales["rationale"]]
    out["tokens"] = [count(str(t)) for t in rationales["rationale"]]
    return out


def length_summary(lengths: pd.DataFrame) -> pd.DataFrame:
    """Mean, median, max of words and tokens per dimension (rows) plus all dimensions."""
    g = lengths.groupby("dimension")[["words", "tokens"]].agg(["mean", "median", "max"])
    g.loc["all"] = lengths[["words", "tokens"]].agg(["mean", "median", "max"]).T.stack()
    return g


def load_rater_truth(root: str | Path) -> pd.DataFrame | None:
    """The generator's rater pool (``raters.jsonl`` of the sample dataset), or None for real data."""
    p = Path(root) / "raters.jsonl"
    if not p.is_file():
        return None
    return pd.DataFrame([json.loads(t) for t in p.read_text().splitlines() if t.strip()])


# ----------------------------------------------------------------------------------------------
# plots (each returns a new figure)


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_score_distributions(dist: pd.DataFrame):
    """One bar chart per dimension: videos per grid level (paper Fig. 1, score distributions)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(dist), figsize=(3.2 * len(dist), 2.8), sharey=True)
    for ax, (dim, row) in zip(np.atleast_1d(axes), dist.iterrows()):
        ax.bar(range(L.N_LEVELS), row.values, color="tab:blue")
        ax.set_xticks(range(L.N_LEVELS), L.LEVEL_STRINGS, rotation=90, fontsize=8)
        ax.set_title(L.NAME_OF[dim], fontsize=10)
        ax.set_xlabel("label (mean of raters, snapped)")
    np.atleast_1d(axes)[0].set_ylabel("videos")
    fig.tight_layout()
    return fig


def plot_correlation(corr: pd.DataFrame, title: str = "Spearman correlation between dimensions"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(corr.values, vmin=-1, vmax=1, cmap="RdBu_r")
    names = [L.NAME_OF[k] for k in corr.columns]
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{corr.values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_video_properties(videos: pd.DataFrame):
    """Resolution, fps and duration of the videos, and videos per category."""
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(14, 2.8))
    res = resolution_counts(videos).head(10)
    axes[0].barh(res.index[::-1], res.values[::-1])
    axes[0].set_title("resolution (W x H)")
    for ax, col in zip(axes[1:3], ("fps", "duration")):
        v = pd.to_numeric(videos[col], errors="coerce").dropna()
        ax.hist(v, bins=min(20, max(1, v.nunique())))
        ax.set_title(col + (" (s)" if col == "duration" else ""))
    cats = videos["category"].replace("", "(none)").value_counts()
    axes[3].barh(cats.index[::-1], cats.values[::-1], color="tab:green")
    axes[3].set_title("category")
    for ax in axes:
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def plot_tag_frequencies(tags: pd.DataFrame):
    """Share of ratings carrying each tag, one panel per dimension."""
    plt = _plt()
    dims = [d for d in L.DIMENSION_KEYS if d in set(tags["dimension"])]
    fig, axes = plt.subplots(1, len(dims), figsize=(3.2 * len(dims), 2.8), sharex=True)
    for ax, dim in zip(np.atleast_1d(axes), dims):
        t = tags[tags["dimension"] == dim]
        ax.barh(t["tag"][::-1], t["share"][::-1], color="tab:orange")
        ax.set_title(L.NAME_OF[dim], fontsize=10)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("share of ratings")
    fig.tight_layout()
    return fig


def plot_rationale_lengths(lengths: pd.DataFrame):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
    for ax, col in zip(axes, ("words", "tokens")):
        for dim in L.DIMENSION_KEYS:
            v = lengths.loc[lengths["dimension"] == dim, col]
            if len(v):
                ax.hist(v, bins=range(int(lengths[col].min()), int(lengths[col].max()) + 2), histtype="step",
                        label=L.NAME_OF[dim])
        ax.set_xlabel(f"rationale length ({col})")
        ax.set_ylabel("rationales")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_agreement(table: pd.DataFrame, columns: tuple[str, ...] = ("relaxed_match", "alpha_interval", "alpha_ordinal")):
    """Bars per dimension and phase with bootstrap CIs as error bars (paper Table 3 as a figure)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3), sharey=True)
    dims = [d for d in L.DIMENSION_KEYS if d in set(table["dimension"])]
    phases = [p for p in ("pilot", "final") if p in set(table["phase"])]
    x = np.arange(len(dims))
    for ax, col in zip(np.atleast_1d(axes), columns):
        for k, ph in enumerate(phases):
            t = table[table["phase"] == ph].set_index("dimension").reindex(dims)
            err = np.vstack([t[col] - t[f"{col}_lo"], t[f"{col}_hi"] - t[col]]).clip(min=0)
            ax.bar(x + (k - 0.5) * 0.38, t[col], width=0.38, label=ph,
                   yerr=None if np.isnan(err).all() else err, capsize=2)
        ax.set_xticks(x, [L.NAME_OF[d].replace(" ", "\n") for d in dims], fontsize=7)
        ax.set_title(col.replace("_", " "), fontsize=10)
        ax.set_ylim(0, 1)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_rater_bias(bias: pd.DataFrame, truth: pd.DataFrame | None = None):
    """Per-rater bias (leave-one-out) with leniency; against the generator's true bias when known."""
    plt = _plt()
    n = 2 if truth is not None else 1
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3))
    axes = np.atleast_1d(axes)
    b = bias.sort_values("bias")
    axes[0].barh(b["rater"], b["bias"], color=np.where(b["bias"] > 0, "tab:red", "tab:blue"))
    axes[0].axvline(0, color="k", lw=0.8)
    axes[0].set_xlabel("bias vs co-raters (score points)")
    axes[0].tick_params(labelsize=7)
    if truth is not None:
        m = bias.merge(truth, on="rater", suffixes=("", "_true"))
        axes[1].scatter(m["bias_true"], m["bias"])
        lim = float(np.abs(m[["bias", "bias_true"]].to_numpy()).max()) * 1.1 + 1e-6
        axes[1].plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        axes[1].set_xlabel("true bias (generator)")
        axes[1].set_ylabel("estimated bias")
    fig.tight_layout()
    return fig
