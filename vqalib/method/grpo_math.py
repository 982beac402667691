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

Rewards (paper): per dimension ``R_acc = 1[round(pred) == round(gt)]`` and ``R_dist = c - |pred - gt|``
(from :mod:`vqalib.method.aso`; ``c`` is :func:`vqalib.method.aso.dist_max`: the paper's 5 on its grid,
the schema's span ``hi - lo`` on any other), for a score that parsed and was written as one of the
schema's K levels; a dimension
whose score is missing, unparsable or off the grid (``3.3``) gets 0 for both (never a random or
snapped score) and is counted. The format reward is ``format_weight`` times the strict-format check
of the whole completion (:func:`vqalib.schema.prompts.check_format`, or a predicate passed in: 1 only
for the strict answer format: rationale, blank line, the score lines in order with level strings),
added to every dimension; so ``3``, ``3.50``, ``3.5/5`` parse and earn R_acc/R_dist but no format
reward. The completion's reward is the mean over the dimensions **the clip has a label for** (a NaN
target marks an unlabelled dimension: its terms are 0, masked and counted, never divided into the
mean); with the paper's five labels that is the mean over the five.
``round`` defaults to the nearest level (exact-level match, symmetric); ``acc_rounding="integer"``
keeps the literal integer reading, which is lopsided on the 0.5 grid (``vqalib.method.aso.reward_acc``).
``rater_scores`` (multi-rater option) replaces ``R_dist`` by ``c - mean_r |pred - s_r|`` over the
raters' own scores.

Grouping. The paper samples "for each input video and dimension" a group of G outputs. One completion
carries all D scores (the paper: five), so the G completions of a clip are the group of every dimension:
``group_by="dimension"`` (default) normalises each dimension's reward within the group separately
(:func:`group_advantages_per_dimension`) and gives the completion the mean of its per-dimension
advantages over the dimensions the clip has labels for (``labelled=``), so each dimension counts equally whatever its reward spread; ``group_by="answer"``
normalises the completion's mean reward over the dimensions (one reward per answer), where a
dimension whose rewards vary a lot within the group drowns the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from vqalib.schema import rating

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


