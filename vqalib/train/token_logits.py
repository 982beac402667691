"""Logits only where a loss reads them.

A Qwen2.5-VL sequence at 7B is mostly video tokens (~4 k of ~4.7 k positions for a 32-frame clip);
projecting every position onto the 152 k-token vocabulary and taking a float32 log-softmax there
costs gigabytes per tensor for losses that read a few hundred positions. These helpers pick the
positions a loss needs so the model's ``logits_to_keep`` (transformers 5.x: an ``int`` keeps the
last n positions, a 1-D index tensor the same positions of every row, a 2-D integer tensor
``[B, K]`` the given positions of each row) projects only those, and compute the losses on the
kept logits. Values and gradients equal the full-sequence computation (``tests/unit/test_grpo_compute.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def answer_logit_positions(labels: torch.Tensor, score_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The logit positions of ASO's rationale term: ``t`` such that ``labels[b, t + 1]`` is an answer
    token (``!= -100``) that is not a score token (``score_mask`` False).

    ``labels`` ``[B, L]`` (long, -100 outside the answer), ``score_mask`` ``[B, L]`` (bool). Returns
    ``(positions [B, K] long, valid [B, K] bool)`` with ``K`` the largest count over the rows (at
    least 1); each row lists its positions in order, padded with position 0 marked invalid. Pass
    ``positions`` as ``logits_to_keep`` and ``valid`` to :func:`rationale_kl_at` / :func:`rationale_ce_at`."""
    if labels.shape != score_mask.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and score_mask {tuple(score_mask.shape)} differ in shape")
    sel = labels.masked_fill(score_mask, -100)[:, 1:] != -100  # [B, L - 1]: logit t predicts label t + 1
    counts = sel.sum(1)
    K = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort((~sel).to(torch.int8), dim=1, stable=True)[:, :K]  # selected positions first, in order
    valid = torch.arange(K, device=labels.device)[None, :] < counts[:, None]
    return torch.where(valid, order, torch.zeros_like(order)), valid


def rationale_kl_at(logits: torch.Tensor, ref_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary KL(pi_theta || pi_ref) averaged over the ``valid`` kept positions.

    ``logits``, ``ref_logits`` ``[B, K, V]`` at the positions of :func:`answer_logit_positions`;
    ``valid`` ``[B, K]``. Equals ``aso_trainer.rationale_kl`` on the full-sequence logits."""
    lp = F.log_softmax(logits.float(), -1)
    lq = F.log_softmax(ref_logits.float(), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def rationale_ce_at(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy averaged over the ``valid`` kept positions: ``logits`` ``[B, K, V]``,
    ``targets`` ``[B, K]`` (the token each kept position predicts, ``labels.gather(1, positions + 1)``).
    Equals ``aso_trainer.rationale_ce`` on the full-sequence logits."""
    lg = logits.float()
    tgt = targets.masked_fill(~valid, -100)
    ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1), ignore_index=-100, reduction="sum")
    return ce / valid.sum().clamp(min=1)
