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


def _by_name(v):
    return {f"{c.a} − {c.b}": c for c in v.contrasts}


def test_no_difference_is_said_plainly():
    a, b, c = frame(60, 0.7, 1), frame(60, 0.7, 2), frame(60, 0.7, 3)
    boot = compare.compare_methods({"sft": [a], "grpo": [b, c], "aso": [c, b]}, n_boot=200)
    v = compare.read_verdicts(runs_table(), boot, None)
    assert v.equal_budget and v.budgets == [45.0] and (v.n_clips, v.n_boot) == (60, 200)
    assert [(g.method, g.n_seeds) for g in v.methods] == [("aso", 2), ("grpo", 2)]
    s = boot[(boot["kind"] == "difference") & (boot["metric"] == "srcc") & (boot["dimension"] == "mean")]
    s = s[s["name"] == "aso − grpo"].iloc[0]
    ag = _by_name(v)["ASO − GRPO"]
    assert ag.srcc == compare.Interval(s.estimate, s.ci_low, s.ci_high, None) and ag.srcc.defined
    assert ag.ranks_better is None and ag.closer_scores is None  # the intervals contain 0: no difference detected
    only_boot = compare.compare_methods({"grpo": [b, c], "aso": [c, b]}, n_boot=200)
    only = compare.read_verdicts(runs_table(), only_boot, None)
    assert only.verdict in ("no_difference", "no_difference_but_dimensions")
    reach = only_boot[(only_boot["kind"] == "difference") & (only_boot["metric"] == "srcc")
                      & (only_boot["dimension"] == "mean")][["ci_low", "ci_high"]].abs().to_numpy().max()
    assert only.reach == reach


def test_a_lone_per_dimension_interval_is_weighed_against_chance():
    a, b = frame(60, 0.7, 1), frame(60, 0.7, 2)
    boot = compare.compare_methods({"grpo": [a, b], "aso": [b, a]}, n_boot=100)
    row = (boot["kind"] == "difference") & (boot["metric"] == "srcc") & (boot["dimension"] == "clarity_quality")
    assert row.sum() == 1
    boot.loc[row, ["estimate", "ci_low", "ci_high"]] = (-0.075, -0.143, -0.012)  # as in a demo run: GRPO - SFT clarity
    v = compare.read_verdicts(runs_table(), boot, None)
    assert _by_name(v)["ASO − GRPO"].dimensions == [("clarity_quality", compare.Interval(-0.075, -0.143, -0.012, None))]
    assert (v.n_dimensions_excluding, v.n_dimension_intervals) == (1, 5)
    assert v.verdict == "no_difference_but_dimensions"  # one of five, where 0.25 would by chance: a lead, not a result


def test_a_clear_difference_is_reported_with_its_interval_and_dimensions():
    good = [frame(80, 0.2, k) for k in (1, 2)]
    bad = [frame(80, 2.0, k) for k in (3, 4)]
    boot = compare.compare_methods({"sft": [bad[0]], "grpo": bad, "aso": good}, n_boot=200)
    v = compare.read_verdicts(runs_table(), boot, None)
    ag = _by_name(v)["ASO − GRPO"]
    assert ag.ranks_better == "ASO" and ag.srcc.excludes_zero and ag.srcc.estimate > 0
    assert "motion_quality" in [d for d, _ in ag.dimensions]
    assert v.verdict == "only_those_named"
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
    v = compare.read_verdicts(runs_table(), boot, None)
    ag = _by_name(v)["ASO − GRPO"]
    assert ag.ranks_better is None and ag.closer_scores == "GRPO" and ag.mae.estimate > 0
    assert v.verdict == "only_those_named"


def test_unequal_budgets_are_not_called_equal_compute():
    r = runs_table()
    r.loc[r["method"] == "aso", "max_train_seconds"] = 90.0
    a = frame(30, 0.7, 1)
    boot = compare.compare_methods({"grpo": [a], "aso": [a]}, n_boot=20)
    v = compare.read_verdicts(r, boot, None)
    assert v.budgets == [45.0, 90.0] and not v.equal_budget


