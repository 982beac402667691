"""The headless smoke chain: every numbered notebook run once, in order, with its smoke parameters
(the session fixture ``smoke_run`` in ``tests/conftest.py``, one run shared by every test here), and
what each notebook logged in it (``<run>/<stem>/metrics.json``)."""

from __future__ import annotations

import math

import pytest

from vqalib.notebook_runner import list_notebooks
from vqalib.schema import levels as L

NOTEBOOKS = list_notebooks()


@pytest.mark.notebooks
def test_smoke_chain_runs_every_notebook(smoke_run):
    assert smoke_run.error is None, f"smoke chain failed: {smoke_run.error}"
    ran = [e["notebook"] for e in smoke_run.manifest["notebooks"]]
    assert ran == [nb.name for nb in NOTEBOOKS]
    assert all(e["status"] == "ok" for e in smoke_run.manifest["notebooks"])
    for nb in NOTEBOOKS:
        executed = smoke_run.root / "notebooks" / nb.name
        assert executed.is_file()
        figs = list((smoke_run.root / nb.stem / "figures").glob("*.png"))
        assert figs, f"{nb.stem} saved no figure in the run folder"


@pytest.mark.notebooks
def test_smoke_chain_notebook_01_metrics(smoke_run):
    m = smoke_run.metrics("01_data_statistics")
    assert m["n_videos"] == 32 and m["n_raters"] == 12 and m["ratings_per_video_dimension"] >= 3
    assert set(m["levels_used"]) == set(L.DIMENSION_KEYS) and min(m["levels_used"].values()) >= 7
    assert 0 < m["rationale_words_mean"] < m["rationale_tokens_mean"]


@pytest.mark.notebooks
def test_smoke_chain_notebook_02_final_alpha_above_pilot(smoke_run):
    m = smoke_run.metrics("02_annotator_agreement")
    assert m["final_alpha_interval_above_pilot_all"] is True and m["final_alpha_ordinal_above_pilot_all"] is True
    for dim in L.DIMENSION_KEYS:
        assert m[f"final_{dim}_alpha_interval"] > m[f"pilot_{dim}_alpha_interval"]
    assert m["rater_bias_corr_with_truth"] > 0.5


@pytest.mark.notebooks
def test_notebook_03_smoke_metrics(smoke_run):
    """What notebook 03 logged in the smoke chain: the derivation checks held and the comparison says what its text says."""
    m = smoke_run.metrics("03_aso_derivation")
    assert m["closed_form_vs_scipy_max_abs"] < 5e-3
    assert m["aso_final_tv"] < 0.05 and m["aso_steps_to_tv_005"] <= 40
    assert m["grpo_final_reward"] > m["aso_final_reward"] and m["grpo_final_tv"] > 0.3
    assert m["pg_final_tv"] < 0.05
    assert m["grpo_var_G32"] < m["grpo_var_G2"] and m["grpo_var_loglog_slope"] < -0.5
    assert m["bandit_items"] > 0
    assert abs(m["target_expected_reward"] - m["aso_final_reward"]) < 0.1


