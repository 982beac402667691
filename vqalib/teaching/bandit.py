"""ASO against sampled group-relative policy gradient on a one-step bandit over the K levels of a rating
schema (the paper's 9 by default; :func:`make_items` and :func:`items_from_labels` take ``schema=``).

Each item ``i`` is a one-step bandit: the policy ``π_θ(s|i) = softmax(z_i)`` picks one of the
K levels and receives ``R(s, s*_i)``.  The policy starts at the reference ``π_ref`` (as a
fine-tune starts at the SFT model).  Two ways to update the logits ``z``:

* **ASO** (:func:`run_aso`): gradient steps on the exact soft-target cross-entropy against the
  closed form ``π* ∝ π_ref exp(R/λ)`` (``vqalib.method.aso``, (A3), (A6)); no sampling, so the
  gradient ``π_θ − π*`` has zero variance.
* **GRPO-style** (:func:`run_grpo`): sample ``G`` levels per item from π_θ, group-normalised
  advantages ``A_g = (r_g − mean r)/(std r + δ)``, loss ``−mean_g A_g log π_θ(s_g)`` plus, when
  ``kl_coef > 0``, the GRPO ``k3`` estimator of ``KL(π_θ ‖ π_ref)`` on the same samples,
  ``k3 = π_ref/π_θ − log(π_ref/π_θ) − 1``.  (The policy is updated on-policy, one step per
  group, so PPO's ratio clipping is inactive and left out.)  This optimises a *different*
  objective from (A1): normalised advantages chase the reward's argmax, and the k3 term's
  gradient is that of ``KL(π_ref ‖ π_θ)``; so its fixed point is not π*.
* **Sampled PG on the ASO objective** (``estimator="regularised"``): the score-function estimate
  of ``∇J`` for (A1) itself, with regularised reward ``r̃ = R − λ log(π_θ/π_ref)`` at the samples
  and a leave-one-out group baseline (unbiased).  Same fixed point as ASO (π*), but sampled: this
  isolates what the analytic target saves.

Both use plain SGD on the logits with their own learning rate; the item losses are summed so
every item's logits move independently.  Tracked per update (means over items): expected reward
``E_π_θ[R]``, total variation ``TV(π_θ, π*)`` and ``KL(π* ‖ π_θ)``.  :func:`gradient_variance`
measures the spread of the sampled gradient as ``G`` grows.  All runs are seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vqalib.method import aso
from vqalib.schema import rating
from vqalib.schema.levels import LEVELS


@dataclass
class BanditItems:
    """The bandit's items: targets ``s_star [N]``, reward ``R [N, K]`` and ``log π_ref [N, K]`` over the
    levels of ``schema`` (``None``: the paper's 9)."""

    s_star: torch.Tensor
    R: torch.Tensor
    logp_ref: torch.Tensor
    schema: rating.RatingSchema | None = None

    def pi_star(self, lam: float) -> torch.Tensor:
        """The ASO target π* [N, K] for this λ."""
        return aso.optimal_policy(self.logp_ref, self.R, lam, schema=self.schema)


def make_items(s_star, pi_ref, *, reward: str = "abs", beta: float = 1.0,
               schema: rating.RatingSchema | None = None) -> BanditItems:
    """Bandit items from plain arrays: targets ``s_star [N]`` and ``pi_ref`` probabilities ``[K]`` or ``[N, K]``
    over the schema's K levels."""
    k = rating.resolve(schema).n_levels
    s = torch.as_tensor(np.asarray(s_star, dtype=float))
    ref = torch.as_tensor(np.asarray(pi_ref, dtype=float))
    if ref.shape[-1] != k:
        raise ValueError(f"pi_ref has last axis {ref.shape[-1]}, expected the K = {k} levels of the "
                         f"{rating.resolve(schema).name!r} rating schema; pass the matching schema=")
    ref = ref.expand(len(s), k).contiguous()
    return BanditItems(s, aso.reward(reward, s, beta, schema=schema), aso.as_log_probs(ref, probs=True, schema=schema),
                       schema)


def marginal_reference(scores, alpha: float = 1.0, *, schema: rating.RatingSchema | None = None) -> np.ndarray:
    """π_ref = the label histogram over the K levels plus ``alpha`` pseudo-counts (the marginal an SFT
    model learns first; ``alpha > 0`` keeps every level reachable).  ``scores`` must be on the grid."""
    k = rating.resolve(schema).n_levels
    counts = np.bincount(np.atleast_1d(aso.grid_index(np.asarray(scores, dtype=float), schema=schema)), minlength=k) + alpha
    return counts / counts.sum()


def items_from_labels(labels: pd.DataFrame, dimension: str | None = None, *, alpha: float = 1.0,
                      reward: str = "abs", beta: float = 1.0,
                      schema: rating.RatingSchema | None = None) -> BanditItems:
    """Bandit items from an aggregated-labels frame (``vqalib.data.dataset.aggregate``: ``video_id, dimension, score``).

    One item per (video, dimension) row, or only ``dimension``'s rows, over the schema's dimensions and
    levels; rows without a label (NaN score) are left out.  Targets are the grid labels;
    π_ref is that dimension's :func:`marginal_reference` (a reference that knows the label
    distribution but not the item).
    """
    schema_r = rating.resolve(schema)
    for col in ("dimension", "score"):
        if col not in labels.columns:
            raise ValueError(f"labels frame lacks column {col!r}; pass vqalib.data.dataset.aggregate(ds) output")
    dims = [schema_r.key_of(dimension)] if dimension else [d for d in schema_r.keys if d in set(labels["dimension"])]
    if not dims:
        raise ValueError(f"labels frame has no rows for the {schema_r.name!r} schema's dimensions {list(schema_r.keys)}")
    s_all, ref_all = [], []
    for d in dims:
        sc = labels.loc[labels["dimension"] == d, "score"].to_numpy(dtype=float)
        sc = sc[~np.isnan(sc)]
        if len(sc) == 0:
            raise ValueError(f"labels frame has no rows for dimension {d!r}")
        s_all.append(sc)
        ref_all.append(np.repeat(marginal_reference(sc, alpha, schema=schema)[None], len(sc), 0))
    return make_items(np.concatenate(s_all), np.concatenate(ref_all), reward=reward, beta=beta, schema=schema)


def _metrics(logits: torch.Tensor, items: BanditItems, pi_star: torch.Tensor) -> dict[str, float]:
    p = torch.softmax(logits, -1)
    return {
        "expected_reward": float(aso.expected_reward(p, items.R).mean()),
        "tv_to_star": float(0.5 * (p - pi_star).abs().sum(-1).mean()),
        "kl_star_theta": float(aso.kl(pi_star, p).mean()),
    }


def _start(items: BanditItems) -> torch.Tensor:
    z = items.logp_ref.clone()
    return torch.where(torch.isneginf(z), torch.full_like(z, -1e4), z).requires_grad_(True)


def run_aso(items: BanditItems, lam: float = 1.0, steps: int = 100, lr: float = 1.0) -> pd.DataFrame:
    """ASO updates ``z ← z − lr (π_θ − π*)`` (via autograd of ``aso_loss``); one row per update (0 = start)."""
    pi_star = items.pi_star(lam)
    z = _start(items)
    rows = [{"step": 0, **_metrics(z.detach(), items, pi_star)}]
    for t in range(1, steps + 1):
        loss = aso.aso_loss(torch.log_softmax(z, -1), pi_star, reduction="sum")
        (g,) = torch.autograd.grad(loss, z)
        with torch.no_grad():
            z -= lr * g
        rows.append({"step": t, **_metrics(z.detach(), items, pi_star)})
    return pd.DataFrame(rows).assign(method="ASO")


def grpo_gradient(z: torch.Tensor, items: BanditItems, group_size: int, kl_coef: float,
                  gen: torch.Generator, adv_eps: float = 1e-4, estimator: str = "grpo",
                  lam: float = 1.0) -> torch.Tensor:
    """One sampled policy gradient of the summed item losses w.r.t. the logits ``z [N, K]``.

    ``estimator="grpo"``: group-normalised advantages (+ ``kl_coef`` × k3); ``"regularised"``:
    leave-one-out advantages of ``r̃ = R − λ log(π_θ/π_ref)`` (unbiased for ∇J of (A1); ``kl_coef`` must be 0).
    """
    if group_size < 2:
        raise ValueError(f"group_size={group_size}: group-relative advantages need G ≥ 2")
    z = z.detach().requires_grad_(True)
    logp = torch.log_softmax(z, -1)
    idx = torch.multinomial(logp.detach().exp(), group_size, replacement=True, generator=gen)  # [N, G]
    r = items.R.gather(-1, idx)
    lp = logp.gather(-1, idx)
    if estimator == "grpo":
        adv = (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + adv_eps)
    elif estimator == "regularised":
        if kl_coef:
            raise ValueError("estimator='regularised' carries its own λ-KL term; set kl_coef=0")
        r = r - lam * (lp.detach() - items.logp_ref.gather(-1, idx))
        adv = r - (r.sum(-1, keepdim=True) - r) / (group_size - 1)
    else:
        raise ValueError(f"estimator={estimator!r}: use 'grpo' or 'regularised'")
    loss = -(adv * lp).mean(-1)
    if kl_coef:
        log_ratio = items.logp_ref.gather(-1, idx) - lp  # log π_ref/π_θ at the samples
        loss = loss + kl_coef * (log_ratio.exp() - log_ratio - 1).mean(-1)
    (g,) = torch.autograd.grad(loss.sum(), z)
    return g


def run_grpo(items: BanditItems, lam: float = 1.0, steps: int = 100, lr: float = 1.0, group_size: int = 8,
             kl_coef: float = 0.0, seed: int = 0, estimator: str = "grpo") -> pd.DataFrame:
    """Sampled policy-gradient updates with ``group_size`` samples per item; distances measured to π*(λ)."""
    gen = torch.Generator().manual_seed(seed)
    pi_star = items.pi_star(lam)
    z = _start(items).detach()
    rows = [{"step": 0, **_metrics(z, items, pi_star)}]
    for t in range(1, steps + 1):
        z = z - lr * grpo_gradient(z, items, group_size, kl_coef, gen, estimator=estimator, lam=lam)
        rows.append({"step": t, **_metrics(z, items, pi_star)})
    if estimator == "regularised":
        name = f"PG on J(λ) G={group_size}"
    else:
        name = f"GRPO G={group_size}" + (f" KL={kl_coef:g}" if kl_coef else "")
    return pd.DataFrame(rows).assign(method=name)


def compare(items: BanditItems, lam: float = 1.0, steps: int = 100, lr_aso: float = 1.0, lr_pg: float = 1.0,
            group_size: int = 8, kl_coef: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Long frame ``method, step, expected_reward, tv_to_star, kl_star_theta`` for ASO, GRPO without and
    with KL, and the sampled PG on the ASO objective (all sampled methods share ``lr_pg`` and ``seed``)."""
    return pd.concat([
        run_aso(items, lam, steps, lr_aso),
        run_grpo(items, lam, steps, lr_pg, group_size, 0.0, seed),
        run_grpo(items, lam, steps, lr_pg, group_size, kl_coef, seed),
        run_grpo(items, lam, steps, lr_pg, group_size, 0.0, seed, estimator="regularised"),
    ], ignore_index=True)


def gradient_variance(items: BanditItems, group_sizes=(2, 4, 8, 16, 32), n_rep: int = 64, kl_coef: float = 0.0,
                      lam: float = 1.0, seed: int = 0, estimator: str = "grpo") -> pd.DataFrame:
    """Spread of the sampled GRPO gradient at the start (π_θ = π_ref), per group size.

    For each ``G``: ``n_rep`` independent gradients; ``variance`` = mean over items of the trace of
    their covariance (Σ_s Var g_s); ``cosine_to_aso`` = mean cosine between one sampled gradient
    and the ASO gradient ``π_ref − π*`` (1 = same direction).  ASO's own variance is 0.
    """
    gen = torch.Generator().manual_seed(seed)
    z = _start(items).detach()
    g_aso = torch.softmax(z, -1) - items.pi_star(lam)
    rows = []
    for G in group_sizes:
        gs = torch.stack([grpo_gradient(z, items, G, kl_coef, gen, estimator=estimator, lam=lam) for _ in range(n_rep)])  # [rep, N, K]
        var = gs.var(0).sum(-1).mean()
        cos = torch.nn.functional.cosine_similarity(gs, g_aso.expand_as(gs), dim=-1, eps=1e-12).mean()
        rows.append({"estimator": estimator, "group_size": G, "variance": float(var), "cosine_to_aso": float(cos),
                     "mean_grad_norm": float(gs.mean(0).norm(dim=-1).mean())})
    return pd.DataFrame(rows)


def solve_objective_numerically(pi_ref, R, lam: float) -> np.ndarray:
    """Maximise (A1) ``Σ π R − λ KL(π‖π_ref)`` over the simplex with a generic solver (scipy SLSQP).

    An independent check of the closed form (A3); one item, probabilities in, probabilities out.
    Raises ``RuntimeError`` if the solver does not converge.
    """
    from scipy.optimize import minimize

    pi_ref, R = np.asarray(pi_ref, dtype=float), np.asarray(R, dtype=float)

    def neg_j(p: np.ndarray) -> float:
        p = np.clip(p, 1e-300, None)
        on = pi_ref > 0
        return -(p @ np.where(on, R, 0.0) - lam * np.sum(np.where(on, p * np.log(p / np.where(on, pi_ref, 1.0)), 0.0)))

    bounds = [(0.0, 1.0) if q > 0 else (0.0, 0.0) for q in pi_ref]
    res = minimize(neg_j, np.where(pi_ref > 0, 1.0, 0.0) / (pi_ref > 0).sum(), method="SLSQP", bounds=bounds,
                   constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}], options={"ftol": 1e-12, "maxiter": 500})
    if not res.success:
        raise RuntimeError(f"scipy could not solve the bandit objective: {res.message}")
    return np.clip(res.x, 0.0, None)


def final_summary(history: pd.DataFrame) -> pd.DataFrame:
    """Last-step metrics per method, plus the first step at which TV to π* drops below 0.05 (NaN = never)."""
    def first_below(df: pd.DataFrame) -> float:
        hit = df.loc[df["tv_to_star"] < 0.05, "step"]
        return float(hit.iloc[0]) if len(hit) else float("nan")

    last = history.sort_values("step").groupby("method", sort=False).tail(1).set_index("method")
    last["steps_to_tv_0.05"] = history.groupby("method", sort=False).apply(first_below, include_groups=False)
    return last.drop(columns="step")


__all__ = ["BanditItems", "make_items", "marginal_reference", "items_from_labels", "run_aso", "run_grpo",
           "grpo_gradient", "compare", "gradient_variance", "final_summary", "LEVELS"]
