"""Analytic Score Optimization (ASO): rewards, the closed-form optimal policy and the loss.

Pure maths over the K score levels of a rating schema (``schema=``; ``None`` is the paper's 9 levels
``s ∈ {1.0, 1.5, …, 5.0}``, :data:`vqalib.schema.rating.PAPER`); no model.  Every distribution is a
tensor whose **last axis has K entries**; any leading axes (items, dimensions) are batch axes.  The paper's derivation (its Eqs. 3–13; notebook
``03_aso_derivation`` walks through it step by step) in our own numbering:

(A1) one-step bandit:  ``J(π) = Σ_s π(s|x) R(s, s*) − λ KL(π ‖ π_ref)``, maximised over the simplex.
(A2) Lagrangian:       ``L = J(π) + μ (Σ_s π(s) − 1)``; ``∂L/∂π(s) = 0`` gives
                       ``R(s) − λ (log π(s)/π_ref(s) + 1) + μ = 0``.
(A3) closed form:      ``π*(s|x) = π_ref(s|x) exp(R(s, s*)/λ) / Z(x)``.
(A4) partition:        ``Z(x) = Σ_s π_ref(s|x) exp(R(s, s*)/λ)``, and ``max_π J = J(π*) = λ log Z``.
(A5) imitation by KL:  ``J(π) = λ log Z − λ KL(π ‖ π*)``, so maximising J is matching π*.
(A6) ASO loss:         train π_θ on ``KL(π* ‖ π_θ) = H(π*, π_θ) − H(π*)``, i.e. the soft-target
                       cross-entropy ``ℓ = −Σ_s π*(s) log π_θ(s)`` (H(π*) does not depend on θ).
(A7) its gradient:     with ``π_θ = softmax(z)``, ``∂ℓ/∂z = π_θ − π*``.

Limitation made visible (paper): where ``π_ref(s) = 0`` also ``π*(s) = 0`` for every λ, so
ASO cannot move mass onto a level the reference never produces.  :func:`zero_mass` reports
those levels; :func:`optimal_policy` keeps them at zero unless the user sets a floor ``eps``.

The readouts ``expected_score`` / ``argmax_score`` used here are :mod:`vqalib.method.readout`'s (torch variant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vqalib.method.readout import argmax_score, check_k, expected_score, levels_like
from vqalib.method.readout import as_float_tensor as _t
from vqalib.schema import rating
from vqalib.schema.levels import round_half_up

Schema = rating.RatingSchema

RewardKind = Literal["abs", "sq", "acc", "dist", "grpo", "multi_rater"]
REWARD_KINDS: tuple[str, ...] = ("abs", "sq", "acc", "dist", "grpo")


# --------------------------------------------------------------------------------------- rewards
# Each reward takes the target score(s) s* of shape [...] and returns R(s, s*) of shape [..., K] over the
# schema's K level values (``schema=None``: the paper's 9).

def reward_abs(s_star=None, beta: float = 1.0, *, target=None, schema: Schema | None = None) -> torch.Tensor:
    """ASO's reward ``R(s, s*) = −β |s − s*|`` (paper default β = 1) on the schema's level values ``s``.

    Either the target score ``s_star`` [...] or a **soft target** ``target`` [..., K], a distribution over
    the K levels (:meth:`vqalib.schema.rating.RatingSchema.target`: gaussian / histogram), for which
    ``R(s) = −β Σ_j t_j |s − v_j|`` (the expected distance to the raters' level; a one-hot ``t`` at
    ``v_k`` gives ``−β |s − v_k|``). Raises ``ValueError`` naming K when ``target`` has another last axis."""
    if (s_star is None) == (target is None):
        raise ValueError("reward_abs: give exactly one of s_star (the target score) and target (a distribution over the levels)")
    if target is not None:
        t = _t(target)
        check_k(t, schema, "the soft target")
        v = levels_like(t, schema=schema)
        return -beta * ((v[:, None] - v[None, :]).abs() * t[..., None, :]).sum(-1)
    s_star = _t(s_star)
    return -beta * (levels_like(s_star, schema=schema) - s_star[..., None]).abs()


def reward_sq(s_star, beta: float = 1.0, *, schema: Schema | None = None) -> torch.Tensor:
    """Squared-distance reward ``R(s, s*) = −β (s − s*)²``."""
    s_star = _t(s_star)
    return -beta * (levels_like(s_star, schema=schema) - s_star[..., None]) ** 2


def _round(x: torch.Tensor, rounding: str, schema: Schema | None = None) -> torch.Tensor:
    if rounding == "integer":
        return torch.as_tensor(round_half_up(x.detach().cpu().numpy(), step=1.0), dtype=x.dtype, device=x.device)
    if rounding == "grid":
        return torch.as_tensor(rating.resolve(schema).snap(x.detach().cpu().numpy()), dtype=x.dtype, device=x.device)
    raise ValueError(f"rounding={rounding!r}: use 'grid' (exact level, symmetric) or 'integer' (nearest integer, half up)")


AccRounding = Literal["grid", "integer"]
ACC_ROUNDINGS: tuple[str, ...] = ("grid", "integer")


def reward_acc(s_star, rounding: AccRounding = "grid", *, schema: Schema | None = None) -> torch.Tensor:
    """GRPO baseline accuracy reward ``R_acc = 1[round(pred) = round(gt)]`` (paper Eq. 1, Stage II), over the
    schema's K levels.

    ``rounding="grid"`` (default): ``round`` snaps to the schema's nearest level (the paper: 0.5 grid;
    :meth:`~vqalib.schema.rating.RatingSchema.snap`), so on the grid R_acc is
    the exact-level match the paper's words ask for ("hit the exact ground-truth bin").  It is
    symmetric: for s* = 3.0 only 3.0 earns 1, and 2.5 and 3.5 both earn 0.
    ``rounding="integer"``: the literal reading with rounding to the nearest integer, half up
    (2.5 → 3, 3.5 → 4, as in ``vqalib.schema.levels``).  It is lopsided on the 0.5 grid: for s* = 3.0 the
    level 2.5 earns 1 but 3.5 earns 0, and for s* = 3.5 the levels 3.5, 4.0 earn 1 but 3.0 earns 0.
    """
    s_star = _t(s_star)
    s = levels_like(s_star, schema=schema)
    return (_round(s, rounding, schema) == _round(s_star, rounding, schema)[..., None]).to(s_star.dtype)


def dist_max(schema: Schema | None = None) -> float:
    """The constant of GRPO's distance reward ``R_dist = c − |pred − gt|``: the schema's :attr:`span`
    (``hi − lo``, the largest possible error, so R_dist runs from 0 to ``span``), except on the paper's
    grid (PAPER and MOS9: levels 1.0..5.0), where it stays the paper's literal 5 (``5 − |pred − gt|``,
    so the paper's rewards and logged numbers are unchanged; the paper's span is 4)."""
    schema = rating.resolve(schema)
    return 5.0 if schema.values == rating.PAPER.values else float(schema.span)


def reward_dist(s_star, *, schema: Schema | None = None) -> torch.Tensor:
    """GRPO baseline distance reward ``R_dist = c − |pred − gt|`` (paper, Stage II: ``c = 5``; another grid:
    ``c = schema.span``, :func:`dist_max`)."""
    s_star = _t(s_star)
    return dist_max(schema) - (levels_like(s_star, schema=schema) - s_star[..., None]).abs()


def reward_grpo(s_star, w_acc: float = 1.0, w_dist: float = 1.0, rounding: AccRounding = "grid", *,
                schema: Schema | None = None) -> torch.Tensor:
    """Weighted composite ``w_acc R_acc + w_dist R_dist`` (paper: plain sum, weights 1; format reward not modelled)."""
    return w_acc * reward_acc(s_star, rounding, schema=schema) + w_dist * reward_dist(s_star, schema=schema)


def reward_multi_rater(rater_scores, beta: float = 1.0, *, schema: Schema | None = None) -> torch.Tensor:
    """Multi-rater reward ``R(s) = −β · mean_r |s − s_r|`` from the raters' own scores ``[..., n_raters]``.

    Beyond the paper: uses the annotation distribution, not only its mean.  NaN marks an
    absent rater (for ragged rater counts); an item with no rater at all raises ``ValueError``.
    """
    r = _t(rater_scores)
    present = ~torch.isnan(r)
    n = present.sum(-1)
    if (n == 0).any():
        bad = torch.nonzero(n == 0)[0].tolist()
        raise ValueError(f"reward_multi_rater: item at index {bad} has no rater score (all NaN); drop it or give scores")
    dist = (levels_like(r, schema=schema)[..., None] - torch.nan_to_num(r)[..., None, :]).abs()  # [..., K, R]
    dist = torch.where(present[..., None, :], dist, torch.zeros_like(dist))
    return -beta * dist.sum(-1) / n[..., None]


def reward(kind: str, s_star, beta: float = 1.0, *, schema: Schema | None = None, **kw) -> torch.Tensor:
    """Dispatch by name: ``"abs"``, ``"sq"`` (use β), ``"acc"``, ``"dist"``, ``"grpo"`` (ignore β); over the
    schema's K levels."""
    if kind == "abs":
        return reward_abs(s_star, beta, schema=schema)
    if kind == "sq":
        return reward_sq(s_star, beta, schema=schema)
    if kind == "acc":
        return reward_acc(s_star, schema=schema, **kw)
    if kind == "dist":
        return reward_dist(s_star, schema=schema)
    if kind == "grpo":
        return reward_grpo(s_star, schema=schema, **kw)
    raise ValueError(f"unknown reward kind {kind!r}; use one of {REWARD_KINDS} (or reward_multi_rater directly)")


