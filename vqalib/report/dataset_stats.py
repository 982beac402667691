"""Dataset statistics and the plots of notebooks 01 (paper Fig. 1) and 02 (paper Table 3).

Functions return DataFrames (what a test checks) and ``plot_*`` functions draw them on a new
matplotlib figure and return it (what the notebook saves with ``Run.save_fig``).

Functions whose output depends on the dimensions or the levels take ``schema=``
(:class:`vqalib.schema.rating.RatingSchema`; None: the paper's five dimensions x nine levels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from vqalib.schema import rating as RS
from vqalib.eval import plots as P


# ----------------------------------------------------------------------------------------------
# tables


def score_distribution(labels: pd.DataFrame, schema: "RS.RatingSchema | str | None" = None) -> pd.DataFrame:
    """Count of videos per dimension (rows, keys) and level (columns: the schema's K level strings,
    the paper's ``"1.0"..."5.0"``)."""
    s = RS.resolve(schema)
    t = pd.crosstab(labels["dimension"], labels["score"].map(s.string))
    t = t.reindex(index=[k for k in s.keys if k in t.index], columns=list(s.strings), fill_value=0)
    t.columns.name, t.index.name = "level", "dimension"
    return t


def dimension_correlation(labels: pd.DataFrame, method: str = "spearman",
                          schema: "RS.RatingSchema | str | None" = None) -> pd.DataFrame:
    """Correlation between the dimensions' labels across videos (``spearman`` or ``pearson``; pairwise
    over the videos that have both labels)."""
    from vqalib.data.dataset import labels_wide

    return labels_wide(labels, schema=schema).astype(float).corr(method=method)


def video_summary(videos: pd.DataFrame) -> pd.DataFrame:
    """Count, min, median, max of duration, fps, width, height (empty cells are counted as missing)."""
    cols = ["duration", "fps", "width", "height"]
    v = videos[cols].apply(pd.to_numeric, errors="coerce")
    out = pd.DataFrame({"n": v.notna().sum(), "missing": v.isna().sum(), "min": v.min(), "median": v.median(),
                        "max": v.max()})
    return out


def resolution_counts(videos: pd.DataFrame) -> pd.Series:
    """Number of videos per resolution ``WxH``."""
    return _resolutions(videos).value_counts().rename("videos")


def _resolutions(videos: pd.DataFrame) -> pd.Series:
    """``WxH`` of each video (``<NA>`` where a size is missing)."""
    return videos["width"].astype("Int64").astype(str) + "x" + videos["height"].astype("Int64").astype(str)


def category_counts(videos: pd.DataFrame) -> pd.DataFrame:
    """Videos per category and split."""
    t = pd.crosstab(videos["category"].replace("", "(none)"), videos["split"].replace("", "(none)"), margins=True,
                    margins_name="all")
    return t.sort_values("all", ascending=False)


def tag_frequencies(ratings: pd.DataFrame, phase: str = "final",
                    schema: "RS.RatingSchema | str | None" = None) -> pd.DataFrame:
    """How often each tag was ticked: ``dimension, tag, count, share`` (share of that dimension's
    ratings in the phase carrying the tag; tags never ticked appear with count 0; a dimension
    without tags in the schema has no rows)."""
    s = RS.resolve(schema)
    r = ratings[ratings["phase"] == phase]
    rows = []
    for dim in s.keys:
        sub = r[r["dimension"] == dim]
        counts = pd.Series([t for tags in sub["tags"] for t in tags], dtype=object).value_counts()
        for tag in s.dimension(dim).tags:
            n = int(counts.get(tag, 0))
            rows.append({"dimension": dim, "tag": tag, "count": n, "share": n / len(sub) if len(sub) else np.nan})
    return pd.DataFrame(rows, columns=["dimension", "tag", "count", "share"])


def get_token_counter(tokenizer: str = "tiny") -> Callable[[str], int]:
    """A function counting tokens of a text.

    ``"tiny"``: the project's own Qwen2-style BPE (:mod:`vqalib.model.tokenizer`, digits split one per
    token); ``"whitespace"``: words split on white space and punctuation; any other value: a folder
    with a Hugging Face tokenizer (e.g. ``../shared/data/qwen2_5_vl`` for the real Qwen2.5 counts).
    """
    if tokenizer == "whitespace":
        import re

        pat = re.compile(r"\w+|[^\w\s]")
        return lambda text: len(pat.findall(text))
    if tokenizer == "tiny":
        from vqalib.model.tokenizer import build_tokenizer_object

        tok = build_tokenizer_object()
        return lambda text: len(tok.encode(text).ids)
    from transformers import AutoTokenizer

    from vqalib.core.runs import resolve_path

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
# plots (each returns a new figure, drawn with seaborn in the shared theme of ``vqalib.eval.plots``)


@P.themed
def plot_score_distributions(dist: pd.DataFrame, schema: "RS.RatingSchema | str | None" = None):
    """One bar chart per dimension: videos per level (paper Fig. 1, score distributions).

    ``dist``: the wide table of :func:`score_distribution` (rows = dimension keys, columns = the
    level strings, the paper's ``"1.0"..."5.0"``); drawn from its long form ``dimension, level, videos``.
    """
    import seaborn as sns

    s = RS.resolve(schema)
    if s.is_paper:
        names_of, palette = P.dimension_names, P.dimension_palette()
    else:
        def names_of(keys):
            f = lambda k: s.name_of(k) if k in s.keys else k  # noqa: E731
            return keys.map(f) if isinstance(keys, pd.Series) else [f(k) for k in keys]
        palette = dict(zip(s.names, sns.color_palette(P.THEME["palette"], s.n_dims)))
    long = P.long_format(dist, "dimension", "level", "videos")
    long["level"] = long["level"].astype(str)
    long["dimension"] = names_of(long["dimension"])
    names = names_of(list(dist.index))
    fig, axes = P.subplots(1, len(names), figsize=(2.7 * len(names), 2.9), sharey=True)
    for ax, name in zip(axes[0], names):
        sns.barplot(data=long[long["dimension"] == name], x="level", y="videos", hue="dimension",
                    order=list(s.strings), palette=palette, legend=False, ax=ax)
        ax.set_title(name)
        ax.set_xlabel("label (score points)" if s.numeric_strings else "label")
        ax.tick_params(axis="x", rotation=90)
    axes[0][0].set_ylabel("videos")
    grid = "the 0.5 grid" if s.is_paper else f"the {s.n_levels} levels"
    fig.suptitle(f"Label distribution per dimension (mean of raters, snapped to {grid})")
    return fig


@P.themed
def plot_correlation(corr: pd.DataFrame, title: str = "Spearman correlation between dimensions"):
    """Heat map of a dimension x dimension correlation table (lower triangle and diagonal, values
    written in the cells; colour scale -1 ... 1 centred on 0)."""
    import seaborn as sns

    names = P.dimension_names(list(corr.columns))
    mask = np.triu(np.ones(corr.shape, dtype=bool), k=1)
    fig, axes = P.subplots(figsize=(5.4, 4.4))
    ax = axes[0][0]
    sns.heatmap(pd.DataFrame(corr.to_numpy(float), index=names, columns=names), mask=mask, vmin=-1, vmax=1,
                center=0, cmap="vlag", annot=True, fmt=".2f", square=True, linewidths=0.5, ax=ax,
                cbar_kws={"label": "correlation", "shrink": 0.8})
    ax.tick_params(axis="x", rotation=45)
    ax.set_title(title)
    return fig


@P.themed
def plot_video_properties(videos: pd.DataFrame):
    """Resolution, frame rate and duration of the videos, and videos per category and split."""
    import seaborn as sns

    v = videos.assign(resolution=_resolutions(videos),
                      category=videos["category"].replace("", "(none)"),
                      split=videos["split"].replace("", "(none)"),
                      fps=pd.to_numeric(videos["fps"], errors="coerce"),
                      duration=pd.to_numeric(videos["duration"], errors="coerce"))
    fig, axes = P.subplots(1, 4, figsize=(15, 3.0))
    res_order = resolution_counts(videos).head(10).index.tolist()
    sns.countplot(data=v[v["resolution"].isin(res_order)], y="resolution", order=res_order, ax=axes[0][0],
                  color="C0")
    axes[0][0].set(title="Resolution (top 10)", xlabel="videos", ylabel="width x height (px)")
    for ax, col, unit in ((axes[0][1], "fps", "frames/s"), (axes[0][2], "duration", "s")):
        x = v[col].dropna()
        sns.histplot(x=x, bins=min(20, max(1, x.nunique())), ax=ax, color="C0")
        ax.set(title=f"{col.capitalize()} (n={len(x)})", xlabel=f"{col} ({unit})", ylabel="videos")
    cat_order = v["category"].value_counts().index.tolist()
    sns.countplot(data=v, y="category", hue="split", order=cat_order, ax=axes[0][3])
    axes[0][3].set(title="Category", xlabel="videos", ylabel="")
    return fig


@P.themed
def plot_tag_frequencies(tags: pd.DataFrame):
    """Share of ratings carrying each tag, one panel per dimension (``tags``: the long table of
    :func:`tag_frequencies`)."""
    import seaborn as sns

    dims = P.dimension_order(tags["dimension"])
    t = tags.assign(dimension=P.dimension_names(tags["dimension"]))
    fig, axes = P.subplots(1, len(dims), figsize=(3.0 * len(dims), 2.9), sharex=True)
    for ax, name in zip(axes[0], P.dimension_names(dims)):
        sns.barplot(data=t[t["dimension"] == name], x="share", y="tag", hue="dimension",
                    palette=P.dimension_palette(), legend=False, ax=ax)
        ax.set(title=name, xlabel="share of ratings", ylabel="")
    fig.suptitle("Tags ticked per dimension")
    return fig


@P.themed
def plot_rationale_lengths(lengths: pd.DataFrame):
    """Empirical CDFs of rationale length in words and tokens, one line per dimension (``hue``);
    ``lengths``: the long table of :func:`rationale_lengths`."""
    import seaborn as sns

    d = lengths.assign(dimension=P.dimension_names(lengths["dimension"]))
    order = P.dimension_names(P.dimension_order(lengths["dimension"]))
    fig, axes = P.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    for ax, col in zip(axes[0], ("words", "tokens")):
        sns.ecdfplot(data=d, x=col, hue="dimension", hue_order=order, palette=P.dimension_palette(), ax=ax,
                     legend=col == "tokens")
        ax.set(title=f"Rationale length in {col}", xlabel=f"length ({col})")
    axes[0][0].set_ylabel("share of rationales ≤ length")
    return fig


@P.themed
def plot_agreement(table: pd.DataFrame, columns: tuple[str, ...] = ("relaxed_match", "alpha_interval", "alpha_ordinal")):
    """Bars per dimension, ``hue`` = phase, with the table's bootstrap CIs (``<column>_lo``,
    ``<column>_hi`` of :func:`vqalib.data.agreement.agreement_table`) as error bars; one panel per
    column (paper Table 3 as a figure)."""
    dims = P.dimension_order(table["dimension"])
    phases = [p for p in ("pilot", "final") if p in set(table["phase"])]
    long = P.interval_long(table, columns, ["phase", "dimension"])
    long["dimension"] = P.dimension_names(long["dimension"])
    order = P.dimension_names(dims)
    titles = {"relaxed_match": "relaxed match", "alpha_interval": "Krippendorff α (interval)",
              "alpha_ordinal": "Krippendorff α (ordinal)"}
    fig, axes = P.subplots(1, len(columns), figsize=(4.6 * len(columns), 3.4), sharey=True)
    for ax, col in zip(axes[0], columns):
        P.bars_with_intervals(ax, long[long["metric"] == col], x="dimension", y="value", hue="phase", lo="lo",
                              hi="hi", order=order, hue_order=phases)
        ax.set(title=titles.get(col, col.replace("_", " ")), xlabel="", ylim=(min(0, np.nanmin(long["lo"])), 1))
        ax.set_xticks(range(len(order)), [n.replace(" ", "\n") for n in order])
        handles, labels = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    fig.legend(handles, labels, title="phase", loc="outside right upper")
    axes[0][0].set_ylabel("agreement (bars: bootstrap CI)")
    return fig


@P.themed
def plot_rater_bias(bias: pd.DataFrame, truth: pd.DataFrame | None = None):
    """Per-rater bias against the co-raters (leave-one-out, :func:`vqalib.data.agreement.rater_bias`),
    ``hue`` = lenient / strict; beside it the estimate against the generator's true bias when known."""
    import seaborn as sns

    b = bias.sort_values("bias")
    b = b.assign(direction=np.where(b["bias"] > 0, "lenient", "strict"))
    n = 2 if truth is not None else 1
    fig, axes = P.subplots(1, n, figsize=(5.2 * n, max(3.0, 0.16 * len(b) + 1)))
    ax = axes[0][0]
    sns.barplot(data=b, x="bias", y="rater", hue="direction", hue_order=["strict", "lenient"],
                palette={"strict": "C0", "lenient": "C3"}, order=b["rater"].tolist(), ax=ax)
    ax.axvline(0, color="k", lw=0.8)
    ax.set(title="Rater bias vs co-raters", xlabel="bias (score points)", ylabel="rater")
    ax.tick_params(axis="y", labelsize=7)
    if truth is not None:
        ax = axes[0][1]
        m = bias.merge(truth, on="rater", suffixes=("", "_true"))
        sns.regplot(data=m, x="bias_true", y="bias", ax=ax, ci=95, scatter_kws={"s": 18})
        lim = float(np.abs(m[["bias", "bias_true"]].to_numpy()).max()) * 1.1 + 1e-6
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="y = x")
        ax.set(title="Estimated vs true bias", xlabel="true bias (generator, score points)",
               ylabel="estimated bias (score points)", xlim=(-lim, lim), ylim=(-lim, lim))
        ax.legend(loc="upper left")
    return fig
