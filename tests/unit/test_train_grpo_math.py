"""GRPO maths on hand-computed numbers: advantages, the clipped objective, rewards of parsed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vqalib.schema.levels import DIMENSION_KEYS
from vqalib.schema.prompts import format_answer, parse_answer
from vqalib.method.grpo_math import grpo_loss, group_advantages, k3_kl, score_rewards


def test_group_advantages_hand_computed():
    # group 1: rewards 1, 2, 3, 6 -> mean 3, sample std sqrt(((4+1+0+9)/3)) = sqrt(14/3)
    # group 2: all equal -> advantage 0 (no signal, no NaN)
    r = torch.tensor([1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0])
    adv = group_advantages(r, group_size=4, eps=0.0 + 1e-12)
    s = math.sqrt(14 / 3)
    expected = torch.tensor([-2 / s, -1 / s, 0.0, 3 / s, 0, 0, 0, 0])
    assert torch.allclose(adv, expected, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of the group size"):
        group_advantages(torch.ones(7), group_size=4)


def test_grpo_loss_on_policy_gradient_is_advantage_weighted_logprob():
    # with old = current (one update per rollout), ratio = 1, the clip is inactive and
    # d loss / d logp_t = -A_i / |o_i| / N for every real token (KL off)
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv = torch.tensor([2.0, -1.0])
    loss, stats = grpo_loss(logp, logp.detach(), None, adv, mask, clip_eps=0.2, kl_coef=0.0)
    loss.backward()
    expected = torch.tensor([[-2 / 3 / 2] * 3, [1 / 2 / 2, 1 / 2 / 2, 0.0]])
    assert torch.allclose(logp.grad, expected, atol=1e-7)
    assert loss.item() == pytest.approx(-(2.0 + -1.0) / 2)  # -mean_i A_i * 1
    assert stats["clip_frac"] == 0.0


def test_grpo_loss_clips_ratio_and_adds_kl():
    old = torch.log(torch.tensor([[0.5]]))
    new = torch.log(torch.tensor([[0.9]])).requires_grad_(True)  # ratio 1.8 > 1.2
    adv = torch.tensor([1.0])
    loss, stats = grpo_loss(new, old, None, adv, torch.ones(1, 1), clip_eps=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(-1.2)  # min(1.8 * 1, 1.2 * 1)
    loss.backward()
    assert new.grad.abs().item() == 0.0  # clipped: no gradient
    assert stats["clip_frac"] == 1.0
    ref = torch.log(torch.tensor([[0.3]]))
    loss_kl, _ = grpo_loss(new.detach(), old, ref, adv, torch.ones(1, 1), clip_eps=0.2, kl_coef=0.1)
    d = math.log(0.3) - math.log(0.9)
    assert loss_kl.item() == pytest.approx(-1.2 + 0.1 * (math.exp(d) - d - 1))
    assert k3_kl(torch.tensor(0.0), torch.tensor(0.0)).item() == 0.0


def test_score_rewards_paper_terms_and_unparsable_counted():
    targets = np.array([[3.0] * 5, [3.0] * 5])
    good = format_answer({k: 3.5 for k in DIMENSION_KEYS}, "Fine.")  # round(3.5)=4 != 3 -> R_acc 0, R_dist 4.5, format 1
    bad = format_answer({k: 3.0 for k in DIMENSION_KEYS}).replace("Clarity Quality: 3.0", "garbled text")
    out = score_rewards([parse_answer(good), parse_answer(bad)], targets)  # clarity missing: 0 for it, counted
    assert out.total[0] == pytest.approx(0 + 4.5 + 1)
    assert out.total[1] == pytest.approx((4 * (1 + 5 + 0) + 0) / 5)  # not the strict format: no format reward
    assert out.n_unparsable == 1 and out.n_dims_missing == 1
    assert out.examples == [bad]


STRICT = format_answer({k: 3.0 for k in DIMENSION_KEYS}, "Fine.")


@pytest.mark.parametrize("written, acc_dist", [
    ("3.3", None),  # off the grid: no accuracy/distance reward (was snapped to 3.5 and rewarded)
    ("3", (1.0, 5.0)),  # a bare level parses (R_acc, R_dist) but is not the strict format
    ("4.00", (0.0, 4.0)),
    ("3.0/5", (1.0, 5.0)),
    ("4/10", None),  # another scale (was read as 4.0)
    ("3,5", None),  # decimal comma (was read as 3.0)
    ("3-4", None),  # a range (was read as 3.0)
])
def test_format_reward_is_the_strict_format_check(written, acc_dist):
    """Issue 8: the format reward was 1 for "3.3", "3", "4/10", "3,5" because it read the snapped parse."""
    text = STRICT.replace("Motion Quality: 3.0", f"Motion Quality: {written}")
    out = score_rewards([parse_answer(text), parse_answer(STRICT)], np.full((2, 5), 3.0))
    assert out.fmt[0].tolist() == [0.0] * 5 and out.fmt[1].tolist() == [1.0] * 5
    assert (out.acc[0, 0], out.dist[0, 0]) == (acc_dist or (0.0, 0.0))
    assert out.n_unparsable == (acc_dist is None) and out.n_dims_missing == (acc_dist is None)
    assert out.acc[0, 1:].tolist() == [1.0] * 4 and out.dist[0, 1:].tolist() == [5.0] * 4


def test_score_rewards_default_accuracy_is_symmetric_and_integer_reading_is_an_option():
    # issue 9 item 4: for s* = 3.0, 2.5 and 3.5 are one level off on either side and must earn the same R_acc
    targets = np.full((2, 5), 3.0)
    low, high = (parse_answer(format_answer({k: v for k in DIMENSION_KEYS}, "Fine.")) for v in (2.5, 3.5))
    out = score_rewards([low, high], targets)
    assert out.acc[0].tolist() == out.acc[1].tolist() == [0.0] * 5
    assert out.total[0] == out.total[1]
    lit = score_rewards([low, high], targets, acc_rounding="integer")  # round half up: 2.5 -> 3, 3.5 -> 4
    assert lit.acc[0].tolist() == [1.0] * 5 and lit.acc[1].tolist() == [0.0] * 5


def test_advantages_grouped_per_clip_and_dimension():
    from vqalib.method.grpo_math import group_advantages_per_dimension

    # G = 4 completions of one clip; dimension 0 varies a lot, dimension 1 a little but in the other order
    per_dim = torch.tensor([[5.0, 1.0], [4.0, 1.1], [2.0, 1.2], [1.0, 1.3]])
    adv = group_advantages_per_dimension(per_dim, 4)
    col = [group_advantages(per_dim[:, j].contiguous(), 4) for j in range(2)]
    torch.testing.assert_close(adv, (col[0] + col[1]) / 2)
    # each dimension counts equally: the two cancel, whereas grouping the mean reward lets dimension 0 dominate
    assert adv.abs().max() < 0.1
    whole = group_advantages(per_dim.mean(1), 4)
    assert whole[0] > 1.0 and whole[3] < -1.0
    # two clips are normalised separately
    two = group_advantages_per_dimension(torch.cat([per_dim, per_dim + 10]), 4)
    torch.testing.assert_close(two[:4], two[4:])
    with pytest.raises(ValueError, match="B \\* G, D"):
        group_advantages_per_dimension(torch.zeros(4), 4)


def test_multi_rater_distance_reward_uses_every_rater():
    targets = np.full((1, 5), 3.0)
    pred = parse_answer(format_answer({k: 3.0 for k in DIMENSION_KEYS}, "Fine."))
    raters = np.full((1, 5, 3), np.nan)
    raters[0, :, :3] = [2.0, 3.0, 4.5]  # mean 3.17 -> label 3.0, but the raters disagree
    out = score_rewards([pred], targets, rater_scores=raters)
    assert out.dist[0, 0] == pytest.approx(5.0 - (1.0 + 0.0 + 1.5) / 3)
    assert score_rewards([pred], targets).dist[0, 0] == 5.0
