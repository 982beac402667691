"""Analytic Score Optimization (ASO): rewards, the closed-form optimal policy and the loss.

Pure maths over the 9 score levels ``s ∈ {1.0, 1.5, …, 5.0}`` (``vqalib.schema.levels.LEVELS``);
no model.  Every distribution is a tensor whose **last axis has 9 entries**; any leading
axes (items, dimensions) are batch axes.  The paper's derivation (its Eqs. 3–13; notebook
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

from vqalib.method.readout import argmax_score, expected_score, levels_like
from vqalib.method.readout import as_float_tensor as _t
from vqalib.schema.levels import N_LEVELS, level_index, round_half_up, snap_to_grid

RewardKind = Literal["abs", "sq", "acc", "dist", "grpo", "multi_rater"]
REWARD_KINDS: tuple[str, ...] = ("abs", "sq", "acc", "dist", "grpo")


# --------------------------------------------------------------------------------------- rewards
# Each reward takes the target score(s) s* of shape [...] and returns R(s, s*) of shape [..., 9].

def reward_abs(s_star, beta: float = 1.0) -> torch.Tensor:
    """ASO's reward ``R(s, s*) = −β |s − s*|`` (paper default β = 1)."""
    s_star = _t(s_star)
    return -beta * (levels_like(s_star) - s_star[..., None]).abs()


def reward_sq(s_star, beta: float = 1.0) -> torch.Tensor:
    """Squared-distance reward ``R(s, s*) = −β (s − s*)²``."""
    s_star = _t(s_star)
    return -beta * (levels_like(s_star) - s_star[..., None]) ** 2


def _round(x: torch.Tensor, rounding: str) -> torch.Tensor:
    if rounding == "integer":
        return torch.as_tensor(round_half_up(x.detach().cpu().numpy(), step=1.0), dtype=x.dtype, device=x.device)
    if rounding == "grid":
        return torch.as_tensor(snap_to_grid(x.detach().cpu().numpy()), dtype=x.dtype, device=x.device)
    raise ValueError(f"rounding={rounding!r}: use 'grid' (exact level, symmetric) or 'integer' (nearest integer, half up)")


AccRounding = Literal["grid", "integer"]
ACC_ROUNDINGS: tuple[str, ...] = ("grid", "integer")


def reward_acc(s_star, rounding: AccRounding = "grid") -> torch.Tensor:
    """GRPO baseline accuracy reward ``R_acc = 1[round(pred) = round(gt)]`` (paper Eq. 1, Stage II).

    ``rounding="grid"`` (default): ``round`` snaps to the nearest 0.5 level, so on the grid R_acc is
    the exact-level match the paper's words ask for ("hit the exact ground-truth bin").  It is
    symmetric: for s* = 3.0 only 3.0 earns 1, and 2.5 and 3.5 both earn 0.
    ``rounding="integer"``: the literal reading with rounding to the nearest integer, half up
    (2.5 → 3, 3.5 → 4, as in ``vqalib.schema.levels``).  It is lopsided on the 0.5 grid: for s* = 3.0 the
    level 2.5 earns 1 but 3.5 earns 0, and for s* = 3.5 the levels 3.5, 4.0 earn 1 but 3.0 earns 0.
    """
    s_star = _t(s_star)
    s = levels_like(s_star)
    return (_round(s, rounding) == _round(s_star, rounding)[..., None]).to(s_star.dtype)


def reward_dist(s_star) -> torch.Tensor:
    """GRPO baseline distance reward ``R_dist = 5 − |pred − gt|`` (paper, Stage II)."""
    s_star = _t(s_star)
    return 5.0 - (levels_like(s_star) - s_star[..., None]).abs()


def reward_grpo(s_star, w_acc: float = 1.0, w_dist: float = 1.0, rounding: AccRounding = "grid") -> torch.Tensor:
    """Weighted composite ``w_acc R_acc + w_dist R_dist`` (paper: plain sum, weights 1; format reward not modelled)."""
    return w_acc * reward_acc(s_star, rounding) + w_dist * reward_dist(s_star)


def reward_multi_rater(rater_scores, beta: float = 1.0) -> torch.Tensor:
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
    dist = (levels_like(r)[..., None] - torch.nan_to_num(r)[..., None, :]).abs()  # [..., 9, R]
    dist = torch.where(present[..., None, :], dist, torch.zeros_like(dist))
    return -beta * dist.sum(-1) / n[..., None]


