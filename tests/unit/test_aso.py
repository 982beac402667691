"""Tests of vqalib.method.aso: rewards, the closed-form optimal policy (A3) and the ASO loss (A6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from vqalib.method import aso
from vqalib.schema.levels import LEVELS

torch.set_num_threads(1)


def random_pi(gen: np.random.Generator, *shape: int, zeros: int = 0) -> np.ndarray:
    """Random distributions [*shape, 9]; ``zeros`` levels per row set to exactly zero."""
    p = gen.dirichlet(np.ones(9), size=shape) if shape else gen.dirichlet(np.ones(9))
    if zeros:
        flat = p.reshape(-1, 9)
        for row in flat:
            row[gen.choice(9, zeros, replace=False)] = 0.0
            row /= row.sum()
    return p


# ------------------------------------------------------------------------------------ rewards

def test_distance_rewards_values():
    R = aso.reward_abs(3.0, beta=2.0)
    assert R.shape == (9,)
    np.testing.assert_allclose(R.numpy(), -2.0 * np.abs(LEVELS - 3.0))
    np.testing.assert_allclose(aso.reward_sq([1.0, 4.5], beta=0.5).numpy(), -0.5 * (LEVELS[None] - np.array([[1.0], [4.5]])) ** 2)
    assert aso.reward_abs(np.full((2, 5), 3.5)).shape == (2, 5, 9)


def test_grpo_accuracy_reward_default_is_symmetric_exact_level():
    # issue 9 item 4: the default R_acc is the exact level, so 2.5 and 3.5 are treated alike for s* = 3.0
    acc = aso.reward_acc(3.0).numpy()
    assert acc.tolist() == [1.0 * (lv == 3.0) for lv in LEVELS]
    for s_star in LEVELS:
        a = aso.reward_acc(float(s_star)).numpy()
        k = int(np.flatnonzero(LEVELS == s_star)[0])
        assert a.sum() == 1.0 and a[k] == 1.0
    np.testing.assert_allclose(aso.reward_grpo(3.0).numpy(), aso.reward_acc(3.0).numpy() + aso.reward_dist(3.0).numpy())


def test_grpo_rewards_integer_rounding_half_up_kept_as_option():
    acc = aso.reward_acc(3.0, rounding="integer").numpy()
    # levels 2.5 and 3.0 round (half up) to 3; 3.5 rounds to 4: the lopsided literal reading
    assert acc.tolist() == [1.0 * (lv in (2.5, 3.0)) for lv in LEVELS]
    np.testing.assert_allclose(aso.reward_dist(4.0).numpy(), 5.0 - np.abs(LEVELS - 4.0))
    np.testing.assert_allclose(aso.reward_grpo(4.0, w_acc=2.0, w_dist=0.5, rounding="integer").numpy(),
                               2.0 * aso.reward_acc(4.0, rounding="integer").numpy() + 0.5 * aso.reward_dist(4.0).numpy())
    with pytest.raises(ValueError, match="rounding"):
        aso.reward_acc(3.0, rounding="banker")


def test_multi_rater_reward_mean_over_raters_and_nan_as_absent():
    scores = np.array([[3.0, 4.0, 4.5], [2.0, np.nan, 2.0]])
    R = aso.reward_multi_rater(scores, beta=1.5).numpy()
    exp0 = -1.5 * np.mean(np.abs(LEVELS[:, None] - scores[0][None]), axis=1)
    exp1 = -1.5 * np.abs(LEVELS - 2.0)
    np.testing.assert_allclose(R[0], exp0)
    np.testing.assert_allclose(R[1], exp1)
    with pytest.raises(ValueError, match="no rater"):
        aso.reward_multi_rater([[np.nan, np.nan]])


def test_reward_dispatch_unknown_kind():
    np.testing.assert_allclose(aso.reward("abs", 2.0, beta=3.0).numpy(), aso.reward_abs(2.0, 3.0).numpy())
    with pytest.raises(ValueError, match="unknown reward kind"):
        aso.reward("hinge", 2.0)


# ----------------------------------------------------------------------------- optimal policy

def test_optimal_policy_normalised_batched_and_log_input_equals_prob_input():
    gen = np.random.default_rng(0)
    pi_ref = random_pi(gen, 4, 5)
    R = aso.reward_abs(gen.choice(LEVELS, size=(4, 5)))
    p1 = aso.optimal_policy(pi_ref, R, 0.7, probs=True)
    p2 = aso.optimal_policy(torch.as_tensor(np.log(pi_ref)), R, 0.7)
    assert p1.shape == (4, 5, 9)
    torch.testing.assert_close(p1.sum(-1), torch.ones(4, 5, dtype=p1.dtype))
    torch.testing.assert_close(p1, p2)
    # matches the direct (non-log) formula
    direct = pi_ref * np.exp(R.numpy() / 0.7)
    np.testing.assert_allclose(p1.numpy(), direct / direct.sum(-1, keepdims=True), rtol=1e-10)


def test_lambda_infinity_returns_reference():
    gen = np.random.default_rng(1)
    pi_ref = random_pi(gen, 3)
    R = aso.reward_abs([1.0, 3.0, 5.0])
    np.testing.assert_allclose(aso.optimal_policy(pi_ref, R, math.inf, probs=True).numpy(), pi_ref, rtol=1e-12)
    np.testing.assert_allclose(aso.optimal_policy(pi_ref, R, 1e9, probs=True).numpy(), pi_ref, atol=1e-8)


def test_lambda_to_zero_puts_mass_on_argmax_within_support():
    pi_ref = np.full(9, 1 / 8)
    pi_ref[4] = 0.0  # level 3.0 (the reward's argmax) has no mass under pi_ref
    R = aso.reward_abs(3.0)
    small = aso.optimal_policy(pi_ref, R, 1e-3, probs=True).numpy()
    exact = aso.optimal_policy(pi_ref, R, 0.0, probs=True).numpy()
    # best level inside the support: 2.5 and 3.5 tie (reward -0.5) -> half each
    expected = np.zeros(9)
    expected[[3, 5]] = 0.5
    np.testing.assert_allclose(small, expected, atol=1e-12)
    np.testing.assert_allclose(exact, expected)
    assert small[4] == 0.0


def test_uniform_reference_gives_softmax_of_reward_over_lambda():
    R = aso.reward_sq(2.5, beta=1.3)
    for lam in (0.1, 1.0, 4.0):
        got = aso.optimal_policy(np.full(9, 1 / 9), R, lam, probs=True)
        torch.testing.assert_close(got, torch.softmax(R / lam, -1))


def test_closed_form_maximises_objective_vs_scipy_on_simplex():
    gen = np.random.default_rng(2)
    for trial in range(6):
        pi_ref = random_pi(gen)
        R = gen.normal(size=9) * 2
        lam = float(gen.uniform(0.2, 3.0))
        pstar = aso.optimal_policy(pi_ref, R, lam, probs=True).numpy()

        def neg_j(p):
            p = np.clip(p, 1e-300, None)
            return -(p @ R - lam * np.sum(p * np.log(p / pi_ref)))

        res = minimize(neg_j, np.full(9, 1 / 9), method="SLSQP", bounds=[(0, 1)] * 9,
                       constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}], options={"ftol": 1e-12, "maxiter": 500})
        assert res.success, res.message
        j_star = float(aso.objective(pstar, R, pi_ref, lam))
        assert j_star >= -res.fun - 1e-7, f"trial {trial}: closed form {j_star} < solver {-res.fun}"
        np.testing.assert_allclose(res.x, pstar, atol=2e-3)
        # (A4): the optimum equals λ log Z
        logz = float(aso.log_partition(torch.as_tensor(np.log(pi_ref)), torch.as_tensor(R), lam))
        assert j_star == pytest.approx(lam * logz, abs=1e-10)


def test_stationarity_gap_zero_at_pi_star_only():
    gen = np.random.default_rng(7)
    pi_ref, other = random_pi(gen), random_pi(gen)
    R, lam = aso.reward_abs(2.0), 0.6
    pstar = aso.optimal_policy(pi_ref, R, lam, probs=True)
    assert float(aso.stationarity_gap(pstar, R, pi_ref, lam)) == pytest.approx(0.0, abs=1e-10)
    assert float(aso.stationarity_gap(other, R, pi_ref, lam)) > 0.1


def test_objective_equals_lambda_logz_minus_lambda_kl_to_pistar():
    """(A5) J(π) = λ log Z − λ KL(π ‖ π*) for any π."""
    gen = np.random.default_rng(3)
    pi_ref, pi = random_pi(gen), random_pi(gen)
    R, lam = aso.reward_abs(3.5), 0.8
    pstar = aso.optimal_policy(pi_ref, R, lam, probs=True)
    logz = aso.log_partition(torch.as_tensor(np.log(pi_ref)), R, lam)
    lhs = aso.objective(pi, R, pi_ref, lam)
    rhs = lam * logz - lam * aso.kl(torch.as_tensor(pi), pstar)
    assert float(lhs) == pytest.approx(float(rhs), abs=1e-12)


def test_zero_mass_levels_stay_zero_and_floor_lifts_them():
    gen = np.random.default_rng(4)
    pi_ref = random_pi(gen, 2, zeros=3)
    mask = aso.zero_mass(pi_ref, probs=True)
    assert mask.sum().item() == 6
    R = aso.reward_abs([1.0, 5.0], beta=5.0)
    pstar = aso.optimal_policy(pi_ref, R, 0.05, probs=True)
    assert torch.all(pstar[mask] == 0)
    torch.testing.assert_close(pstar.sum(-1), torch.ones(2, dtype=pstar.dtype))
    floored = aso.optimal_policy(pi_ref, R, 0.05, probs=True, eps=1e-3)
    assert torch.all(floored[mask] > 0)
    ref_floored = aso.as_log_probs(pi_ref, probs=True, eps=1e-3).exp()
    assert float(ref_floored.min()) >= 1e-3 - 1e-15
    with pytest.raises(ValueError, match="floor"):
        aso.optimal_policy(pi_ref, R, 1.0, probs=True, eps=0.5)


def test_bf16_reference_normalised_to_bf16_precision_is_accepted():
    # issue 9 item 10: a pi_ref normalised in float32 then stored in bf16 sums to 1 only to ~4e-3
    gen = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(64, 5, 9, generator=gen) * 3, -1).to(torch.bfloat16)
    assert (lp.double().exp().sum(-1) - 1).abs().max() > 1e-3  # the case the old 1e-4 tolerance refused
    out = aso.optimal_policy(lp, aso.reward_abs(torch.full((64, 5), 3.0, dtype=torch.bfloat16)), 1.0)
    assert torch.isfinite(out).all()
    p = torch.softmax(torch.randn(64, 5, 9, generator=gen) * 3, -1).to(torch.bfloat16)
    aso.as_log_probs(p, probs=True)
    # but a bf16 distribution that is really off is still refused
    with pytest.raises(ValueError, match="not normalised"):
        aso.as_log_probs(torch.full((9,), 0.12, dtype=torch.bfloat16), probs=True)


def test_bad_reference_raises_clear_errors():
    with pytest.raises(ValueError, match="not normalised"):
        aso.optimal_policy(np.full(9, 0.2), aso.reward_abs(3.0), 1.0, probs=True)
    with pytest.raises(ValueError, match="last axis 8"):
        aso.optimal_policy(np.full(8, 1 / 8), aso.reward_abs(3.0)[:8], 1.0, probs=True)
    with pytest.raises(ValueError, match="λ must be"):
        aso.optimal_policy(np.full(9, 1 / 9), aso.reward_abs(3.0), -1.0, probs=True)


# ------------------------------------------------------------------------------------ ASO loss

def test_loss_gradient_wrt_logits_is_pi_theta_minus_pi_star():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.softmax(torch.randn(3, 5, 9, generator=gen, dtype=torch.float64), -1)
    loss = aso.aso_loss(torch.log_softmax(logits, -1), target, reduction="sum")
    (g,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(g, torch.softmax(logits, -1) - target)
    # mean reduction divides by the number of (item, dimension) entries
    loss_m = aso.aso_loss(torch.log_softmax(logits, -1), target)
    (gm,) = torch.autograd.grad(loss_m, logits)
    torch.testing.assert_close(gm, (torch.softmax(logits, -1) - target) / 15)


def test_loss_is_kl_plus_entropy_and_mask_excludes_entries():
    gen = np.random.default_rng(5)
    pt = torch.as_tensor(random_pi(gen, 4))
    ps = torch.as_tensor(random_pi(gen, 4, zeros=2))
    per = aso.aso_loss(pt.log(), ps, reduction="none")
    torch.testing.assert_close(per, aso.kl(ps, pt) + aso.entropy(ps))
    mask = torch.tensor([True, False, True, False])
    assert float(aso.aso_loss(pt.log(), ps, mask=mask)) == pytest.approx(float(per[[0, 2]].mean()))
    assert float(aso.aso_loss(pt.log(), ps, mask=mask, reduction="sum")) == pytest.approx(float(per[[0, 2]].sum()))
    # a zero-mass target level with -inf log pi_theta contributes nothing (no NaN)
    lt = pt.log().clone()
    lt[0, ps[0] == 0] = -math.inf
    lt = lt - torch.logsumexp(lt, -1, keepdim=True)
    assert torch.isfinite(aso.aso_loss(lt, ps))


def test_mass_outside_the_levels_raises_the_loss():
    # issue 9 item 2: same shape over the 9 levels, 0 %, 78 % and 99.98 % of the mass elsewhere
    target = aso.optimal_policy(np.full(9, 1 / 9), aso.reward_abs(3.0), 1.0, probs=True)
    shape = torch.log_softmax(torch.linspace(-1, 1, 9, dtype=torch.float64), -1)
    losses = []
    for outside in (0.0, 0.78, 0.9998):
        raw = shape + math.log(1 - outside)  # unnormalised level log-probs: Σ π_θ(s) = 1 − outside
        losses.append(float(aso.aso_loss(raw, target)))
        assert float(aso.outside_penalty(raw)) == pytest.approx(-math.log(1 - outside), abs=1e-12)
        assert losses[-1] == pytest.approx(float(aso.aso_loss(shape, target)) - math.log(1 - outside))
    assert losses[0] < losses[1] < losses[2]
    # the gradient of the loss moves mass back onto the levels: d loss / d raw = -π* < 0 for every level
    raw = (shape + math.log(0.22)).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(aso.aso_loss(raw, target), raw)
    assert (g < 0).all()


def test_loss_minimised_at_target():
    target = aso.optimal_policy(np.full(9, 1 / 9), aso.reward_abs(4.0), 1.0, probs=True)
    logits = torch.zeros(9, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=5.0)
    for _ in range(300):
        opt.zero_grad()
        aso.aso_loss(torch.log_softmax(logits, -1), target).backward()
        opt.step()
    torch.testing.assert_close(torch.softmax(logits, -1).detach(), target, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------ helpers

def test_helpers_expected_score_argmax_kl_and_tradeoff():
    pi = torch.zeros(9, dtype=torch.float64)
    pi[[2, 6]] = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert float(aso.expected_score(pi)) == pytest.approx(0.25 * 2.0 + 0.75 * 4.0)
    assert float(aso.argmax_score(pi)) == 4.0
    assert float(aso.kl(pi, torch.full((9,), 1 / 9, dtype=torch.float64))) == pytest.approx(
        0.25 * math.log(0.25 * 9) + 0.75 * math.log(0.75 * 9))
    assert math.isinf(float(aso.kl(torch.full((9,), 1 / 9, dtype=torch.float64), pi)))
    gen = np.random.default_rng(6)
    pi_ref = random_pi(gen)
    R = aso.reward_abs(4.5)
    curve = aso.tradeoff_curve(pi_ref, R, [0.1, 0.5, 1.0, 5.0], probs=True)
    # smaller λ: more reward, further from π_ref (monotone)
    assert np.all(np.diff(curve["reward"]) < 0)
    assert np.all(np.diff(curve["kl"]) < 0)
    p05 = aso.optimal_policy(pi_ref, R, 0.5, probs=True)
    assert curve["reward"][1] == pytest.approx(float(aso.expected_reward(p05, R)))
    assert curve["score"][1] == pytest.approx(float(aso.expected_score(p05)))
