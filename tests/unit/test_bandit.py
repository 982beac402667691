"""Tests of vqalib.teaching.bandit: ASO vs sampled policy gradient on the one-step bandit over 9 levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vqalib.method import aso
from vqalib.teaching import bandit
from vqalib.schema.levels import LEVELS

torch.set_num_threads(1)


@pytest.fixture
def items() -> bandit.BanditItems:
    gen = np.random.default_rng(0)
    s = gen.choice(LEVELS, size=40)
    return bandit.make_items(s, bandit.marginal_reference(s))


def test_marginal_reference_counts_plus_pseudocounts():
    ref = bandit.marginal_reference([3.0, 3.0, 4.5], alpha=1.0)
    expected = np.ones(9)
    expected[4] += 2
    expected[7] += 1
    np.testing.assert_allclose(ref, expected / expected.sum())
    with pytest.raises(ValueError, match="not on the grid"):
        bandit.marginal_reference([3.2])


def test_aso_converges_to_pi_star_and_update_is_pi_theta_minus_pi_star(items):
    h = bandit.run_aso(items, lam=1.0, steps=200, lr=1.0)
    assert h["tv_to_star"].iloc[0] > 0.1
    assert h["tv_to_star"].iloc[-1] < 2e-3
    assert np.all(np.diff(h["kl_star_theta"].to_numpy()) <= 1e-12)  # exact gradient: monotone descent
    # its expected reward converges to E_π*[R], not to the reward's maximum
    target = float(aso.expected_reward(items.pi_star(1.0), items.R).mean())
    assert h["expected_reward"].iloc[-1] == pytest.approx(target, abs=1e-2)


def test_grpo_chases_reward_past_pi_star_while_regularised_pg_reaches_pi_star(items):
    h = bandit.compare(items, lam=1.0, steps=150, group_size=8, seed=1)
    last = bandit.final_summary(h)
    aso_r = last.loc["ASO", "expected_reward"]
    assert last.loc["GRPO G=8", "expected_reward"] > aso_r + 0.3   # normalised advantages go to the argmax
    assert last.loc["GRPO G=8", "tv_to_star"] > 0.3
    assert last.loc["PG on J(λ) G=8", "tv_to_star"] < 0.05          # same objective -> same optimum
    assert last.loc["ASO", "steps_to_tv_0.05"] <= 40


def test_runs_are_deterministic_given_seed(items):
    a = bandit.run_grpo(items, steps=10, seed=3)
    b = bandit.run_grpo(items, steps=10, seed=3)
    c = bandit.run_grpo(items, steps=10, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["tv_to_star"].to_numpy()[1:], c["tv_to_star"].to_numpy()[1:])


def test_sampled_gradient_is_unbiased_for_objective_gradient():
    """Mean of many regularised-PG gradients ≈ exact −∇_z J(π) = −π ⊙ (r̃ − E_π r̃) (leave-one-out baseline is unbiased)."""
    items = bandit.make_items([2.0, 4.5], np.full(9, 1 / 9))
    z = items.logp_ref.clone() + torch.tensor([0.3, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.0, -0.1], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    G, lam = 4, 1.0
    gs = torch.stack([bandit.grpo_gradient(z, items, G, 0.0, gen, estimator="regularised", lam=lam) for _ in range(4000)])
    p = torch.softmax(z, -1)
    rt = items.R - lam * (torch.log_softmax(z, -1) - items.logp_ref)
    exact_grad_of_minus_j = -p * (rt - (p * rt).sum(-1, keepdim=True))
    torch.testing.assert_close(gs.mean(0), exact_grad_of_minus_j, atol=0.02, rtol=0)


def test_gradient_variance_shrinks_with_group_size(items):
    gv = bandit.gradient_variance(items, group_sizes=(2, 8, 32), n_rep=32)
    assert list(gv["group_size"]) == [2, 8, 32]
    assert np.all(np.diff(gv["variance"].to_numpy()) < 0)
    assert np.all(np.diff(gv["cosine_to_aso"].to_numpy()) > 0)
    with pytest.raises(ValueError, match="G ≥ 2"):
        bandit.gradient_variance(items, group_sizes=(1,), n_rep=2)


def test_numerical_solver_agrees_with_closed_form_including_zero_mass():
    gen = np.random.default_rng(2)
    for zeros in (0, 2):
        pi_ref = gen.dirichlet(np.ones(9))
        if zeros:
            pi_ref[[1, 4]] = 0
            pi_ref /= pi_ref.sum()
        R = aso.reward_abs(3.0, beta=2.0).numpy()
        num = bandit.solve_objective_numerically(pi_ref, R, 0.7)
        np.testing.assert_allclose(num, aso.optimal_policy(pi_ref, R, 0.7, probs=True).numpy(), atol=2e-3)


def test_items_from_labels_frame_and_errors():
    labels = pd.DataFrame({"video_id": ["a", "b", "c", "a"], "dimension": ["clarity_quality"] * 3 + ["motion_quality"],
                           "score": [2.0, 3.0, 3.0, 4.5]})
    it = bandit.items_from_labels(labels, "clarity_quality")
    assert it.R.shape == (3, 9)
    np.testing.assert_allclose(it.logp_ref[0].exp().numpy(), bandit.marginal_reference([2.0, 3.0, 3.0]))
    assert bandit.items_from_labels(labels).R.shape == (4, 9)
    with pytest.raises(ValueError, match="lacks column 'score'"):
        bandit.items_from_labels(labels.drop(columns="score"))


def test_items_from_sample_dataset():
    synth = pytest.importorskip("vqalib.data.synth", reason="vqalib.data.synth not written yet (data engineer)")
    data = pytest.importorskip("vqalib.data.dataset", reason="vqalib.data.dataset not written yet (data engineer)")
    ds = data.load_dataset(synth.ensure_sample_dataset("smoke"))
    labels = data.aggregate(ds)
    it = bandit.items_from_labels(labels)
    assert len(it.s_star) == len(labels)
    h = bandit.run_aso(it, steps=30)
    assert h["tv_to_star"].iloc[-1] < h["tv_to_star"].iloc[0]