def reward(kind: str, s_star, beta: float = 1.0, **kw) -> torch.Tensor:
    """Dispatch by name: ``"abs"``, ``"sq"`` (use β), ``"acc"``, ``"dist"``, ``"grpo"`` (ignore β)."""
    if kind == "abs":
        return reward_abs(s_star, beta)
    if kind == "sq":
        return reward_sq(s_star, beta)
    if kind == "acc":
        return reward_acc(s_star, **kw)
    if kind == "dist":
        return reward_dist(s_star)
    if kind == "grpo":
        return reward_grpo(s_star, **kw)
    raise ValueError(f"unknown reward kind {kind!r}; use one of {REWARD_KINDS} (or reward_multi_rater directly)")


# ------------------------------------------------------------------------------ optimal policy

def as_log_probs(pi_ref, *, probs: bool = False, eps: float = 0.0) -> torch.Tensor:
    """Reference policy as log-probabilities ``log π_ref`` [..., 9] (zeros become ``−inf``).

    ``probs=True`` means ``pi_ref`` holds probabilities, otherwise log-probabilities.  Both must
    be normalised over the last axis (checked in float64, to the precision of ``pi_ref``'s dtype:
    ``|Σπ − 1| ≤ max(1e-4, 4 ε_dtype)``, so a π_ref normalised in float32 and stored in bf16, whose
    sum is off by up to a few 1e-3, is accepted).  ``eps > 0`` applies a user floor: the mixture
    ``(1 − 9ε) π_ref + ε`` gives every level at least ``ε`` (requires ``ε ≤ 1/9``).
    """
    x = _t(pi_ref)
    if x.shape[-1] != N_LEVELS:
        raise ValueError(f"pi_ref has last axis {x.shape[-1]}, expected the {N_LEVELS} levels")
    p = x if probs else x.exp()
    if (p < 0).any() or torch.isnan(p).any():
        raise ValueError("pi_ref has negative or NaN entries; pass probabilities (probs=True) or log-probabilities")
    total = (x.double() if probs else x.double().exp()).sum(-1)
    atol = max(1e-4, 4 * torch.finfo(x.dtype).eps)
    if not torch.allclose(total, torch.ones_like(total), atol=atol):
        worst = float((total - 1).abs().max())
        raise ValueError(f"pi_ref is not normalised over the 9 levels (max |Σπ − 1| = {worst:.2e} > {atol:.1e} "
                         f"allowed for {x.dtype}); renormalise it (e.g. log_softmax over the 9 levels)")
    if eps:
        if not 0 < eps <= 1 / N_LEVELS:
            raise ValueError(f"eps={eps}: the floor must lie in (0, 1/{N_LEVELS}]")
        p = (1 - N_LEVELS * eps) * p + eps
        return p.log()
    return p.log() if probs else x


def zero_mass(pi_ref, *, probs: bool = False) -> torch.Tensor:
    """Boolean mask [..., 9] of levels where ``π_ref(s) = 0``: ASO can never put mass there (paper's limitation)."""
    x = _t(pi_ref)
    return (x == 0) if probs else torch.isneginf(x)


def label_mass(pi, s_star) -> torch.Tensor:
    """``π(s*)`` [...]: the probability ``pi`` [..., 9] gives the human level ``s_star`` [...].

    ``s_star`` must lie on the 0.5 grid (``vqalib.schema.levels.level_index`` raises naming the value
    otherwise).  With ``pi = π_ref`` this is the quantity the paper's limitation is about: π*(s*)
    is at most ``π_ref(s*) / Z`` with ``Z ≥ exp(−β·4/λ)``, so a near-zero π_ref(s*) stays small.
    """
    pi = _t(pi)
    idx = torch.as_tensor(np.asarray(level_index(_t(s_star).detach().cpu().numpy())), device=pi.device)
    return pi.gather(-1, idx.long()[..., None].expand(*pi.shape[:-1], 1)).squeeze(-1)


def log_partition(logp_ref: torch.Tensor, R: torch.Tensor, lam: float) -> torch.Tensor:
    """(A4) ``log Z(x) = log Σ_s π_ref(s|x) exp(R(s, s*)/λ)``, stably by logsumexp; shape [...]."""
    return torch.logsumexp(logp_ref + R / lam, dim=-1)