def test_a_clock_that_overran_its_budget_is_flagged():
    a = frame(30, 0.7, 1)
    boot = compare.compare_methods({"grpo": [a], "aso": [a]}, n_boot=20)
    assert compare.read_verdicts(runs_table(), boot, None).overruns == []  # 45.3 s on 45 s: fine
    r = runs_table()
    r.loc[(r["method"] == "grpo") & (r["seed"] == 0), ["train_seconds", "steps"]] = (37.5 * 45 / 20, 3)
    v = compare.read_verdicts(r, boot, None)
    assert v.overruns == [compare.SlowRun("grpo", 3, 37.5 * 45 / 20, 45.0)] and v.verdict == "none"


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
    start = compare.read_verdicts(runs_table(), compare.compare_methods(
        {"grpo": [frame(30, 0.5, 1)], "aso": [frame(30, 0.5, 1)]}, n_boot=10), curve).curve_start
    assert start == compare.CurveStart((0.3, 0.3), [64], None)
    # with the SFT row in the table, its number on the full split is named beside the curves' one
    sft = compare.compare_methods({"sft": [frame(30, 0.5, 1)], "grpo": [frame(30, 0.5, 1)], "aso": [frame(30, 0.5, 2)]},
                                  n_boot=10)
    full = sft[(sft["kind"] == "method") & (sft["name"] == "sft") & (sft["metric"] == "srcc") & (sft["dimension"] == "mean")]
    start = compare.read_verdicts(runs_table(), sft, curve).curve_start
    assert start.n_clips == [64] and start.sft_full_split == full["estimate"].iloc[0]


def test_seed_names_round_trip():
    assert compare.seed_run_name("grpo", 0) == "grpo" and compare.seed_run_name("grpo", 2) == "grpo_seed2"
    assert compare.method_of("aso_seed3") == "aso" and compare.method_of("aso") == "aso"
    assert compare.is_seed_run("aso_seed3") and not compare.is_seed_run("aso") and not compare.is_seed_run("base")


def test_a_run_with_too_few_steps_gets_no_verdict():
    a = frame(30, 0.7, 1)
    boot = compare.compare_methods({"grpo": [a], "aso": [a]}, n_boot=20)
    r = runs_table()
    r.loc[(r["method"] == "grpo") & (r["seed"] == 0), "steps"] = 1  # a busy machine: one step in the whole budget
    v = compare.read_verdicts(r, boot, None)
    assert v.too_few_steps == [compare.SlowRun("grpo", 1, 45.3, 45.0)] and v.overruns == []
    assert v.verdict == "none"
    assert compare.read_verdicts(runs_table(), boot, None).too_few_steps == []


def test_the_renderer_writes_the_sentences_it_always_wrote():
    """One case through every kind of paragraph (budget, both warnings, curve start beside the SFT row, three
    contrasts, verdict): the text of ``verdicts`` before it became ``read_verdicts`` + ``render_verdicts``."""
    good = [frame(40, 0.2, k) for k in (1, 2)]
    bad = [frame(40, 2.0, k) for k in (3, 4)]
    boot = compare.compare_methods({"sft": [bad[0]], "grpo": bad, "aso": good}, n_boot=50)
    r = runs_table()
    r.loc[(r["method"] == "grpo") & (r["seed"] == 1), ["train_seconds", "steps"]] = (60.0, 3)
    curve = pd.DataFrame([{"method": m, "seed": s, "step": 0, "at_seconds": 0.0, "dimension": "mean",
                           "srcc": 0.25 + 0.01 * s, "mae": 1.0, "plcc": 0.3, "n_clips": 16}
                          for m in ("grpo", "aso") for s in (0, 1)])
    assert compare.verdicts(r, boot, curve) == RENDERED