# ------------------------------------------------------------------------------ optimal policy

def as_log_probs(pi_ref, *, probs: bool = False, eps: float = 0.0, schema: Schema | None = None) -> torch.Tensor:
    """Reference policy as log-probabilities ``log π_ref`` [..., K] (zeros become ``−inf``; K: the schema's).

    ``probs=True`` means ``pi_ref`` holds probabilities, otherwise log-probabilities.  Both must
    be normalised over the last axis (checked in float64, to the precision of ``pi_ref``'s dtype:
    ``|Σπ − 1| ≤ max(1e-4, 4 ε_dtype)``, so a π_ref normalised in float32 and stored in bf16, whose
    sum is off by up to a few 1e-3, is accepted).  ``eps > 0`` applies a user floor: the mixture
    ``(1 − Kε) π_ref + ε`` gives every level at least ``ε`` (requires ``ε ≤ 1/K``).
    """
    x = _t(pi_ref)
    schema = rating.resolve(schema)
    n_levels = schema.n_levels
    if x.shape[-1] != n_levels:
        raise ValueError(f"pi_ref has last axis {x.shape[-1]}, expected the K = {n_levels} levels of the "
                         f"{schema.name!r} rating schema; pass the matching schema=")
    p = x if probs else x.exp()
    if (p < 0).any() or torch.isnan(p).any():
        raise ValueError("pi_ref has negative or NaN entries; pass probabilities (probs=True) or log-probabilities")
    total = (x.double() if probs else x.double().exp()).sum(-1)
    atol = max(1e-4, 4 * torch.finfo(x.dtype).eps)
    if not torch.allclose(total, torch.ones_like(total), atol=atol):
        worst = float((total - 1).abs().max())
        raise ValueError(f"pi_ref is not normalised over the {n_levels} levels (max |Σπ − 1| = {worst:.2e} > {atol:.1e} "
                         f"allowed for {x.dtype}); renormalise it (e.g. log_softmax over the {n_levels} levels)")
    if eps:
        if not 0 < eps <= 1 / n_levels:
            raise ValueError(f"eps={eps}: the floor must lie in (0, 1/{n_levels}] (K = {n_levels} levels)")
        p = (1 - n_levels * eps) * p + eps
        return p.log()
    return p.log() if probs else x


