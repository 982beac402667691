"""What the notebooks log, draw and say, as library functions (issue 22, part 4): the metrics of notebooks
02-07 and the sentences they print are computed here from made-up frames whose answers are known, so a
change of a metric's name or value, or of a number in a sentence, fails a unit test, not only the smoke chain.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from vqalib.data.agreement import PhaseComparison
from vqalib.report import agreement_summary, aso_diagnostics as diag, derivation, stage_files, training
from vqalib.schema.levels import DIMENSION_KEYS, LEVEL_STRINGS

# ------------------------------------------------------------------ training curves, metrics, sentences (04-06)


def _result(rows):
    return SimpleNamespace(log_history=rows)


def test_seed_log_frames_keep_the_stage_keys_and_name_the_seed():
    results = {3: _result([{"step": 1, "loss": 2.0, "reward": 1.0, "other": 9}, {"step": 2, "reward": 2.0},
                           {"epoch": 1.0}]),
               4: _result([{"step": 1, "loss": 1.5}])}
    first, every = training.seed_log_frames(results, "grpo", first=3)
    assert list(first.columns) == ["step", "loss", "reward"] and len(first) == 2
    assert list(every["seed"]) == ["3", "3", "4"] and "other" not in every.columns


def test_budget_metrics_name_method_key_and_seed():
    budgets = pd.DataFrame([{"seed": 0, "steps": 7, "train_seconds": 2.1, "setup_s": 5.0, "stopped_by": "max_train_seconds",
                             "extra": 1}, {"seed": 1, "steps": 6, "train_seconds": 2.0, "setup_s": 1.0,
                                           "stopped_by": "max_steps", "extra": 2}])
    m = training.budget_metrics("aso", budgets)
    assert m["aso/steps/seed0"] == 7 and m["aso/stopped_by/seed1"] == "max_steps" and len(m) == 8


def test_sft_metrics_and_sentence():
    losses = pd.DataFrame({"step": [20, 40, 60], "loss": [3.0, 2.0, 1.25]})
    assert training.sft_metrics(losses, 12.4) == {"sft/train_s": 12.4, "sft/steps": 60, "sft/first_loss": 3.0,
                                                  "sft/final_loss": 1.25}
    assert training.sft_sentence(losses, 12.4) == "trained 60 steps in 12 s; loss 3.000 -> 1.250"


def test_grpo_metrics_count_every_completion_and_the_reading_compares_thirds():
    curves = pd.DataFrame({"step": [1, 2, 3, 4, 5, 6], "reward": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                           "n_unparsable": [2, 1, 0, 0, 0, 1], "n_completions": [4] * 6})
    m = training.grpo_metrics(curves, 30.0, 2, 10.0, 12)
    assert (m["grpo/steps"], m["grpo/first_reward"], m["grpo/final_reward"]) == (6, 1.0, 6.0)
    assert (m["grpo/unparsable_completions"], m["grpo/completions"], m["grpo/curve_rows"]) == (4, 24, 12)
    text = training.grpo_reading(curves, 0, 2, 30.0)
    assert "seed 0: 6 steps; 4 of 24 sampled answers" in text and "all 2 seed(s) took 30 s" in text
    assert "first third of the logged points 1.50, last third 5.50 (seed 0)" in text


def test_aso_metrics_and_the_floor_of_the_ce():
    curves = pd.DataFrame({"step": [10, 20], "loss_score": [3.0, 2.5], "loss_score_levels": [2.5, 2.25],
                           "loss_outside": [0.5, 0.25], "target_entropy": [2.0, 1.0], "kl_to_target": [0.5, 0.25]})
    every = pd.concat([curves.assign(seed="0"), curves.assign(kl_to_target=[0.75, 0.125], seed="1")])
    m = training.aso_metrics(curves, 9.0, 2, 10.0, 30)
    assert m["aso/final_loss_score"] == m["aso/final_loss_score_levels"] + m["aso/final_loss_outside"]
    assert (m["aso/target_entropy"], m["aso/final_kl_to_target"], m["aso/steps"]) == (1.5, 0.25, 20)
    text = training.aso_ce_reading(curves, every)
    assert "averages 1.500 nats" in text and "near 2.25" in text and "was 0.500 at the first" in text
    assert "within 0.125–0.750 over every seed" in text


def test_stage_curve_panels_follow_the_spec():
    frame = pd.DataFrame({"step": [1, 2, 1, 2], "loss": [2.0, 1.0, 2.5, 1.5], "kl": [0.0, 0.1, 0.0, 0.2],
                          "seed": ["0", "0", "1", "1"]})
    fig = training.plot_stage_curves("grpo", frame)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles == ["kl", "loss"]  # the spec's order; panels of keys not logged are left out
    assert fig.axes[0].get_ylabel() == training.STAGE_CURVES["grpo"].panels["kl"]


def test_held_out_srcc_metrics_and_the_bar_sentence():
    table = pd.DataFrame({"model": ["sft"] * 5 + ["base"] * 5, "metric": "srcc", "dimension": DIMENSION_KEYS * 2,
                          "value": [0.7, 0.65, 0.3, float("nan"), 0.6, *[0.0] * 5], "ci_low": 0.0, "ci_high": 1.0})
    srcc = training.model_srcc(table, "sft")
    rows = pd.DataFrame({"video_id": ["a", "a", "b"], "parse_status": ["ok", "unparsable", "ok"]})
    m = training.sft_heldout_metrics(srcc, rows, 0.6)
    assert m["sft/n_dims_srcc_ge_0.6"] == 3 and m["sft/parse_failures"] == 1 and m["sft/n_test_clips"] == 2
    assert m[f"sft/test_srcc/{DIMENSION_KEYS[0]}"] == 0.7
    text = training.bar_sentence(srcc, 0.6)
    assert text.startswith("held-out SRCC >= 0.6 on 3 of 5 dimensions; below it: ")
    assert DIMENSION_KEYS[2] in text and DIMENSION_KEYS[3] in text and DIMENSION_KEYS[0] not in text
    fig = training.plot_srcc_by_model(table, 0.6)
    assert len(fig.axes[0].get_legend().get_texts()) == 2


def test_pretrain_summary_of_a_build_record():
    record = {"config": {"steps": 300, "n_clips": 800}, "heldout_r2": {"camera_speed": 0.4, "blur": 0.45},
              "render_seconds": 50.0, "train_seconds": 40.4, "loss_first": 1.0, "loss_last": 0.5}
    m = training.pretrain_metrics(record, 2.0)
    assert m == {"pretrain/seconds": 2.0, "pretrain/steps": 300, "pretrain/n_clips": 800,
                 "pretrain/heldout_r2/camera_speed": 0.4, "pretrain/heldout_r2/blur": 0.45}
    assert training.pretrain_sentence(record) == ("300 steps on 800 unrated clips (built in 90 s, or read from the "
                                                  "cache); loss 1.00 -> 0.50 (standardised targets)")
    assert training.pretrain_record("tiny") is None  # the random preset has no pre-training stage


# ------------------------------------------------------------------ notebook 06's diagnostics


def test_skip_reason_names_why_a_cached_pi_ref_is_missing():
    assert diag.skip_reason(SimpleNamespace(on_policy=False, target_position="score")) is None
    assert "no cached pi_ref to search" in diag.skip_reason(SimpleNamespace(on_policy=True, target_position="score"),
                                                             "search")
    assert "nine keywords" in diag.skip_reason(SimpleNamespace(on_policy=False, target_position="keyword"))


def _health(outside):
    from vqalib.method.aso import pi_ref_health

    logp = torch.log_softmax(torch.zeros(4, 5, 9, dtype=torch.float64), -1)
    return pi_ref_health(logp, torch.full((4, 5), 3.0, dtype=torch.float64), outside=outside)


def test_health_text_lists_the_problems_and_the_metrics_keep_the_numbers():
    sick = _health(torch.full((4, 5), 0.9, dtype=torch.float64))
    text = diag.health_text(sick)
    assert text.startswith("pi_ref health over 20 clip x dimension items") and "\nproblems:\n- pi_ref is mostly off" in text
    m = diag.health_metrics(sick)
    assert m["aso/pi_ref_health/off_level_mean"] == pytest.approx(0.9)
    assert not any(k.endswith("_by_dim") for k in m)  # the per-dimension lists are not metrics
    from vqalib.method.aso import pi_ref_health_problems

    healthy = {**sick, "off_level_mean": 0.0}
    if not pi_ref_health_problems(healthy):
        assert diag.health_text(healthy).endswith("\nno problem found")


def test_outside_mass_costs_minus_log_of_what_is_left():
    table = diag.outside_mass_table((0.0, 0.78, 0.9998))
    assert table["loss, renormalised"].nunique() == 1  # renormalising hides the mass off the levels
    extra = table["loss, raw (used)"] - table["loss, renormalised"]
    assert np.allclose(extra, [-math.log(1 - o) for o in (0.0, 0.78, 0.9998)])


def test_multi_rater_case_picks_the_widest_disagreement():
    examples = [SimpleNamespace(video_id="a", ratings={"clarity_quality": [3.0, 3.5, 3.0]}, scores={"clarity_quality": 3.0}),
                SimpleNamespace(video_id="b", ratings={"clarity_quality": [1.0, 5.0, 3.0], "motion_quality": []},
                                scores={"clarity_quality": 3.0, "motion_quality": 2.0})]
    caption, table = diag.multi_rater_case(examples, 1.0, 1.0)
    assert caption == "clip b, clarity_quality: raters [1.0, 5.0, 3.0], label 3.0"
    assert list(table.columns) == list(LEVEL_STRINGS) and list(table.index) == ["mean label", "multi-rater"]
    assert np.allclose(table.sum(axis=1), 1.0)
    assert table.loc["multi-rater", "3.0"] < table.loc["mean label", "3.0"]  # the raters' spread widens pi*
    with pytest.raises(ValueError, match="no clip"):
        diag.multi_rater_case([examples[1].__class__(video_id="c", ratings={"x": []}, scores={})], 1.0, 1.0)


def test_floor_config_is_a_short_fixed_run_beside_the_seeds():
    from vqalib.train.common import load_config

    cfg = load_config("aso", "env/train_configs/aso_tiny.yaml", {"max_train_seconds": 10,
                                                                 "lr_scheduler": "constant_with_warmup"})
    eps_cfg = diag.floor_config(cfg, 0.05, 2, "runs/r")
    assert (eps_cfg.eps, eps_cfg.max_steps, eps_cfg.output_dir) == (0.05, 2, "runs/r/checkpoints/aso_eps")
    assert (eps_cfg.warmup_steps, eps_cfg.max_train_seconds, eps_cfg.eval_every_seconds, eps_cfg.report_to,
            eps_cfg.logging_steps) == (1, 0.0, 0.0, "none", 1)
    assert eps_cfg.pi_ref_path == cfg.pi_ref_path and eps_cfg.lam == cfg.lam
    with pytest.raises(ValueError, match=r"notebook 06 \(EPS, EPS_STEPS\).*eps=0.2"):
        diag.floor_config(cfg, 0.2, 2, "runs/r")
    models = diag.floor_models(cfg, eps_cfg, 30)
    assert list(models) == ["π_θ after ASO (30 steps)", "π_θ after ASO, ε=0.05 (2 steps)"]


def _zero_mass(models):
    case = pd.DataFrame([{"level": "3.0", "distribution": name, "probability": p}
                         for name, p in zip([training.REF, training.STAR0, *models, training.star_name(0.05)],
                                            (1e-4, 1e-3, 2e-4, 8e-4, 0.06))])
    counts = pd.DataFrame({"threshold": [1e-3, 1e-2], "n_pairs": [2, 5], "n_total": 100,
                           models[0]: [1e-4, 2e-4], models[1]: [4e-4, 1e-3]})
    return SimpleNamespace(eps=0.05, at_label=lambda: dict(zip(case["distribution"], case["probability"])),
                           counts=counts)


def test_zero_mass_metrics_and_the_floor_reading():
    models = {"π_θ after ASO (30 steps)": "a", "π_θ after ASO, ε=0.05 (2 steps)": "b"}
    zm = _zero_mass(list(models))
    m = diag.zero_mass_metrics(zm, models)
    assert m == {"aso/zero_mass/at_label/pi_ref": 1e-4, "aso/zero_mass/at_label/pi_star": 1e-3,
                 "aso/zero_mass/at_label/aso": 2e-4, "aso/zero_mass/at_label/aso_eps": 8e-4,
                 "aso/zero_mass/at_label/pi_star_eps": 0.06, "aso/zero_mass/n_below_0.001": 2,
                 "aso/zero_mass/n_below_0.01": 5}
    text = diag.floor_reading(zm, models, 2, 30)
    assert "trained 2 steps on the floored target gives the human level 8.0e-04, 4.00x" in text
    assert "over the 5 pairs with π_ref(s*) < 0.01: 1.0e-03 vs 2.0e-04 (5.00x)." in text
    assert "differ in steps (2 vs 30)" in text


# ------------------------------------------------------------------ notebook 02


def test_agreement_metrics_name_phase_dimension_and_statistic():
    table = pd.DataFrame([{"phase": "final", "dimension": "clarity_quality", "relaxed_match": 0.9,
                           "alpha_interval": 0.8, "alpha_ordinal": 0.7, "n_videos": 3}])
    assert agreement_summary.agreement_metrics(table, suffix="_raw") == {
        "final_clarity_quality_relaxed_match_raw": 0.9, "final_clarity_quality_alpha_interval_raw": 0.8,
        "final_clarity_quality_alpha_ordinal_raw": 0.7}


def test_phase_report_and_metrics():
    better = {"alpha_interval": PhaseComparison("alpha_interval", {"a": True, "b": True}),
              "alpha_ordinal": PhaseComparison("alpha_ordinal", {"a": True, "b": True})}
    text = agreement_summary.phase_report(better)
    assert text.splitlines()[0] == "alpha_interval: final > pilot on 2 of 2 dimensions"
    assert text.endswith("on every dimension (interval and ordinal).")
    assert agreement_summary.phase_metrics(better)["final_alpha_interval_above_pilot"] == {"a": True, "b": True}
    mixed = {"alpha_interval": PhaseComparison("alpha_interval", {"a": False, "b": True}),
             "alpha_ordinal": PhaseComparison("alpha_ordinal", {"a": True, "b": None})}
    text = agreement_summary.phase_report(mixed)
    assert "alpha_interval: final > pilot on 1 of 2 dimensions; NOT on ['a']" in text
    assert "undefined (α is NaN in a phase) on ['b']" in text and text.endswith("so no comparison there.")
    worse = {k: PhaseComparison(k, {"a": False}) for k in ("alpha_interval", "alpha_ordinal")}
    assert agreement_summary.phase_report(worse).endswith("see the lines above.")
    assert agreement_summary.phase_metrics(worse)["final_alpha_ordinal_above_pilot_all"] is False


def test_raw_tolerance_from_the_parameter_the_scale_or_an_error():
    assert agreement_summary.raw_tolerance_of({"scale": [0, 100]}, 1.0, 7.0, "d") == 7.0
    assert agreement_summary.raw_tolerance_of({"scale": [0, 100]}, 1.0, 0.0, "d") == 25.0
    with pytest.raises(ValueError, match="^/data/x: ratings carry raw_score but dataset.json records no scale"):
        agreement_summary.raw_tolerance_of({}, 1.0, 0.0, "/data/x")
    assert agreement_summary.has_raw_scale(pd.DataFrame({"raw_score": [1.0, 2.0]}))
    assert not agreement_summary.has_raw_scale(pd.DataFrame({"raw_score": [1.0, None]}))
    assert not agreement_summary.has_raw_scale(pd.DataFrame({"score": [1.0]}))
    side = pd.DataFrame({"statistic": ["alpha_interval", "relaxed_match", "alpha_ordinal"],
                         "raw_minus_grid": [0.01, -0.5, -0.02]})
    assert agreement_summary.largest_alpha_change(side) == "largest |α(raw) − α(grid)|: 0.020"


# ------------------------------------------------------------------ notebook 03


def test_lambda_beta_readings_table():
    uniform = torch.full((9,), 1 / 9, dtype=torch.float64)
    fig, table = derivation.lambda_beta_readings({"C": (1.0, 1.0), "5.1": (0.1, 1.0)}, 3.0, {"uniform": uniform})
    assert list(table["reading"]) == ["C", "5.1"] and list(table["β/λ"]) == [1.0, 10.0]
    weights = np.exp(-np.abs(np.arange(1.0, 5.01, 0.5) - 3.0))
    assert table["π*(s*)"].iloc[0] == pytest.approx(1 / weights.sum())  # uniform pi_ref: pi* ∝ exp(-|s - s*|)
    assert table["E_π*[s]"].iloc[0] == pytest.approx(3.0) and table["π*(s*)"].iloc[1] > 0.98
    assert len(fig.axes) == 1


def _bandit_frames():
    names = derivation.method_names(8, 0.1)
    summary = pd.DataFrame({"tv_to_star": [0.01, 0.3, 0.25, 0.02], "expected_reward": [-0.6, -0.2, -0.3, -0.6],
                            "steps_to_tv_0.05": [20.0, np.nan, np.nan, 40.0]}, index=["ASO", *names])
    g = np.array([2, 4, 8, 16, 32])
    gv = pd.DataFrame({"estimator": "grpo", "group_size": g, "variance": 1.0 / g})
    return summary, gv


def test_bandit_metrics_and_findings():
    summary, gv = _bandit_frames()
    assert derivation.method_names(8, 0.1) == ("GRPO G=8", "GRPO G=8 KL=0.1", "PG on J(λ) G=8")
    m = derivation.bandit_metrics(summary, gv, 8, 0.1, 50, -0.6)
    assert m["grpo_var_loglog_slope"] == pytest.approx(-1.0) and m["grpo_var_G32"] == pytest.approx(1 / 32)
    assert (m["pg_steps_to_tv_005"], m["grpo_kl_final_reward"], m["bandit_items"]) == (40.0, -0.3, 50)
    text = derivation.bandit_findings(summary, gv, 8, 0.1, 150, -0.6)
    assert "ASO reaches TV(πθ, π*) = 0.0100 after 150 updates (below 0.05 from update 20)" in text
    assert "It needs clearly more updates than ASO" in text  # 40 > 1.25 x 20
    assert "log-log slope -1.00" in text
    summary.loc["PG on J(λ) G=8", "steps_to_tv_0.05"] = 25.0
    assert "sampling does not make it slower here" in derivation.bandit_findings(summary, gv, 8, 0.1, 150, -0.6)


# ------------------------------------------------------------------ notebook 07's files


def test_table1_reads_the_stages_not_the_seeds_or_benchmarks(tmp_path):
    from vqalib.eval.predictions_file import make_manifest, rows_from_distributions, write_predictions
    from vqalib.video.frames import SamplingConfig

    with pytest.raises(FileNotFoundError, match="no predictions files in .*run notebooks 04-06"):
        stage_files.table1_predictions(str(tmp_path))
    d = np.full((2, 9), 1 / 9)
    rows = rows_from_distributions(["a", "b"], DIMENSION_KEYS[0], d, targets=np.array([3.0, 4.0]))
    man = make_manifest("m", SamplingConfig(fps=2.0, max_frames=8), {})
    for name in ("aso", "sft", "aso_seed1", "tiny@konvid", "other@live_vqc"):
        write_predictions(tmp_path / "predictions" / f"{name}.jsonl", rows, man)
    preds, manifests = stage_files.table1_predictions(str(tmp_path))
    assert list(preds) == ["sft", "aso"] and list(manifests) == ["sft", "aso"]
    table = stage_files.manifest_table(preds, manifests)
    assert table.loc["sft", "rows"] == 2 and table.loc["aso", "videos"] == 2 and table.loc["sft", "fps"] == 2.0
    assert list(stage_files.benchmark_predictions(str(tmp_path), "KoNViD")) == ["tiny"]
    assert list(stage_files.stage_predictions(str(tmp_path), ("sft", "grpo"))) == ["sft"]  # grpo: no file
