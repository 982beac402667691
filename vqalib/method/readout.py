"""The two readouts of a score distribution π over the K levels of a rating schema (the paper's 9 levels
``s ∈ {1.0, 1.5, …, 5.0}`` by default; every function takes ``schema=``).

    expected score   E_π[s] = Σ_s s π(s)         (the soft readout)
    argmax score     argmax_s π(s)               (the hard readout; ties go to the lower level)

One pair, in two variants for the two kinds of arrays the project holds (DeQA-Score and Q-Align read
the same two numbers from level probabilities):

- :func:`expected_score` / :func:`argmax_score`: **torch**, for the method's maths (:mod:`vqalib.method.aso`,
  the widgets). π: probabilities ``[..., K]`` (a tensor keeps its dtype and device; a list or numpy array
  becomes float64); returns a tensor ``[...]``. Differentiable in π (the expected score).
- :func:`expected_score_np` / :func:`argmax_score_np`: **numpy**, for evaluation. π: probabilities
  ``[..., K]`` (numpy or a tensor; read as float64), returns float64 ``[...]``. A row that is all NaN (no
  distribution, e.g. :func:`vqalib.method.distributions.level_logprobs` where the answer has no score
  position) reads NaN; any other row must be a distribution (:func:`check_distributions`). From log-probs
  ``logp`` (what :func:`~vqalib.method.distributions.level_logprobs` returns) pass ``logp.exp()``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from vqalib.schema import rating

if TYPE_CHECKING:  # torch is imported where a torch variant runs, so the numpy pair stays light for vqalib.eval
    import torch


def as_float_tensor(x, like: torch.Tensor | None = None) -> torch.Tensor:
    """Array-like → floating tensor (float64 for Python/numpy floats, or ``like``'s dtype; keeps a tensor's dtype)."""
    import torch

    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())
    dtype = like.dtype if like is not None else torch.float64
    return torch.as_tensor(np.asarray(x, dtype=float), dtype=dtype)


def levels_like(x: torch.Tensor, *, schema: rating.RatingSchema | None = None) -> torch.Tensor:
    """The K level values ``s`` of ``schema`` (``None``: the paper's 9) as a tensor with ``x``'s dtype and device."""
    import torch

    return torch.tensor(rating.resolve(schema).levels.tolist(), dtype=x.dtype, device=x.device)


def check_k(x, schema: rating.RatingSchema | None = None, what: str = "pi") -> None:
    """Raise ``ValueError`` naming K when the last axis of ``x`` is not the schema's K levels."""
    schema = rating.resolve(schema)
    k = x.shape[-1] if getattr(x, "ndim", 0) else None
    if k != schema.n_levels:
        raise ValueError(f"{what} has last axis {k}, but the {schema.name!r} rating schema has K = {schema.n_levels} "
                         f"levels {list(schema.strings)}; pass the matching schema=")


# ------------------------------------------------------------------------------------------ torch


def expected_score(pi, *, schema: rating.RatingSchema | None = None) -> torch.Tensor:
    """Expected score ``Σ_s s π(s)`` over the last axis (the soft readout); π: probabilities ``[..., K]``
    over ``schema``'s levels (``None``: the paper's 9; another last axis raises naming K)."""
    pi = as_float_tensor(pi)
    check_k(pi, schema)
    return (pi * levels_like(pi, schema=schema)).sum(-1)


def argmax_score(pi, *, schema: rating.RatingSchema | None = None) -> torch.Tensor:
    """The level with the largest probability (the hard readout); ties go to the lower level."""
    pi = as_float_tensor(pi)
    check_k(pi, schema)
    return levels_like(pi, schema=schema)[pi.argmax(-1)]


# ------------------------------------------------------------------------------------------ numpy


def check_distributions(dists, where: str = "distributions", *, nan_rows: bool = False,
                        schema: rating.RatingSchema | None = None) -> np.ndarray:
    """``dists`` as a float64 array ``[..., K]`` (K: ``schema``'s levels, ``None``: the paper's 9) whose rows are probability distributions over the levels.

    A row passes when it is finite, non-negative (to -1e-9) and sums to 1 (to 1e-4). ``nan_rows=True``
    also lets a row that is entirely NaN pass (no distribution). Raises ``ValueError`` naming ``where``,
    the first bad row (its index), its sum and values, and how many rows are bad."""
    is_tensor = hasattr(dists, "detach") and hasattr(dists, "double")  # a torch tensor, without importing torch
    d = np.asarray(dists.detach().cpu().double()) if is_tensor else np.asarray(dists, dtype=float)
    schema = rating.resolve(schema)
    k = schema.n_levels
    if d.ndim < 1 or d.shape[-1] != k:
        raise ValueError(f"{where}: expected shape [..., {k}] (probabilities over the K = {k} levels of the "
                         f"{schema.name!r} rating schema), got {d.shape}; pass the matching schema=")
    rows = d.reshape(-1, k)
    missing = np.isnan(rows).all(axis=1) if nan_rows else np.zeros(len(rows), bool)
    bad = np.flatnonzero(~missing & (~np.isfinite(rows).all(axis=1) | (rows < -1e-9).any(axis=1)
                                     | (np.abs(rows.sum(axis=1) - 1) > 1e-4)))
    if bad.size:
        i = int(bad[0])
        at = i if d.ndim <= 2 else tuple(int(j) for j in np.unravel_index(i, d.shape[:-1]))
        raise ValueError(f"{where}: row {at} is not a probability distribution over the {k} levels "
                         f"(sum {rows[i].sum():.6f}, values {np.round(rows[i], 4).tolist()}); {bad.size} bad row(s) in all")
    return d


def expected_score_np(dists, *, schema: rating.RatingSchema | None = None) -> np.ndarray:
    """``Σ_s s π(s)`` per row of probabilities ``[..., K]`` (float64 ``[...]``; NaN for an all-NaN row)."""
    return check_distributions(dists, nan_rows=True, schema=schema) @ rating.resolve(schema).levels


def argmax_score_np(dists, *, schema: rating.RatingSchema | None = None) -> np.ndarray:
    """The most probable level per row of probabilities ``[..., K]`` (ties: the lower level; NaN for an
    all-NaN row)."""
    d = check_distributions(dists, nan_rows=True, schema=schema)
    missing = np.isnan(d).all(axis=-1)
    levels = rating.resolve(schema).levels
    return np.where(missing, math.nan, levels[np.where(missing[..., None], 0.0, d).argmax(axis=-1)])