def group_advantages_per_dimension(rewards: torch.Tensor, group_size: int, eps: float = 1e-4,
                                   labelled: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Advantages normalised per clip **and dimension**: ``rewards`` ``[B * G, D]`` (prompt-major), each
    column normalised within each group as :func:`group_advantages`, then averaged over the D
    dimensions; returns ``[B * G]``. A dimension whose rewards are equal across the group adds 0.

    ``labelled`` ``[B * G, D]`` bool (:attr:`RewardBreakdown.labelled`): average only over the dimensions
    the clip has a label for (``None``: all D, as before); a completion with none gets 0."""
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be [B * G, D], got shape {tuple(rewards.shape)}")
    cols = torch.stack([group_advantages(rewards[:, j].contiguous(), group_size, eps)
                        for j in range(rewards.shape[1])], dim=1)
    if labelled is None:
        return cols.mean(dim=1)
    m = torch.as_tensor(np.asarray(labelled, dtype=bool) if not torch.is_tensor(labelled) else labelled,
                        device=cols.device).to(torch.bool)
    if m.shape != cols.shape:
        raise ValueError(f"labelled must be [B * G, D] = {tuple(cols.shape)}, got {tuple(m.shape)}")
    n = m.sum(dim=1).clamp(min=1).to(cols.dtype)
    return torch.where(m, cols, torch.zeros_like(cols)).sum(dim=1) / n


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

    total: np.ndarray  # [N] reward per completion (mean over the clip's labelled dimensions)
    acc: np.ndarray  # [N, D]
    dist: np.ndarray  # [N, D]
    fmt: np.ndarray  # [N, D] 1 where the completion is in the strict format (same for its labelled dimensions)
    n_unparsable: int = 0  # completions with at least one missing/unparsable/off-grid labelled dimension
    n_dims_missing: int = 0  # (completion, labelled dimension) pairs without a score on the grid
    examples: list[str] = field(default_factory=list)  # a few unparsable texts, for the log
    labelled: np.ndarray | None = None  # [N, D] bool: the clip has a label for the dimension (NaN target: no)
    n_dims_unlabelled: int = 0  # (completion, dimension) pairs without a label: masked, 0 in acc/dist/fmt


def strict_format(schema: rating.RatingSchema | None = None) -> Callable[[str], bool]:
    """The format-reward predicate for ``schema``: :func:`vqalib.schema.prompts.check_format` (for a schema
    other than the paper's, called with ``schema=``)."""
    from vqalib.schema.prompts import check_format

    schema = rating.resolve(schema)
    if schema.is_paper:
        return check_format
    return lambda text: check_format(text, schema=schema)


def score_rewards(
    parsed: Sequence["ParseResult"],
    targets: np.ndarray,
    format_weight: float = 1.0,
    acc_rounding: str = "grid",
    rater_scores: np.ndarray | None = None,
    *,
    schema: rating.RatingSchema | None = None,
    format_check: Callable[[str], bool] | None = None,
) -> RewardBreakdown:
    """Paper rewards (module docstring) for completions parsed by :func:`vqalib.schema.prompts.parse_answer`
    on ``schema``'s dimensions and levels (``None``: the paper's); ``targets`` ``[N, D]`` are the
    ground-truth levels, NaN where the clip has no label for a dimension (masked: its terms are 0 and
    the total is the mean over the labelled dimensions). Returns per-completion totals ``[N]`` and the
    per-dimension terms ``[N, D]``.
    ``acc_rounding``: ``grid`` (exact level) or ``integer`` (``vqalib.method.aso.reward_acc``);
    ``rater_scores`` ``[N, D, R]`` (NaN-padded, optional): ``R_dist = c - mean_r |pred - s_r|``;
    ``format_check``: the strict-format predicate of a completion's text (default :func:`strict_format`)."""
    from vqalib.method.aso import dist_max, reward_acc, reward_dist, reward_multi_rater
    from vqalib.schema.prompts import STATUS_OK

    schema = rating.resolve(schema)
    check = format_check if format_check is not None else strict_format(schema)
    keys = schema.keys
    n, d = len(parsed), len(keys)
    targets = np.asarray(targets, dtype=float)
    if targets.size != n * d:
        raise ValueError(f"targets has shape {targets.shape}; expected [N, D] = [{n}, {d}] for the {schema.name!r} "
                         f"rating schema's dimensions {list(keys)}")
    targets = targets.reshape(n, d)
    labelled = ~np.isnan(targets)
    safe = np.where(labelled, targets, schema.lo)  # unlabelled entries are masked below
    acc = np.zeros((n, d))
    dist = np.zeros((n, d))
    fmt = np.zeros((n, d))
    racc = reward_acc(torch.as_tensor(safe), rounding=acc_rounding, schema=schema).numpy()  # [N, D, K]
    if rater_scores is None:
        rdist = reward_dist(torch.as_tensor(safe), schema=schema).numpy()
    else:
        rs = np.asarray(rater_scores, dtype=float)
        rs = np.where((~labelled)[..., None] & np.isnan(rs).all(-1, keepdims=True), schema.lo, rs)  # masked below
        rdist = dist_max(schema) + reward_multi_rater(rs, beta=1.0, schema=schema).numpy()
    n_bad, n_missing, examples = 0, 0, []
    for i, res in enumerate(parsed):
        bad = False
        fmt[i, :] = float(check(res.text))
        for j, key in enumerate(keys):
            if not labelled[i, j]:
                continue
            value = res.scores.get(key)
            if res.status.get(key) != STATUS_OK or value is None or res.off_grid.get(key) or res.rescaled.get(key) \
                    or not schema.is_on_grid(value):
                n_missing += 1
                bad = True
                continue
            k = schema.index(value)
            acc[i, j] = racc[i, j, k]
            dist[i, j] = rdist[i, j, k]
        if bad:
            n_bad += 1
            if len(examples) < 3:
                examples.append(res.text[:200])
    per_dim = acc + dist + format_weight * fmt
    if labelled.all():
        total = per_dim.mean(axis=1)  # the paper's five labels: the mean over all of them, as always
    else:
        fmt[~labelled] = 0.0
        per_dim = np.where(labelled, per_dim, 0.0)
        total = per_dim.sum(axis=1) / np.maximum(labelled.sum(axis=1), 1)
    return RewardBreakdown(total=total, acc=acc, dist=dist, fmt=fmt, n_unparsable=n_bad,
                           n_dims_missing=n_missing, examples=examples, labelled=labelled,
                           n_dims_unlabelled=int((~labelled).sum()))
