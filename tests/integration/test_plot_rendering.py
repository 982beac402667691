"""The figures whose drawing takes a second or more on 2 cores (seaborn heat maps with annotations, ten
panels of bars, reliability diagrams, notebook 03's explorer redrawn on every change): their cells,
bars, error-bar ends and legends read back from the drawn artists and compared with the tables they
came from. The other figures and the helpers used here: ``tests/unit/test_plots.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from test_evaluation import simulated
from test_plots import _close_figures, bar_heights, bar_widths, error_extents, legend_texts  # noqa: F401
from vqalib.eval.tables import (calibration_table, confusion, parse_failure_table, plot_confusions, plot_reliability,
                                reliability_long)
from vqalib.report import dataset_stats as stats
from vqalib.report import training as report
from vqalib.schema import levels as L
from vqalib.teaching import widgets


def test_tag_bars_equal_the_shares():
    tags = pd.DataFrame([{"dimension": d, "tag": t, "count": i + 1, "share": (i + 1) / 10}
                         for d in L.DIMENSION_KEYS for i, t in enumerate(L.TAGS[d])])
    fig = stats.plot_tag_frequencies(tags)
    for ax, dim in zip(fig.axes, L.DIMENSION_KEYS):
        (w,) = bar_widths(ax)
        np.testing.assert_allclose(w, tags.loc[tags.dimension == dim, "share"])
        assert [t.get_text() for t in ax.get_yticklabels()] == list(L.TAGS[dim])


def test_confusion_heatmap_cells_are_the_counts():
    df = simulated(60, 2.0, 7)
    fig = plot_confusions(df, "m", "argmax_score")
    for ax, dim in zip(fig.axes, L.DIMENSION_KEYS):
        cm = confusion(df, dim, "argmax_score").to_numpy()
        shown = np.array([t.get_text() for t in ax.texts]).reshape(L.N_LEVELS, L.N_LEVELS)
        np.testing.assert_array_equal(shown, np.where(cm > 0, cm.astype(str), ""))
        colour = np.asarray(ax.collections[0].get_array()).reshape(L.N_LEVELS, L.N_LEVELS)
        np.testing.assert_allclose(colour, cm / cm.sum(axis=1, keepdims=True).clip(min=1))
        assert not ax.yaxis_inverted() and ax.get_yticklabels()[0].get_text() == "1.0"  # level 1.0 at the bottom
        assert [t.get_text() for t in ax.get_xticklabels()] == list(L.LEVEL_STRINGS)


def test_reliability_points_intervals_and_ece_legend():
    preds = {"random": simulated(150, 0.0, 4), "sharp": simulated(150, 6.0, 5)}
    long = reliability_long(preds)
    cal = calibration_table(preds).set_index(["model", "dimension"])
    assert ((long["acc_lo"] <= long["accuracy"]) & (long["accuracy"] <= long["acc_hi"])).all()
    n_total = long.groupby(["model", "dimension"])["n"].sum()
    assert (n_total == 150).all()
    fig = plot_reliability(preds)
    for ax, dim in zip(fig.axes, L.DIMENSION_KEYS):
        assert legend_texts(ax) == [f"{m} (ECE {cal.loc[(m, dim), 'ece']:.2f})" for m in preds]
        ext = error_extents(ax)
        for k, m in enumerate(preds):
            s = long[(long.model == m) & (long.dimension == dim)]
            np.testing.assert_allclose(ext[k][:, 0], s["confidence"])
            np.testing.assert_allclose(ext[k][:, 1:], s[["acc_lo", "acc_hi"]].to_numpy())


def test_aso_distribution_bars_are_the_probabilities():
    rng = np.random.default_rng(8)
    dists = {f"v{i}": {k: rng.dirichlet(np.ones(9), 5) for k in ("pi_ref", "pi_star", "pi_theta")}
             | {"target": np.array([1.0, 2.5, 3.0, 4.5, 5.0])} for i in range(2)}
    fig = report.plot_aso_distributions(dists)
    assert len(fig.axes) == 10
    assert legend_texts(fig) == ["π_ref (SFT)", "π* (target)", "π_θ (ASO)", "human level"]
    for r, (vid, d) in enumerate(dists.items()):
        for c in range(5):
            ax = fig.axes[r * 5 + c]
            h = bar_heights(ax)
            for k, key in enumerate(("pi_ref", "pi_star", "pi_theta")):
                np.testing.assert_allclose(h[k], d[key][c])
            assert ax.lines[-1].get_xdata()[0] == L.level_index(d["target"][c])


def test_confusion_counts_and_parse_failures():
    df = simulated(40, 8.0, 3, fail_every=5)
    cm = confusion(df, "clarity_quality", "parsed_score")
    sub = df[df.dimension == "clarity_quality"]
    assert cm.to_numpy().sum() == sub["parsed_score"].notna().sum() == 32
    assert np.trace(cm.to_numpy()) >= 28  # a sharp model sits on the diagonal
    fails = parse_failure_table({"m": df})
    assert fails.loc["m", "Clarity Quality"] == 8 and fails.loc["m", "total"] == 40 and fails.loc["m", "rows"] == 200
    plot_confusions(df, "m", "argmax_score")


def test_explorer_driven_headless_follows_the_state_function():
    ex = widgets.Explorer(widgets.ExplorerParams(lam=1.0, ref_shape="peaked_elsewhere", s_star=2.0))
    before_pi, before_png = ex.state["pi_star"].copy(), ex.png
    ex.lam.value = 0.1
    after = widgets.explorer_state(lam=ex.lam.value, ref_shape="peaked_elsewhere", s_star=2.0)
    np.testing.assert_allclose(ex.state["pi_star"], after["pi_star"])
    assert not np.allclose(before_pi, ex.state["pi_star"])
    assert ex.png != before_png and ex.png.startswith(b"\x89PNG")
    # smaller λ moves mass towards s* = 2.0
    assert abs(ex.state["expected_score"] - 2.0) < abs(widgets.explorer_state(lam=1.0, s_star=2.0)["expected_score"] - 2.0)
    ex.ref_shape.value = "zero_mass"
    assert ex.state["zero_levels"] == ["2.0"] and ex.state["pi_star"][2] == 0.0
    assert "KL" in ex.summary.value