def zero_mass(pi_ref, *, probs: bool = False) -> torch.Tensor:
    """Boolean mask [..., K] of levels where ``π_ref(s) = 0``: ASO can never put mass there (paper's limitation)."""
    x = _t(pi_ref)
    return (x == 0) if probs else torch.isneginf(x)


def label_mass(pi, s_star, *, schema: Schema | None = None) -> torch.Tensor:
    """``π(s*)`` [...]: the probability ``pi`` [..., K] gives the human level ``s_star`` [...].

    ``s_star`` must be one of the schema's levels (:meth:`~vqalib.schema.rating.RatingSchema.index` raises
    naming the value otherwise).  With ``pi = π_ref`` this is the quantity the paper's limitation is about: π*(s*)
    is at most ``π_ref(s*) / Z`` with ``Z ≥ exp(−β·4/λ)``, so a near-zero π_ref(s*) stays small.
    """
    pi = _t(pi)
    check_k(pi, schema)
    idx = torch.as_tensor(np.asarray(grid_index(_t(s_star).detach().cpu().numpy(), schema=schema)), device=pi.device)
    return pi.gather(-1, idx.long()[..., None].expand(*pi.shape[:-1], 1)).squeeze(-1)


def grid_index(x, *, schema: Schema | None = None):
    """Index ``0..K-1`` of level value(s) ``x`` on the schema's grid (int or int array). Raises ``ValueError``
    naming the values that are not on the grid and the schema's levels."""
    schema = rating.resolve(schema)
    arr = np.asarray(x, dtype=float)
    on = np.asarray(schema.is_on_grid(arr))
    if not np.all(on):
        bad = np.atleast_1d(arr)[~np.atleast_1d(on)]
        raise ValueError(f"value(s) {bad[:5].tolist()} not on the grid {schema.strings} of the {schema.name!r} "
                         "rating schema; snap them first (schema.snap)")
    return schema.index(arr)