def test_notebook_03_headless_shows_the_explorer_figure_and_no_live_widget(smoke_run):
    """The executed copy holds the explorer's starting figure and the headless note, and no widget view
    (a cell displaying one can leave nbclient waiting forever: jupyter/nbclient#312)."""
    import nbformat

    nb = nbformat.read(smoke_run.root / "notebooks" / "03_aso_derivation.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "live_explorer" in c.source)
    kinds = [k for o in cell.outputs for k in o.get("data", {})]
    assert "image/png" in kinds and "text/markdown" in kinds
    assert "application/vnd.jupyter.widget-view+json" not in kinds


# ----------------------------------------------------------------------------- smoke-chain metrics
# What notebooks 04-07 logged in the smoke chain (tiny model, a few steps: the numbers check the
# plumbing, not learning; learning is measured on the default run, see docs/training.md).

SMOKE_EVAL_CLIPS = 6  # EVAL_LIMIT in notebooks/params/0[4-6]_*.smoke.yaml


@pytest.mark.notebooks
def test_smoke_sft_trains_and_predicts_the_held_out_clips(smoke_run):
    m = smoke_run.metrics("04_sft")
    assert m["sft/steps"] == 3
    assert m["sft/final_loss"] < m["sft/first_loss"], "3 SFT steps at lr 2e-3 must lower the answer loss"
    assert m["sft/n_test_clips"] == SMOKE_EVAL_CLIPS
    assert 0 <= m["sft/parse_failures"] <= 5 * SMOKE_EVAL_CLIPS


@pytest.mark.notebooks
def test_smoke_grpo_counts_every_completion(smoke_run):
    m = smoke_run.metrics("05_grpo")
    # the 2 s budget stops each seed before the STEPS cap of 50; 1 prompt x 2 completions (SET in 05_grpo.smoke.yaml)
    assert 1 <= m["grpo/steps"] < 50 and m["grpo/completions"] == 2 * m["grpo/steps"]
    assert 0 <= m["grpo/unparsable_completions"] <= m["grpo/completions"]


def _check_budgeted_seeds(smoke_run, stem: str, method: str):
    """Both smoke seeds stopped by the 2 s budget, with a held-out curve from step 0 to the end."""
    import pandas as pd

    m = smoke_run.metrics(stem)
    assert m[f"{method}/seeds"] == 2 and m[f"{method}/budget_s"] == 2.0
    curve = pd.read_csv(smoke_run.root / stem / "tables" / "curve.csv")
    for seed in (0, 1):
        assert m[f"{method}/stopped_by/seed{seed}"] == "max_train_seconds"
        assert m[f"{method}/train_seconds/seed{seed}"] >= 2.0
        c = curve[(curve["seed"] == seed) & (curve["dimension"] == "mean")]
        assert c["step"].iloc[0] == 0 and c["step"].iloc[-1] == m[f"{method}/steps/seed{seed}"]
        assert c["point"].iloc[-1] == "end" and (c["n_clips"] == SMOKE_EVAL_CLIPS).all()
    assert (curve["method"] == method).all()
    start = curve[curve["step"] == 0].groupby("dimension")["mae"]
    assert (start.max() - start.min()).max() < 1e-9, "both seeds start from the same SFT model: same step-0 values"
    for name in (method, f"{method}_seed1"):
        assert (smoke_run.root / "predictions" / f"{name}.jsonl").is_file(), name


@pytest.mark.notebooks
def test_smoke_grpo_seeds_train_for_the_budget(smoke_run):
    _check_budgeted_seeds(smoke_run, "05_grpo", "grpo")


@pytest.mark.notebooks
def test_smoke_aso_seeds_train_for_the_budget_and_share_pi_ref(smoke_run):
    _check_budgeted_seeds(smoke_run, "06_aso", "aso")
    m = smoke_run.metrics("06_aso")
    assert not (smoke_run.root / "checkpoints" / "aso_seed1" / "pi_ref.pt").exists()  # read from checkpoints/aso
    assert m["aso/setup_s/seed1"] < m["aso/setup_s/seed0"]  # the first seed also computed pi_ref


@pytest.mark.notebooks
def test_smoke_aso_trains_on_soft_targets(smoke_run):
    m = smoke_run.metrics("06_aso")
    assert 1 <= m["aso/steps"] < 50
    # soft-target cross-entropy over 9 levels is positive and below log 9 plus the reference's spread;
    # the score loss adds -log(1 - mass off the levels), large for a barely trained smoke model
    assert 0 < m["aso/final_loss_score_levels"] < 10
    assert m["aso/final_loss_score"] == pytest.approx(m["aso/final_loss_score_levels"] + m["aso/final_loss_outside"])
    assert m["aso/final_loss_outside"] > 0
    # the 9-level CE is H(pi*) + KL(pi* || pi_theta): a Gibbs inequality, so the KL part is >= 0 and the
    # entropy of a distribution over 9 levels is at most log 9
    assert 0 < m["aso/target_entropy"] <= math.log(9) + 1e-9
    assert m["aso/final_kl_to_target"] >= -1e-6


@pytest.mark.notebooks
def test_smoke_aso_shows_the_zero_mass_limitation(smoke_run):
    m = smoke_run.metrics("06_aso")
    assert m["aso/eps/steps"] == 2 and m["aso/eps/eps"] == 0.05  # EPS_STEPS, EPS in 06_aso.smoke.yaml
    at = {k.rsplit("/", 1)[1]: v for k, v in m.items() if k.startswith("aso/zero_mass/at_label/")}
    assert set(at) == {"pi_ref", "pi_star", "aso", "aso_eps", "pi_star_eps"}
    # pi* only re-weights pi_ref: at most exp(beta * 4 / lambda) times pi_ref(s*); the floor lifts it past eps
    assert at["pi_ref"] <= at["pi_star"] <= at["pi_ref"] * 2.72 ** 4
    assert at["pi_star_eps"] >= 0.05  # the floored pi_ref gives s* at least eps, and Z <= 1
    assert 0 <= at["aso"] <= 1 and 0 <= at["aso_eps"] <= 1
    assert m["aso/zero_mass/n_below_0.001"] <= m["aso/zero_mass/n_below_0.01"]
    assert (smoke_run.root / "06_aso" / "figures" / "zero_mass_case.png").is_file()


@pytest.mark.notebooks
def test_smoke_table1_has_every_stage(smoke_run):
    m = smoke_run.metrics("07_evaluation")
    models = {k.split("/")[1] for k in m if k.startswith("table1_parsed/")}
    assert models == {"base", "sft", "grpo", "aso"}, models
    for model in models:
        for dim in ("motion_quality", "clarity_quality"):
            parsed, failed = m[f"table1_parsed/{model}/{dim}/n"], m[f"table1_parsed/{model}/{dim}/n_failed"]
            assert parsed + failed == SMOKE_EVAL_CLIPS, (model, dim, parsed, failed)  # failures counted, not dropped
            assert m[f"table1_expected/{model}/{dim}/n"] == SMOKE_EVAL_CLIPS  # every clip has a distribution
    for f in ("predictions/base.jsonl", "predictions/sft.jsonl", "predictions/grpo.jsonl", "predictions/aso.jsonl"):
        assert (smoke_run.root / f).is_file(), f


@pytest.mark.notebooks
def test_smoke_method_comparison_table_and_figures(smoke_run):
    import pandas as pd

    m = smoke_run.metrics("07_evaluation")
    assert m["compare/grpo/seeds"] == m["compare/aso/seeds"] == 2 and m["compare/sft/seeds"] == 1
    boot = pd.read_csv(smoke_run.root / "07_evaluation" / "tables" / "method_comparison.csv")
    assert set(boot[boot["kind"] == "difference"]["name"]) == {"aso − grpo", "aso − sft", "grpo − sft"}
    assert (boot["n_clips"] == SMOKE_EVAL_CLIPS).all()
    for fig in ("method_curves_seconds", "method_curves_steps"):
        assert (smoke_run.root / "07_evaluation" / "figures" / f"{fig}.png").is_file(), fig
