"""Notebook 07's GRPO-vs-ASO section (``vqalib.report.compare``): sentences and figures computed from
the tables, on prediction rows whose differences are known."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd

from test_hierarchical_bootstrap import frame
from vqalib.schema.levels import DIMENSION_KEYS
from vqalib.report import compare


def runs_table(budget=45.0):
    rows = [{"method": m, "name": compare.seed_run_name(m, s), "seed": s, "steps": st, "train_seconds": budget + 0.3,
             "max_train_seconds": budget if m != "sft" else 0.0, "setup_s": 2.0, "stopped_by": "max_train_seconds",
             "n_clips": 60} for m, s, st in (("sft", 0, 1200), ("grpo", 0, 40), ("grpo", 1, 42), ("aso", 0, 150),
                                              ("aso", 1, 149))]
    return pd.DataFrame(rows)


def test_no_difference_is_said_plainly():
    a, b, c = frame(60, 0.7, 1), frame(60, 0.7, 2), frame(60, 0.7, 3)
    boot = compare.compare_methods({"sft": [a], "grpo": [b, c], "aso": [c, b]}, n_boot=200)
    text = compare.verdicts(runs_table(), boot, None)
    assert "45 s of training clock" in text and "Held-out clips: 60" in text and "200 resamples" in text
    assert text.count("this run detects no difference in ranking between") >= 1
    s = boot[(boot["kind"] == "difference") & (boot["metric"] == "srcc") & (boot["dimension"] == "mean")]
    s = s[s["name"] == "aso − grpo"].iloc[0]
    assert f"(differences from {s.ci_low:+.3f} to {s.ci_high:+.3f} are not ruled out)" in text
    only_boot = compare.compare_methods({"grpo": [b, c], "aso": [c, b]}, n_boot=200)
    only = compare.verdicts(runs_table(), only_boot, None)
    assert "**Verdict:** no mean-SRCC or mean-MAE interval excludes 0" in only
    reach = only_boot[(only_boot["kind"] == "difference") & (only_boot["metric"] == "srcc")
                      & (only_boot["dimension"] == "mean")][["ci_low", "ci_high"]].abs().to_numpy().max()
    assert f"the mean-SRCC intervals reach ±{reach:.3f}: differences that large are not ruled out" in only


def test_a_lone_per_dimension_interval_is_weighed_against_chance():
    a, b = frame(60, 0.7, 1), frame(60, 0.7, 2)
    boot = compare.compare_methods({"grpo": [a, b], "aso": [b, a]}, n_boot=100)
    row = (boot["kind"] == "difference") & (boot["metric"] == "srcc") & (boot["dimension"] == "clarity_quality")
    assert row.sum() == 1
    boot.loc[row, ["estimate", "ci_low", "ci_high"]] = (-0.075, -0.143, -0.012)  # as in a demo run: GRPO - SFT clarity
    text = compare.verdicts(runs_table(), boot, None)
    assert "per dimension, the SRCC interval excludes 0 for Clarity Quality (-0.075 [-0.143, -0.012])" in text
    assert "1 of the 5 per-dimension SRCC intervals do (named above), where 5% of 5, about 0.25, would by chance" in text
    assert "nor any per-dimension SRCC interval" not in text


def test_a_clear_difference_is_reported_with_its_interval_and_dimensions():
    good = [frame(80, 0.2, k) for k in (1, 2)]
    bad = [frame(80, 2.0, k) for k in (3, 4)]
    boot = compare.compare_methods({"sft": [bad[0]], "grpo": bad, "aso": good}, n_boot=200)
    text = compare.verdicts(runs_table(), boot, None)
    assert "The mean-SRCC interval excludes 0: ASO ranks the clips better" in text
    assert "per dimension, the SRCC interval excludes 0 for Motion Quality" in text
    assert "no mean-SRCC interval excludes 0" not in text
    table = compare.summary_table(runs_table(), boot)
    assert list(table.index) == ["SFT", "GRPO", "ASO"] and table.loc["GRPO", "steps"] == "41 (40–42)"
    assert table.loc["ASO", "budget s"] == 45.0


def test_a_calibration_difference_alone_is_not_called_no_difference():
    # the same ranking (identical predictions up to a shift of +0.5 level where that stays on the scale): the
    # SRCC difference is ~0, the MAE difference is not, and the verdict must say so
    a = [frame(80, 0.3, k) for k in (1, 2)]
    shifted = []
    for f in a:
        g = f.copy()
        g["parsed_score"] = np.where(g["parsed_score"] <= 4.5, g["parsed_score"] + 0.5, g["parsed_score"])
        shifted.append(g)
    boot = compare.compare_methods({"grpo": a, "aso": shifted}, n_boot=200)
    text = compare.verdicts(runs_table(), boot, None)
    assert "The mean-MAE interval excludes 0: GRPO's scores are closer to the MOS" in text
    assert "no mean-SRCC or mean-MAE interval excludes 0" not in text
    assert "**Verdict:** only the differences whose interval excludes 0" in text


def test_unequal_budgets_are_not_called_equal_compute():
    r = runs_table()
    r.loc[r["method"] == "aso", "max_train_seconds"] = 90.0
    a = frame(30, 0.7, 1)
    boot = compare.compare_methods({"grpo": [a], "aso": [a]}, n_boot=20)
    assert "**not** an equal-compute comparison" in compare.verdicts(r, boot, None)


def test_a_clock_that_overran_its_budget_is_flagged():
    a = frame(30, 0.7, 1)
    boot = compare.compare_methods({"grpo": [a], "aso": [a]}, n_boot=20)
    assert "not comparable" not in compare.verdicts(runs_table(), boot, None)  # 45.3 s on 45 s: fine
    r = runs_table()
    r.loc[(r["method"] == "grpo") & (r["seed"] == 0), ["train_seconds", "steps"]] = (37.5 * 45 / 20, 3)
    text = compare.verdicts(r, boot, None)
    assert "**Warning: the clock was not comparable.**" in text
    assert "grpo ran 84.4 training s on a 45 s budget (3 steps)" in text and "aso ran" not in text


def test_method_curve_figures_from_long_rows():
    rows = []
    for method, speed in (("grpo", 1), ("aso", 4)):
        for seed in (0, 1):
            for k, at in enumerate((0.0, 15.0, 30.0, 45.0)):
                for dim in [*DIMENSION_KEYS, "mean"]:
                    rows.append({"method": method, "seed": seed, "step": k * 10 * speed + seed, "at_seconds": at,
                                 "dimension": dim, "srcc": 0.3 + 0.01 * k * speed, "mae": 1.0 - 0.01 * k, "plcc": 0.3,
                                 "n_clips": 64})
    curve = pd.DataFrame(rows)
    for x in ("at_seconds", "step"):
        fig = compare.plot_method_curves(curve, x=x)
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]  # the legend's cell has no axes drawn
        titled = [ax.get_title() for ax in panels]
        assert titled[:2] == ["Motion Quality", "Motion Amplitude"] and titled[-2:] == ["SRCC (mean)", "MAE (mean)"]
        lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata())]
        assert len(lines) == (2 if x == "at_seconds" else 4)  # a mean line per method / a line per seed
        visible = panels
        # the legend sits in the grid's empty eighth cell, so every column keeps one width
        spare = [ax for ax in fig.axes if ax.get_visible() and not ax.axison]
        texts = [t.get_text() for t in spare[0].get_legend().get_texts()] if len(spare) == 1 else []
        assert {"GRPO", "ASO"} <= set(texts)
        if x == "step":  # one line per seed: the seeds are told apart by their dash pattern, named in the legend
            assert {"seed", "0", "1"} <= set(texts)
            assert len({ln.get_linestyle() for ln in lines}) == 2
        fig.canvas.draw()
        widths = {round(ax.get_position().width, 3) for ax in panels}
        assert len(widths) == 1, widths
        assert [ax.get_ylabel() for ax in visible] == ["held-out SRCC"] * 6 + ["MAE, 1-5 score scale (own y-range)"]
        assert "64 held-out clips per point" in fig._suptitle.get_text()
        # the six SRCC panels share one y-range, the MAE panel keeps its own
        ylims = {ax.get_title(): ax.get_ylim() for ax in visible}
        assert len({ylims[t] for t in titled[:-1]}) == 1
        assert ylims["MAE (mean)"] != ylims["SRCC (mean)"]
    # one dimension rising far above the others: every SRCC panel must show its range, not only its own
    wide = curve.copy()
    wide.loc[(wide["dimension"] == "clarity_quality") & (wide["step"] > 0), "srcc"] += 0.4
    fig = compare.plot_method_curves(wide)
    srcc = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_title() != "MAE (mean)"]
    assert all(ax.get_ylim()[1] >= 0.3 + 0.01 * 3 * 4 + 0.4 for ax in srcc)
    text = compare.verdicts(runs_table(), compare.compare_methods({"grpo": [frame(30, 0.5, 1)], "aso": [frame(30, 0.5, 1)]},
                                                                  n_boot=10), curve)
    assert "every curve starts from mean SRCC 0.300 on the curves' 64 held-out clips (the first 64 of the split)." in text
    # with the SFT row in the table, its number on the full split is named beside the curves' one
    sft = compare.compare_methods({"sft": [frame(30, 0.5, 1)], "grpo": [frame(30, 0.5, 1)], "aso": [frame(30, 0.5, 2)]},
                                  n_boot=10)
    full = sft[(sft["kind"] == "method") & (sft["name"] == "sft") & (sft["metric"] == "srcc") & (sft["dimension"] == "mean")]
    text = compare.verdicts(runs_table(), sft, curve)
    assert (f"(the first 64 of the split); the SFT row above, on all 30 clips, has {full['estimate'].iloc[0]:.3f}. "
            "The curves show each method's course on that subset") in text


def test_seed_names_round_trip():
    assert compare.seed_run_name("grpo", 0) == "grpo" and compare.seed_run_name("grpo", 2) == "grpo_seed2"
    assert compare.method_of("aso_seed3") == "aso" and compare.method_of("aso") == "aso"
    assert compare.is_seed_run("aso_seed3") and not compare.is_seed_run("aso") and not compare.is_seed_run("base")


def test_a_run_with_too_few_steps_gets_no_verdict():
    a = frame(30, 0.7, 1)
    boot = compare.compare_methods({"grpo": [a], "aso": [a]}, n_boot=20)
    r = runs_table()
    r.loc[(r["method"] == "grpo") & (r["seed"] == 0), "steps"] = 1  # a busy machine: one step in the whole budget
    text = compare.verdicts(r, boot, None)
    assert "**Warning: too few steps to compare.** grpo took 1 step(s) in its 45 s" in text
    assert "**Verdict:** none: see the warning(s) above" in text
    assert "no detectable difference between the methods" not in text
    assert "too few steps" not in compare.verdicts(runs_table(), boot, None)