def log_partition(logp_ref: torch.Tensor, R: torch.Tensor, lam: float) -> torch.Tensor:
    """(A4) ``log Z(x) = log Σ_s π_ref(s|x) exp(R(s, s*)/λ)``, stably by logsumexp; shape [...]."""
    return torch.logsumexp(logp_ref + R / lam, dim=-1)


def optimal_policy(logp_ref, reward, lam: float = 1.0, *, probs: bool = False, eps: float = 0.0,
                   log: bool = False, schema: Schema | None = None) -> torch.Tensor:
    """(A3) The closed-form maximiser of (A1): ``π*(s|x) = π_ref(s|x) exp(R(s, s*)/λ) / Z(x)``.

    ``logp_ref``: log π_ref [..., K] (or probabilities with ``probs=True``; K: the schema's levels);
    ``reward``: R [..., K] (broadcast against it); ``lam``: λ > 0 (paper 1.0).  Computed in log space:
    ``log π* = log π_ref + R/λ − log Z``.  Limits: ``lam = inf`` returns π_ref; ``lam = 0``
    returns the uniform distribution over the reward's argmax levels *within the support* of
    π_ref.  Levels with π_ref = 0 stay at 0 (see :func:`zero_mass`) unless ``eps`` sets a floor.
    Returns probabilities, or log-probabilities with ``log=True``.
    """
    lp = as_log_probs(logp_ref, probs=probs, eps=eps, schema=schema)
    R = _t(reward, like=lp).to(lp.dtype)
    check_k(R, schema, "the reward")
    lp, R = torch.broadcast_tensors(lp, R)
    if not lam >= 0:
        raise ValueError(f"lam={lam}: λ must be ≥ 0 (0 = greedy limit, inf = π_ref)")
    if math.isinf(lam):
        out = lp.clone()
    elif lam == 0:
        masked = torch.where(torch.isneginf(lp), torch.full_like(R, -math.inf), R)
        best = masked == masked.max(-1, keepdim=True).values
        out = torch.where(best, torch.zeros_like(R), torch.full_like(R, -math.inf))
        out = out - torch.logsumexp(out, -1, keepdim=True)
    else:
        a = lp + R / lam
        out = a - torch.logsumexp(a, -1, keepdim=True)
    return out if log else out.exp()


