"""The statistical figures show their input: bar heights, heat-map cells, error-bar ends and hue
legends are read back from the drawn matplotlib artists and compared with the tables they came
from; the shared seaborn theme leaves the caller's rcParams unchanged. The figures that take a second
or more to draw on 2 cores (tag bars, confusion heat maps, reliability diagrams, ASO distributions):
``tests/integration/test_plot_rendering.py``, with the helpers defined here."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from vqalib.data import agreement
from vqalib.eval import plots
from vqalib.report import dataset_stats as stats
from vqalib.schema import levels as L
from vqalib.report import training as report

NAMES = [L.NAME_OF[k] for k in L.DIMENSION_KEYS]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def bar_heights(ax) -> list[np.ndarray]:
    return [np.array([p.get_height() for p in c.patches]) for c in ax.containers if isinstance(c, BarContainer)]


def bar_widths(ax) -> list[np.ndarray]:
    return [np.array([p.get_width() for p in c.patches]) for c in ax.containers if isinstance(c, BarContainer)]


def error_extents(ax) -> list[np.ndarray]:
    """Per error-bar container: rows (x, low end, high end) of its vertical bars."""
    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            segs = c.lines[2][0].get_segments()
            out.append(np.array([[s[0][0], min(s[0][1], s[1][1]), max(s[0][1], s[1][1])] for s in segs]))
    return out


def legend_texts(fig_or_ax) -> list[str]:
    legends = fig_or_ax.legends if hasattr(fig_or_ax, "legends") and fig_or_ax.legends else [fig_or_ax.get_legend()]
    return [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]


def labels_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"video_id": f"v{i}", "dimension": d, "score": float(rng.choice(L.LEVELS[: 5 + k]))}
                         for i in range(n) for k, d in enumerate(L.DIMENSION_KEYS)])


# ----------------------------------------------------------------------------------------------
# theme


def test_theme_is_scoped_and_leaves_rcparams_unchanged():
    before = dict(matplotlib.rcParams)
    with plots.theme():
        assert matplotlib.rcParams["axes.grid"] is True  # seaborn "whitegrid"
        assert matplotlib.rcParams["axes.titleweight"] == "bold"
    fig = stats.plot_correlation(pd.DataFrame(np.eye(2), index=L.DIMENSION_KEYS[:2], columns=L.DIMENSION_KEYS[:2]))
    assert fig.axes[0].get_title()
    after = dict(matplotlib.rcParams)
    assert {k: v for k, v in after.items() if k in before and str(before[k]) != str(v)} == {}


# ----------------------------------------------------------------------------------------------
# notebook 01


def test_score_distribution_bars_equal_the_counts_per_level():
    dist = stats.score_distribution(labels_frame())
    fig = stats.plot_score_distributions(dist)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == NAMES
    for ax, (dim, row) in zip(axes, dist.iterrows()):
        (h,) = bar_heights(ax)
        np.testing.assert_array_equal(h, row.to_numpy(float))
        assert [t.get_text() for t in ax.get_xticklabels()] == list(L.LEVEL_STRINGS)
    assert row.iloc[-1] > 0 and dist.iloc[0, -1] == 0  # the data differ per dimension, so the check can fail


def test_correlation_heatmap_cells_are_the_lower_triangle():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 5))
    corr = pd.DataFrame(np.corrcoef(a.T), index=L.DIMENSION_KEYS, columns=L.DIMENSION_KEYS)
    fig = stats.plot_correlation(corr)
    ax = fig.axes[0]
    want = [f"{corr.iloc[i, j]:.2f}" for i in range(5) for j in range(5) if j <= i]
    assert [t.get_text() for t in ax.texts] == want
    mesh = ax.collections[0]
    assert mesh.norm.vmin == -1 and mesh.norm.vmax == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES


def test_video_properties_counts_every_video():
    videos = pd.DataFrame({"width": [112, 112, 224, 224, 224], "height": [112, 112, 224, 224, 224],
                           "fps": [8, 8, 24, 24, 30], "duration": [4.0, 4.0, 2.5, 3.0, 5.0],
                           "category": ["a", "a", "b", "", "b"], "split": ["train", "test", "train", "train", ""]})
    fig = stats.plot_video_properties(videos)
    res, fps, dur, cat = fig.axes[:4]
    assert sorted(bar_widths(res)[0]) == [2, 3]
    assert sum(p.get_height() for p in fps.patches) == 5 and sum(p.get_height() for p in dur.patches) == 5
    assert sum(w[~np.isnan(w)].sum() for w in bar_widths(cat)) == 5
    assert set(legend_texts(cat)) == {"train", "test", "(none)"}
    assert "(s)" in dur.get_xlabel() and "frames/s" in fps.get_xlabel()


def test_rationale_length_ecdfs_have_one_line_per_dimension():
    rng = np.random.default_rng(2)
    lengths = pd.DataFrame([{"dimension": d, "words": int(rng.integers(5, 30)) + 10 * k,
                             "tokens": int(rng.integers(10, 60))}
                            for k, d in enumerate(L.DIMENSION_KEYS) for _ in range(30)])
    fig = stats.plot_rationale_lengths(lengths)
    words = fig.axes[0]
    assert legend_texts(fig.axes[1]) == NAMES
    assert len(words.lines) == 5
    palette = plots.dimension_palette()
    by_colour = {matplotlib.colors.to_hex(line.get_color()): line for line in words.lines}
    for dim in L.DIMENSION_KEYS:
        x, y = by_colour[matplotlib.colors.to_hex(palette[L.NAME_OF[dim]])].get_data()
        v = lengths.loc[lengths.dimension == dim, "words"]
        x = x[np.isfinite(x)]
        assert np.nanmax(y) == 1.0 and x.min() == v.min() and x.max() == v.max()


# ----------------------------------------------------------------------------------------------
# notebook 02


def agreement_like(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for ph, base in (("pilot", 0.5), ("final", 0.8)):
        for d in L.DIMENSION_KEYS:
            row = {"phase": ph, "dimension": d}
            for m in ("relaxed_match", "alpha_interval", "alpha_ordinal"):
                v = base + rng.uniform(-0.1, 0.1)
                row.update({m: v, f"{m}_lo": v - rng.uniform(0.01, 0.1), f"{m}_hi": v + rng.uniform(0.01, 0.1)})
            rows.append(row)
    return pd.DataFrame(rows)


def test_agreement_error_bars_are_the_table_cis():
    table = agreement_like()
    fig = stats.plot_agreement(table)
    assert legend_texts(fig) == ["pilot", "final"]
    for ax, m in zip(fig.axes, ("relaxed_match", "alpha_interval", "alpha_ordinal")):
        heights = bar_heights(ax)
        ext = error_extents(ax)
        assert len(heights) == len(ext) == 2
        for k, ph in enumerate(("pilot", "final")):
            t = table[table.phase == ph]
            np.testing.assert_allclose(heights[k], t[m])
            np.testing.assert_allclose(ext[k][:, 1], t[f"{m}_lo"])
            np.testing.assert_allclose(ext[k][:, 2], t[f"{m}_hi"])
            centers = [p.get_x() + p.get_width() / 2 for p in ax.containers[k].patches]
            np.testing.assert_allclose(ext[k][:, 0], centers)


def test_agreement_from_real_ratings_and_a_missing_interval():
    rng = np.random.default_rng(4)
    ratings = pd.DataFrame([{"video_id": f"v{i}", "dimension": d, "phase": "final", "rater": f"r{j}",
                             "score": float(np.clip(round((2 + i % 5 * 0.5 + rng.normal(0, 0.4)) * 2) / 2, 1, 5))}
                            for i in range(20) for d in L.DIMENSION_KEYS[:2] for j in range(3)])
    table = agreement.agreement_table(ratings, phases=("final",), n_boot=20, seed=0)
    table.loc[0, "alpha_interval_lo"] = np.nan  # an undefined bootstrap end is not drawn
    fig = stats.plot_agreement(table)
    ext = error_extents(fig.axes[1])
    assert len(ext) == 1 and len(ext[0]) == 1
    np.testing.assert_allclose(ext[0][0, 1:], table.loc[1, ["alpha_interval_lo", "alpha_interval_hi"]].to_numpy(float))


def test_rater_bias_bars_and_truth_scatter():
    bias = pd.DataFrame({"rater": ["a", "b", "c", "d"], "bias": [0.2, -0.1, 0.05, -0.3], "leniency": 0.0, "mad": 0.5,
                         "n": 10})
    truth = pd.DataFrame({"rater": ["a", "b", "c", "d"], "bias": [0.25, -0.1, 0.0, -0.35]})
    fig = stats.plot_rater_bias(bias, truth)
    ax, sc = fig.axes[:2]
    widths = np.concatenate([w[~np.isnan(w)] for w in bar_widths(ax)])
    assert sorted(widths) == sorted(bias["bias"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["d", "b", "c", "a"]
    assert legend_texts(ax) == ["strict", "lenient"]
    np.testing.assert_allclose(sc.collections[0].get_offsets(), np.c_[truth["bias"], bias["bias"]])
    assert len(stats.plot_rater_bias(bias).axes) == 1


# ----------------------------------------------------------------------------------------------
# notebook 07


def test_plot_curves_lines_and_seed_means():
    f = pd.DataFrame({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "kl": [0.0, 0.1, np.nan]})
    fig = report.plot_curves(f, ["loss", "kl", "absent"], "t")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "kl"]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), [3.0, 2.0, 1.5])
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_xdata(), [1, 2])  # the missing value is not drawn as 0
    rows = [{"seconds": t, "method": m, "seed": s, "srcc": v + s * 0.1}
            for m, v0 in (("GRPO", 0.2), ("ASO", 0.4)) for s in range(3) for t, v in ((0, v0), (60, v0 + 0.1))]
    fig = report.plot_curves(pd.DataFrame(rows), ["srcc"], x="seconds", hue="method", errorbar=None)
    ax = fig.axes[0]
    assert legend_texts(ax) == ["GRPO", "ASO"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.3, 0.4])  # mean over the three seeds
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.5, 0.6])