def optimal_policy(logp_ref, reward, lam: float = 1.0, *, probs: bool = False, eps: float = 0.0,
                   log: bool = False) -> torch.Tensor:
    """(A3) The closed-form maximiser of (A1): ``π*(s|x) = π_ref(s|x) exp(R(s, s*)/λ) / Z(x)``.

    ``logp_ref``: log π_ref [..., 9] (or probabilities with ``probs=True``); ``reward``: R [..., 9]
    (broadcast against it); ``lam``: λ > 0 (paper 1.0).  Computed in log space:
    ``log π* = log π_ref + R/λ − log Z``.  Limits: ``lam = inf`` returns π_ref; ``lam = 0``
    returns the uniform distribution over the reward's argmax levels *within the support* of
    π_ref.  Levels with π_ref = 0 stay at 0 (see :func:`zero_mass`) unless ``eps`` sets a floor.
    Returns probabilities, or log-probabilities with ``log=True``.
    """
    lp = as_log_probs(logp_ref, probs=probs, eps=eps)
    R = _t(reward, like=lp).to(lp.dtype)
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
    """(A6) Soft-target cross-entropy ``ℓ = −Σ_s π*(s) log π_θ(s)`` over the 9 levels.

    ``logp_theta``: log π_θ [..., 9], either normalised over the 9 levels (``scoring.level_logprobs``)
    or, as the ASO trainer passes it, the **unnormalised** level log-probabilities of the model
    (``scoring.level_logprobs_raw``: ``Σ_s π_θ(s) = 1 − outside`` where ``outside`` is the mass on
    every other continuation).  Then ``ℓ = −Σ_s π*(s) log π_θ,9(s) − log(1 − outside)``: the extra
    term penalises mass off the nine levels, which the renormalised form cannot see (see
    :func:`outside_penalty`);
    ``target``: π* [..., 9] (probabilities, no gradient flows into it); ``mask``: optional bool
    [...] (True = counts), e.g. to skip an unparsable item.  ``reduction="mean"`` averages over
    the counted items × dimensions, ``"sum"`` sums them, ``"none"`` returns ℓ per entry [...].
    Equals ``KL(π* ‖ π_θ) + H(π*)``; its gradient w.r.t. the logits is ``π_θ − π*`` (A7).
    """
    target = target.detach().to(logp_theta.dtype)
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
    """``−log(1 − outside) = −log Σ_s π_θ(s)`` [...] from unnormalised level log-probs [..., 9].

    The part of :func:`aso_loss` on unnormalised log-probs that the 9-level renormalisation drops:
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


def tradeoff_curve(logp_ref, R, lams, *, probs: bool = False, eps: float = 0.0) -> dict[str, np.ndarray]:
    """For each λ in ``lams``: ``E_π*[R]``, ``KL(π* ‖ π_ref)`` and the expected score under π*.

    One item (``R`` and π_ref of shape [9]).  Small λ buys reward with divergence from π_ref;
    large λ stays near π_ref.  Returns plain numpy arrays keyed ``lam, reward, kl, score``.
    """
    lp = as_log_probs(logp_ref, probs=probs, eps=eps)
    lams_t = _t(lams, like=lp)
    R = _t(R, like=lp).to(lp.dtype)
    out = {"lam": [], "reward": [], "kl": [], "score": []}
    for lam in lams_t.tolist():
        lpi = optimal_policy(lp, R, lam, log=True)
        out["lam"].append(lam)
        out["reward"].append(float(expected_reward(lpi.exp(), R)))
        out["kl"].append(float(kl(lpi, lp, log=True)))
        out["score"].append(float(expected_score(lpi.exp())))
    return {k: np.asarray(v) for k, v in out.items()}


# -------------------------------------------------------------------------- π_ref health (issue 20)

def keep_argmax_threshold(lam: float = 1.0, beta: float = 1.0, step: float = 0.5) -> float:
    """The share ``p`` of π_ref on the level next to s* (the rest on s*) above which π* keeps that wrong
    argmax: ``p* = 1 / (1 + exp(−β·step/λ))`` (π* ∝ π_ref exp(−β|s−s*|/λ) multiplies the neighbour by
    ``exp(−β·step/λ)`` relative to s*). λ = β = 1: 0.6225. A larger β or smaller λ raises it."""
    return 1.0 / (1.0 + math.exp(-beta * step / lam))


@dataclass(frozen=True)
class HealthThresholds:
    """When :func:`pi_ref_health_problems` calls the cached π_ref unfit for ASO (all means over clips × dimensions).

    ``max_off_level``: mean mass off the nine level strings above this -> π_ref is mostly read where the
    model does not write a level (renormalising it gives noise). ``min_kl``/``min_flip``/``min_shift``:
    KL(π*‖π_ref) (nats), the share of items whose argmax flips and the mean |Δ expected score| all below
    these -> π* ≈ π_ref and ASO is a no-op. ``max_label_mass``: mean π*(s*) above this -> π* ≈ the one-hot
    label and ASO is SFT on the score tokens."""

    max_off_level: float = 0.5
    min_kl: float = 0.01
    min_flip: float = 0.01
    min_shift: float = 0.02
    max_label_mass: float = 0.9


def pi_ref_health(logp_ref, s_star, lam: float = 1.0, beta: float = 1.0, outside=None) -> dict[str, float]:
    """How usable a cached π_ref is for ASO, and how far λ and β move it.

    ``logp_ref``: log π_ref [N, D, 9] (or [N, 9]) renormalised over the nine levels; ``s_star``: the
    labels [N, D] on the 0.5 grid; ``outside``: the mass the model put off the nine level strings
    [N, D] (``None`` = unknown, reported as NaN). Returns plain floats: ``off_level_mean``,
    ``off_level_share_over_half`` (items with more than half off), ``entropy`` (nats, uniform = 2.197),
    ``p_label_mean`` / ``p_label_p10`` / ``p_label_p50`` / ``p_label_p90`` (π_ref(s*)),
    ``pistar_label_mean`` (π*(s*)), ``kl_star_ref`` (KL(π*‖π_ref), nats), ``argmax_flip_share``,
    ``expected_shift_mean`` (mean |E_π*[s] − E_π_ref[s]|), ``n_items``, ``lam``, ``beta``; plus the
    per-dimension means ``off_level_by_dim`` and ``p_label_by_dim`` (lists, D entries) for [N, D, 9]."""
    lp = _t(logp_ref).double()
    st = _t(s_star).double()
    p = lp.exp()
    star = optimal_policy(lp, reward_abs(st, beta), lam)
    pl = label_mass(p, st)
    q = torch.quantile(pl.flatten(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    out = {
        "n_items": int(pl.numel()), "lam": float(lam), "beta": float(beta),
        "entropy": float(entropy(p).mean()),
        "p_label_mean": float(pl.mean()), "p_label_p10": float(q[0]), "p_label_p50": float(q[1]),
        "p_label_p90": float(q[2]),
        "pistar_label_mean": float(label_mass(star, st).mean()),
        "kl_star_ref": float(kl(star, p).mean()),
        "argmax_flip_share": float((argmax_score(star) != argmax_score(p)).double().mean()),
        "expected_shift_mean": float((expected_score(star) - expected_score(p)).abs().mean()),
    }
    if outside is not None:
        o = _t(outside).double()
        out["off_level_mean"] = float(o.mean())
        out["off_level_share_over_half"] = float((o > 0.5).double().mean())
        if o.dim() >= 2:
            out["off_level_by_dim"] = [float(v) for v in o.reshape(-1, o.shape[-1]).mean(0)]
    else:
        out["off_level_mean"] = out["off_level_share_over_half"] = float("nan")
    if pl.dim() >= 2:
        out["p_label_by_dim"] = [float(v) for v in pl.reshape(-1, pl.shape[-1]).mean(0)]
    return out


def pi_ref_health_problems(health: dict[str, float], th: HealthThresholds | None = None) -> list[str]:
    """The problems of a :func:`pi_ref_health` report under thresholds ``th``, each with its fix; [] = healthy."""
    th = th or HealthThresholds()
    out = []
    off = health.get("off_level_mean", float("nan"))
    if off == off and off > th.max_off_level:
        out.append(f"pi_ref is mostly off the levels: {off:.0%} of the mass where pi_ref is read is on text other "
                   f"than the nine levels (level strings, or keywords with target_position: keyword; limit "
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


def format_health(health: dict[str, float]) -> str:
    """A few lines of text for a :func:`pi_ref_health` report (notebook 06 and the training log)."""
    lines = [f"pi_ref health over {health['n_items']} clip x dimension items (lam={health['lam']}, beta={health['beta']}):",
             f"  off-level mass      mean {health['off_level_mean']:.3f}, items with > 50 % off: "
             f"{health['off_level_share_over_half']:.1%}",
             f"  entropy             {health['entropy']:.3f} nats (uniform over 9 = {math.log(N_LEVELS):.3f})",
             f"  pi_ref(s*)          mean {health['p_label_mean']:.3f}  p10 {health['p_label_p10']:.3f}  "
             f"p50 {health['p_label_p50']:.3f}  p90 {health['p_label_p90']:.3f}  (uniform 0.111)",
             f"  pi*(s*)             mean {health['pistar_label_mean']:.3f}",
             f"  how far pi* moves   KL(pi*||pi_ref) {health['kl_star_ref']:.4f} nats, argmax flips "
             f"{health['argmax_flip_share']:.1%}, mean |expected score shift| {health['expected_shift_mean']:.3f}"]
    if "off_level_by_dim" in health:
        lines.append("  off-level by dim    " + "  ".join(f"{v:.2f}" for v in health["off_level_by_dim"]))
    return "\n".join(lines)