# ------------------------------------------------------------------------------- ASO loss (A6)

def aso_loss(logp_theta: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
             reduction: Literal["mean", "sum", "none"] = "mean") -> torch.Tensor:
    """(A6) Soft-target cross-entropy ``ℓ = −Σ_s π*(s) log π_θ(s)`` over the K levels.

    ``logp_theta``: log π_θ [..., K], either normalised over the K levels (``scoring.level_logprobs``)
    or, as the ASO trainer passes it, the **unnormalised** level log-probabilities of the model
    (``scoring.level_logprobs_raw``: ``Σ_s π_θ(s) = 1 − outside`` where ``outside`` is the mass on
    every other continuation).  Then ``ℓ = −Σ_s π*(s) log π_θ,K(s) − log(1 − outside)``: the extra
    term penalises mass off the K levels, which the renormalised form cannot see (see
    :func:`outside_penalty`);
    ``target``: π* [..., K] (probabilities, no gradient flows into it); ``mask``: optional bool
    [...] (True = counts), e.g. to skip an unparsable item.  ``reduction="mean"`` averages over
    the counted items × dimensions, ``"sum"`` sums them, ``"none"`` returns ℓ per entry [...].
    Equals ``KL(π* ‖ π_θ) + H(π*)``; its gradient w.r.t. the logits is ``π_θ − π*`` (A7).
    """
    target = target.detach().to(logp_theta.dtype)
    if target.shape[-1] != logp_theta.shape[-1]:
        raise ValueError(f"aso_loss: log pi_theta has K = {logp_theta.shape[-1]} levels but the target pi* has "
                         f"K = {target.shape[-1]}")
    terms = torch.where(target > 0, target * logp_theta, torch.zeros_like(logp_theta))
    per = -terms.sum(-1)
    if mask is not None:
        mask = mask.to(torch.bool)
        per = torch.where(mask, per, torch.zeros_like(per))
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if reduction == "mean":
        n = per.numel() if mask is None else mask.sum()
        return per.sum() / torch.clamp(torch.as_tensor(n, dtype=per.dtype), min=1)
    raise ValueError(f"reduction={reduction!r}: use 'mean', 'sum' or 'none'")


def outside_penalty(logp_raw: torch.Tensor) -> torch.Tensor:
    """``−log(1 − outside) = −log Σ_s π_θ(s)`` [...] from unnormalised level log-probs [..., K].

    The part of :func:`aso_loss` on unnormalised log-probs that the K-level renormalisation drops:
    0 when all mass is on the levels, growing without bound as the mass leaves them.  Since π*
    sums to 1, ``aso_loss(raw, π*) = aso_loss(raw − logsumexp(raw), π*) + outside_penalty(raw)``.
    """
    return -torch.logsumexp(logp_raw, dim=-1)


# ------------------------------------------------------------------------------------- helpers

