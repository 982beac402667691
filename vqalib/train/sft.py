"""Stage I: supervised fine-tuning, cross-entropy on the assistant answer only.

The collator's ``labels`` hold the answer tokens (rationale + five scores) and ``-100`` on the
system prompt, the instruction and every video token, so the loss is

    L = - 1/|A| sum_{t in A} log pi_theta(y_t | y_<t, video, prompt)

over the answer positions A only (shifted by one: the logit at t predicts token t+1).
Full fine-tuning, LoRA or QLoRA (``finetune``), optional frozen vision tower (``freeze_vision``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vqalib.train.base import VQATrainer, run_stage
from vqalib.train.collator import model_inputs
from vqalib.train.common import SFTConfig, TrainResult


def answer_token_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not -100.

    ``logits`` [B, T, V] and ``labels`` [B, T] aligned with the input ids (the shift is done here).
    Raises if no position is labelled (a batch with an empty answer would silently train nothing)."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    n = (shift_labels != -100).sum()
    if int(n) == 0:
        raise ValueError("SFT batch has no answer tokens (all labels are -100); check inputs.build_batch answers")
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                           ignore_index=-100, reduction="sum") / n


class SFTTrainer(VQATrainer):
    """``transformers.Trainer`` with answer-only cross-entropy on video batches."""

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        labels = inputs["labels"]
        outputs = model(**model_inputs(inputs))
        loss = answer_token_ce(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss


def train_sft(cfg: SFTConfig, progress: bool = True, on_step=None) -> TrainResult:
    """Run Stage I from a config (the CLI and notebook 04 both call this).

    ``on_step(state)`` is called after every optimisation step (``transformers.TrainerState``)."""
    return run_stage(cfg, SFTTrainer, with_answers=True, progress=progress, on_step=on_step)
