"""GRPO maths without a model: rewards of parsed answers, group-normalised advantages, the clipped
ratio objective with a KL penalty (Shao et al. 2024, DeepSeekMath, Eq. 3; the UltraVQA paper's
Stage II baseline).

For a prompt x with G sampled completions o_1..o_G and rewards r_1..r_G:

    A_i = (r_i - mean(r)) / (std(r) + eps)                       group-normalised advantage
    rho_t = pi_theta(o_t | x, o_<t) / pi_old(o_t | x, o_<t)      per-token ratio
    L_i = 1/|o_i| sum_t [ -min(rho_t A_i, clip(rho_t, 1-e, 1+e) A_i) + kl_coef * k3_t ]
    k3_t = pi_ref/pi_theta - log(pi_ref/pi_theta) - 1            (unbiased, non-negative KL estimator)

and the loss is the mean of L_i over the completions. ``std`` is the sample standard deviation
(ddof = 1, as in TRL's GRPOTrainer); a group whose rewards are all equal gets advantage 0.

Rewards (paper): per dimension ``R_acc = 1[round(pred) == round(gt)]`` and ``R_dist = 5 - |pred - gt|``
(from :mod:`vqalib.method.aso`), for a score that parsed and was written as one of the 9 levels; a dimension
whose score is missing, unparsable or off the grid (``3.3``) gets 0 for both (never a random or
snapped score) and is counted. The format reward is ``format_weight`` times
:func:`vqalib.schema.prompts.check_format` of the whole completion (1 only for the strict answer format:
rationale, blank line, the five lines in order with level strings), added to every dimension; so
``3``, ``3.50``, ``3.5/5`` parse and earn R_acc/R_dist but no format reward. The completion's reward
is the mean over the five dimensions.
``round`` defaults to the nearest level (exact-level match, symmetric); ``acc_rounding="integer"``
keeps the literal integer reading, which is lopsided on the 0.5 grid (``vqalib.method.aso.reward_acc``).
``rater_scores`` (multi-rater option) replaces ``R_dist`` by ``5 - mean_r |pred - s_r|`` over the
raters' own scores.

Grouping. The paper samples "for each input video and dimension" a group of G outputs. One completion
carries all five scores, so the G completions of a clip are the group of every dimension:
``group_by="dimension"`` (default) normalises each dimension's reward within the group separately
(:func:`group_advantages_per_dimension`) and gives the completion the mean of its five per-dimension
advantages, so each dimension counts equally whatever its reward spread; ``group_by="answer"``
normalises the completion's mean reward over the dimensions (one reward per answer), where a
dimension whose rewards vary a lot within the group drowns the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from vqalib.schema.levels import DIMENSION_KEYS, is_on_grid, level_index

if TYPE_CHECKING:
    from vqalib.schema.prompts import ParseResult


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Group-normalised advantages. ``rewards`` is flat ``[B * G]`` ordered prompt-major
    (completions of prompt 0 first); returns the same shape."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards is not a multiple of the group size {group_size}")
    r = rewards.reshape(-1, group_size).to(torch.float64)
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, keepdim=True, unbiased=True)
    adv = (r - mean) / (std + eps)
    return adv.reshape(-1).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def group_advantages_per_dimension(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Advantages normalised per clip **and dimension**: ``rewards`` ``[B * G, D]`` (prompt-major), each
    column normalised within each group as :func:`group_advantages`, then averaged over the D
    dimensions; returns ``[B * G]``. A dimension whose rewards are equal across the group adds 0."""
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be [B * G, D], got shape {tuple(rewards.shape)}")
    cols = [group_advantages(rewards[:, j].contiguous(), group_size, eps) for j in range(rewards.shape[1])]
    return torch.stack(cols, dim=1).mean(dim=1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimator ``exp(ref - logp) - (ref - logp) - 1`` (>= 0, unbiased for KL(pi||ref))."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    kl_coef: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped GRPO objective (module docstring). Shapes: ``logp, old_logp, ref_logp, mask``
    are ``[N, T]`` over completion tokens (mask 1 = a real completion token); ``advantages`` ``[N]``.

    Returns the scalar loss and diagnostics (mean KL, clip fraction)."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.to(logp.dtype)[:, None]
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl = torch.zeros_like(per_token)
    if ref_logp is not None and kl_coef:
        kl = k3_kl(logp, ref_logp.detach())
        per_token = per_token + kl_coef * kl
    lengths = mask.sum(dim=1).clamp(min=1.0)
    per_seq = (per_token * mask).sum(dim=1) / lengths
    loss = per_seq.mean()
    with torch.no_grad():
        n_tok = mask.sum().clamp(min=1.0)
        stats = {
            "kl": float((kl * mask).sum() / n_tok),
            "clip_frac": float((((ratio - 1).abs() > clip_eps).to(mask.dtype) * mask).sum() / n_tok),
        }
    return loss, stats


@dataclass
class RewardBreakdown:
    """Rewards of a batch of completions and what went wrong while parsing them."""

    total: np.ndarray  # [N] reward per completion (mean over the five dimensions)
    acc: np.ndarray  # [N, 5]
    dist: np.ndarray  # [N, 5]
    fmt: np.ndarray  # [N, 5] 1 where the completion is in the strict format (same for its five dimensions)
    n_unparsable: int = 0  # completions with at least one missing/unparsable/off-grid dimension
    n_dims_missing: int = 0  # (completion, dimension) pairs without a score on the grid
    examples: list[str] = field(default_factory=list)  # a few unparsable texts, for the log


def score_rewards(
    parsed: Sequence["ParseResult"],
    targets: np.ndarray,
    format_weight: float = 1.0,
    acc_rounding: str = "grid",
    rater_scores: np.ndarray | None = None,
) -> RewardBreakdown:
    """Paper rewards (module docstring) for completions parsed by :func:`vqalib.schema.prompts.parse_answer`;
    ``targets`` ``[N, 5]`` are the ground-truth levels. Returns per-completion totals ``[N]`` and the
    per-dimension terms ``[N, 5]``.
    ``acc_rounding``: ``grid`` (exact level) or ``integer`` (``vqalib.method.aso.reward_acc``);
    ``rater_scores`` ``[N, 5, R]`` (NaN-padded, optional): ``R_dist = 5 - mean_r |pred - s_r|``."""
    from vqalib.method.aso import reward_acc, reward_dist, reward_multi_rater
    from vqalib.schema.prompts import STATUS_OK, check_format

    n = len(parsed)
    targets = np.asarray(targets, dtype=float).reshape(n, len(DIMENSION_KEYS))
    acc = np.zeros((n, 5))
    dist = np.zeros((n, 5))
    fmt = np.zeros((n, 5))
    racc = reward_acc(torch.as_tensor(targets), rounding=acc_rounding).numpy()  # [N, 5, 9]
    if rater_scores is None:
        rdist = reward_dist(torch.as_tensor(targets)).numpy()
    else:
        rdist = 5.0 + reward_multi_rater(np.asarray(rater_scores, dtype=float), beta=1.0).numpy()
    n_bad, n_missing, examples = 0, 0, []
    for i, res in enumerate(parsed):
        bad = False
        fmt[i, :] = float(check_format(res.text))
        for j, key in enumerate(DIMENSION_KEYS):
            value = res.scores[key]
            if res.status[key] != STATUS_OK or value is None or res.off_grid[key] or res.rescaled[key] \
                    or not is_on_grid(value):
                n_missing += 1
                bad = True
                continue
            k = level_index(value)
            acc[i, j] = racc[i, j, k]
            dist[i, j] = rdist[i, j, k]
        if bad:
            n_bad += 1
            if len(examples) < 3:
                examples.append(res.text[:200])
    total = (acc + dist + format_weight * fmt).mean(axis=1)
    return RewardBreakdown(total=total, acc=acc, dist=dist, fmt=fmt, n_unparsable=n_bad,
                           n_dims_missing=n_missing, examples=examples)