def kl(p: torch.Tensor, q: torch.Tensor, *, log: bool = False) -> torch.Tensor:
    """``KL(p ‖ q) = Σ_s p log(p/q)`` over the last axis (0·log 0 = 0; ``inf`` where p > 0 = q).

    ``log=True``: both arguments are log-probabilities.
    """
    lp, lq = (p, q) if log else (_t(p).log(), _t(q).log())
    pp = lp.exp()
    terms = torch.where(pp > 0, pp * (lp - lq), torch.zeros_like(pp))
    return terms.sum(-1)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``H(p) = −Σ_s p log p`` (nats) over the last axis."""
    p = _t(p)
    return -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)


def expected_reward(pi: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """``E_π[R] = Σ_s π(s) R(s, s*)`` over the last axis (0·R ignored, so −inf rewards on zero mass are fine)."""
    pi, R = _t(pi), _t(R)
    return torch.where(pi > 0, pi * R, torch.zeros_like(pi)).sum(-1)


def objective(pi, R, pi_ref, lam: float) -> torch.Tensor:
    """(A1) ``J(π) = Σ_s π R − λ KL(π ‖ π_ref)`` with π, π_ref as probabilities."""
    return expected_reward(pi, R) - lam * kl(_t(pi), _t(pi_ref))


def stationarity_gap(pi, R, pi_ref, lam: float) -> torch.Tensor:
    """(A2) Spread (max − min over the support of π) of ``∂J/∂π(s) = R(s) − λ (log π(s)/π_ref(s) + 1)``.

    At the constrained optimum all these derivatives equal the same ``−μ`` (Lagrange multiplier),
    so the gap is 0 for π* and positive for any other interior π.
    """
    pi, R, pi_ref = _t(pi), _t(R), _t(pi_ref)
    d = R - lam * (pi.log() - pi_ref.log() + 1)
    on = pi > 0
    hi = torch.where(on, d, torch.full_like(d, -math.inf)).max(-1).values
    lo = torch.where(on, d, torch.full_like(d, math.inf)).min(-1).values
    return hi - lo


def tradeoff_curve(logp_ref, R, lams, *, probs: bool = False, eps: float = 0.0,
                   schema: Schema | None = None) -> dict[str, np.ndarray]:
    """For each λ in ``lams``: ``E_π*[R]``, ``KL(π* ‖ π_ref)`` and the expected score under π*.

    One item (``R`` and π_ref of shape [K]).  Small λ buys reward with divergence from π_ref;
    large λ stays near π_ref.  Returns plain numpy arrays keyed ``lam, reward, kl, score``.
    """
    lp = as_log_probs(logp_ref, probs=probs, eps=eps, schema=schema)
    lams_t = _t(lams, like=lp)
    R = _t(R, like=lp).to(lp.dtype)
    out = {"lam": [], "reward": [], "kl": [], "score": []}
    for lam in lams_t.tolist():
        lpi = optimal_policy(lp, R, lam, log=True, schema=schema)
        out["lam"].append(lam)
        out["reward"].append(float(expected_reward(lpi.exp(), R)))
        out["kl"].append(float(kl(lpi, lp, log=True)))
        out["score"].append(float(expected_score(lpi.exp(), schema=schema)))
    return {k: np.asarray(v) for k, v in out.items()}


# -------------------------------------------------------------------------- π_ref health (issue 20)

def keep_argmax_threshold(lam: float = 1.0, beta: float = 1.0, step: float | None = None, *,
                          schema: Schema | None = None) -> float:
    """The share ``p`` of π_ref on the level next to s* (the rest on s*) above which π* keeps that wrong
    argmax: ``p* = 1 / (1 + exp(−β·step/λ))`` (π* ∝ π_ref exp(−β|s−s*|/λ) multiplies the neighbour by
    ``exp(−β·step/λ)`` relative to s*). ``step``: the distance to the neighbour, default the schema's
    smallest level spacing (the paper's 0.5). λ = β = 1 on the paper's grid: 0.6225. A larger β or smaller
    λ raises it."""
    if step is None:
        schema = rating.resolve(schema)
        step = schema.step if schema.step is not None else float(np.diff(schema.levels).min())
    return 1.0 / (1.0 + math.exp(-beta * step / lam))


@dataclass(frozen=True)
class HealthThresholds:
    """When :func:`pi_ref_health_problems` calls the cached π_ref unfit for ASO (all means over clips × dimensions).

    ``max_off_level``: mean mass off the K level strings (the paper: nine) above this -> π_ref is mostly read where the
    model does not write a level (renormalising it gives noise). ``min_kl``/``min_flip``/``min_shift``:
    KL(π*‖π_ref) (nats), the share of items whose argmax flips and the mean |Δ expected score| all below
    these -> π* ≈ π_ref and ASO is a no-op. ``max_label_mass``: mean π*(s*) above this -> π* ≈ the one-hot
    label and ASO is SFT on the score tokens."""

    max_off_level: float = 0.5
    min_kl: float = 0.01
    min_flip: float = 0.01
    min_shift: float = 0.02
    max_label_mass: float = 0.9


def pi_ref_health(logp_ref, s_star, lam: float = 1.0, beta: float = 1.0, outside=None, *,
                  schema: Schema | None = None) -> dict[str, float]:
    """How usable a cached π_ref is for ASO, and how far λ and β move it.

    ``logp_ref``: log π_ref [N, D, K] (or [N, K]) renormalised over the schema's K levels; ``s_star``: the
    labels [N, D] on the schema's levels, NaN where a clip has no label for a dimension (those items are
    left out of every number and counted in ``n_unlabelled``, a key present only when there are
    some); ``outside``: the mass the model put off the K level strings [N, D] (``None`` = unknown,
    reported as NaN). Returns plain floats: ``off_level_mean``,
    ``off_level_share_over_half`` (items with more than half off), ``entropy`` (nats, uniform over the paper's 9 = 2.197),
    ``p_label_mean`` / ``p_label_p10`` / ``p_label_p50`` / ``p_label_p90`` (π_ref(s*)),
    ``pistar_label_mean`` (π*(s*)), ``kl_star_ref`` (KL(π*‖π_ref), nats), ``argmax_flip_share``,
    ``expected_shift_mean`` (mean |E_π*[s] − E_π_ref[s]|), ``n_items``, ``lam``, ``beta``; plus the
    per-dimension means ``off_level_by_dim`` and ``p_label_by_dim`` (lists, D entries) for [N, D, K]."""
    lp = _t(logp_ref).double()
    st = _t(s_star).double()
    check_k(lp, schema, "log pi_ref")
    labelled = ~torch.isnan(st)
    n_unlabelled = int((~labelled).sum())
    by_dim = off_by_dim = None
    if n_unlabelled:  # keep the labelled items only (per-dimension means over each dimension's own items)
        if st.dim() >= 2:
            pl_all = label_mass(lp.exp(), torch.where(labelled, st, torch.full_like(st, rating.resolve(schema).lo)),
                                schema=schema)
            by_dim = [float(pl_all[..., d][labelled[..., d]].mean()) for d in range(st.shape[-1])]
        if outside is not None:
            o_all = _t(outside).double()
            if o_all.dim() >= 2:
                off_by_dim = [float(o_all[..., d][labelled[..., d]].mean()) for d in range(o_all.shape[-1])]
            outside = o_all[labelled]
        lp, st = lp[labelled], st[labelled]
    p = lp.exp()
    star = optimal_policy(lp, reward_abs(st, beta, schema=schema), lam, schema=schema)
    pl = label_mass(p, st, schema=schema)
    q = torch.quantile(pl.flatten(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    out = {
        "n_items": int(pl.numel()), "lam": float(lam), "beta": float(beta),
        "entropy": float(entropy(p).mean()),
        "p_label_mean": float(pl.mean()), "p_label_p10": float(q[0]), "p_label_p50": float(q[1]),
        "p_label_p90": float(q[2]),
        "pistar_label_mean": float(label_mass(star, st, schema=schema).mean()),
        "kl_star_ref": float(kl(star, p).mean()),
        "argmax_flip_share": float((argmax_score(star, schema=schema) != argmax_score(p, schema=schema)).double().mean()),
        "expected_shift_mean": float((expected_score(star, schema=schema) - expected_score(p, schema=schema)).abs().mean()),
    }
    if n_unlabelled:
        out["n_unlabelled"] = n_unlabelled
    if outside is not None:
        o = _t(outside).double()
        out["off_level_mean"] = float(o.mean())
        out["off_level_share_over_half"] = float((o > 0.5).double().mean())
        if o.dim() >= 2:
            out["off_level_by_dim"] = [float(v) for v in o.reshape(-1, o.shape[-1]).mean(0)]
        elif off_by_dim is not None:
            out["off_level_by_dim"] = off_by_dim
    else:
        out["off_level_mean"] = out["off_level_share_over_half"] = float("nan")
    if pl.dim() >= 2:
        out["p_label_by_dim"] = [float(v) for v in pl.reshape(-1, pl.shape[-1]).mean(0)]
    elif by_dim is not None:
        out["p_label_by_dim"] = by_dim
    return out


_K_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}


def n_levels_words(schema: Schema | None) -> str:
    """``"nine"`` for the paper's K = 9 (the words the messages always had), the number in words up to ten."""
    k = rating.resolve(schema).n_levels
    return _K_WORDS.get(k, str(k))


def pi_ref_health_problems(health: dict[str, float], th: HealthThresholds | None = None, *,
                           schema: Schema | None = None) -> list[str]:
    """The problems of a :func:`pi_ref_health` report under thresholds ``th``, each with its fix; [] = healthy."""
    th = th or HealthThresholds()
    k_words = n_levels_words(schema)
    out = []
    off = health.get("off_level_mean", float("nan"))
    if off == off and off > th.max_off_level:
        out.append(f"pi_ref is mostly off the levels: {off:.0%} of the mass where pi_ref is read is on text other "
                   f"than the {k_words} levels (level strings, or keywords with target_position: keyword; limit "
                   f"{th.max_off_level:.0%}), so the renormalised pi_ref is close to noise. Fix: read pi_ref where the "
                   f"model writes its level (target_position: keyword after an SFT with rationale: full), train the SFT "
                   f"model longer, or use rationale: none/short so the score line follows text the model writes")
    if (health["kl_star_ref"] < th.min_kl and health["argmax_flip_share"] < th.min_flip
            and health["expected_shift_mean"] < th.min_shift):
        out.append(f"pi* ~ pi_ref, ASO would be a no-op: KL(pi*||pi_ref) = {health['kl_star_ref']:.4f} nats, "
                   f"{health['argmax_flip_share']:.1%} of argmaxes flip, mean expected-score shift "
                   f"{health['expected_shift_mean']:.3f} (limits {th.min_kl}, {th.min_flip:.0%}, {th.min_shift}). "
                   f"Fix: raise beta or lower lam (lam={health['lam']}, beta={health['beta']})")
    if health["pistar_label_mean"] > th.max_label_mass:
        out.append(f"pi* ~ the one-hot label, ASO would be SFT on the score tokens: mean pi*(s*) = "
                   f"{health['pistar_label_mean']:.3f} (limit {th.max_label_mass}). Fix: raise lam or lower beta, and "
                   f"check that the text before the score does not name it (collator.reveals_score)")
    return out


def format_health(health: dict[str, float], *, schema: Schema | None = None) -> str:
    """A few lines of text for a :func:`pi_ref_health` report (notebook 06 and the training log)."""
    k = rating.resolve(schema).n_levels
    lines = [f"pi_ref health over {health['n_items']} clip x dimension items (lam={health['lam']}, beta={health['beta']}):",
             f"  off-level mass      mean {health['off_level_mean']:.3f}, items with > 50 % off: "
             f"{health['off_level_share_over_half']:.1%}",
             f"  entropy             {health['entropy']:.3f} nats (uniform over {k} = {math.log(k):.3f})",
             f"  pi_ref(s*)          mean {health['p_label_mean']:.3f}  p10 {health['p_label_p10']:.3f}  "
             f"p50 {health['p_label_p50']:.3f}  p90 {health['p_label_p90']:.3f}  (uniform {1 / k:.3f})",
             f"  pi*(s*)             mean {health['pistar_label_mean']:.3f}",
             f"  how far pi* moves   KL(pi*||pi_ref) {health['kl_star_ref']:.4f} nats, argmax flips "
             f"{health['argmax_flip_share']:.1%}, mean |expected score shift| {health['expected_shift_mean']:.3f}"]
    if "off_level_by_dim" in health:
        lines.append("  off-level by dim    " + "  ".join(f"{v:.2f}" for v in health["off_level_by_dim"]))
    if health.get("n_unlabelled"):
        lines.append(f"  unlabelled items    {health['n_unlabelled']} (clip x dimension without a label, left out)")
    return "\n".join(lines)