#: ``verdicts`` of the case in :func:`test_the_renderer_writes_the_sentences_it_always_wrote`, written by the code
#: before the split (commit 00e7135).
RENDERED = "\n\n".join([
    "**Budget.** Each seed of GRPO and ASO trained for 45 s of training clock from the same SFT"
    " checkpoint (evaluation and setup excluded; setup includes ASO's π_ref precompute). ASO: 2 seed(s),"
    " 149–150 steps in 45.3–45.3 training s (setup 2.0 s); GRPO: 2 seed(s), 3–40 steps in 45.3–60.0"
    " training s (setup 2.0 s).",
    "**Warning: the clock was not comparable.** grpo_seed1 ran 60.0 training s on a 45 s budget (3 steps)"
    " (more than 1.25× the budget: a step took a large share of it, e.g. on a busy machine). Rerun on an"
    " idle machine before reading the differences below as equal-compute.",
    "**Warning: too few steps to compare.** grpo_seed1 took 3 step(s) in its 45 s (fewer than 5; the"
    " first warm-up step has learning rate 0, so such a run is close to the SFT checkpoint itself). The"
    " differences below do not compare trained methods; rerun on an idle machine or with a larger"
    " BUDGET_S.",
    "Held-out clips: 40; intervals: 95% hierarchical bootstrap (50 resamples; seeds and clips resampled,"
    " clips shared by the methods); a parse failure is scored as the scale midpoint.",
    "At step 0 (the SFT checkpoint) every curve starts from mean SRCC 0.250–0.260 on the curves' 16"
    " held-out clips (the first 16 of the split); the SFT row above, on all 40 clips, has 0.611. The"
    " curves show each method's course on that subset (per dimension it can sit several hundredths from"
    " the full split); the comparison is the table and the intervals below.",
    "**ASO − GRPO**: mean SRCC +0.397 [+0.322, +0.494], mean MAE -0.922 [-1.009, -0.839] (lower is"
    " better). The mean-SRCC interval excludes 0: ASO ranks the clips better; per dimension, the SRCC"
    " interval excludes 0 for Motion Quality (+0.368 [+0.134, +0.613]), Motion Amplitude (+0.503 [+0.307,"
    " +0.859]), Aesthetic Quality (+0.522 [+0.316, +0.688]), Content Quality (+0.251 [+0.137, +0.447]),"
    " Clarity Quality (+0.341 [+0.174, +0.578]). The mean-MAE interval excludes 0: ASO's scores are"
    " closer to the MOS on average (a difference in calibration, not necessarily in ranking).",
    "**ASO − SFT**: mean SRCC +0.377 [+0.322, +0.459], mean MAE -0.920 [-1.027, -0.852] (lower is"
    " better). The mean-SRCC interval excludes 0: ASO ranks the clips better; per dimension, the SRCC"
    " interval excludes 0 for Motion Quality (+0.251 [+0.129, +0.410]), Motion Amplitude (+0.632 [+0.422,"
    " +0.902]), Aesthetic Quality (+0.564 [+0.326, +0.765]), Content Quality (+0.211 [+0.121, +0.349]),"
    " Clarity Quality (+0.227 [+0.133, +0.389]). The mean-MAE interval excludes 0: ASO's scores are"
    " closer to the MOS on average (a difference in calibration, not necessarily in ranking).",
    "**GRPO − SFT**: mean SRCC -0.020 [-0.101, +0.051], mean MAE +0.002 [-0.074, +0.056] (lower is"
    " better). The mean-SRCC interval contains 0: this run detects no difference in ranking between GRPO"
    " and SFT (differences from -0.101 to +0.051 are not ruled out); no dimension's SRCC interval"
    " excludes 0. The mean-MAE interval contains 0.",
    "**Verdict:** none: see the warning(s) above; the runs named there are not comparable.",
])
