"""Stage II (the paper's baseline): GRPO with the video in every rollout.

Per optimisation step and prompt (one clip), G completions are sampled from the current policy
*with the video inputs* (``pixel_values_videos``, ``video_grid_thw``, ``mm_token_type_ids``, without which
the model silently drops M-RoPE, and ``second_per_grid_ts`` for a family that reads frame times through
M-RoPE; Qwen3-VL / Qwen3.5 read them as text in the prompt, :mod:`vqalib.model.family`). The family's
suppressed tokens (``<|video_pad|>``, ``<|image_pad|>``, ``<|vision_start|>``, ..., and the think tags of
Qwen3-VL / Qwen3.5) are never sampled: a sampled ``<|video_pad|>`` would make the next forward count more
video placeholders than video features and fail (or, worse, misalign). Each completion is decoded through
the family (:func:`vqalib.model.generation.decode_answers`: a leading think block never reaches the parser)
and parsed (:func:`vqalib.schema.prompts.parse_answer`) and rewarded per dimension with the paper's ``R_acc + R_dist``
plus a format reward (:mod:`vqalib.method.grpo_math`); an unparsable dimension earns 0 and is counted
in the logs (``n_unparsable``), never given a random score. Advantages are normalised within each
group, per dimension by default (``group_by``; see :mod:`vqalib.method.grpo_math`), and the loss
is the clipped ratio objective with a k3 KL penalty to the reference policy
(coefficient 0.1, paper). One gradient step is taken per batch of rollouts, so the ratio is 1 at
the step (the clip matters only if rollouts are reused; the code keeps the general form).

Rating schema (issue 23; the stage's, from its dataset): completions are parsed and rewarded on the
schema's dimensions and levels (``parse_answer(schema=)``, ``score_rewards(schema=)``: R_acc on its grid,
R_dist = its span - |pred - gt|). A dimension the clip has no label for (``label_mask`` False, target
NaN) earns no reward and is left out of the per-dimension advantages' mean; ``n_dims_masked`` counts it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vqalib.model.generation import (SUPPRESSED_TOKENS, GenerationSettings, decode_answers, generate, pad_token_id,
                                     stop_token_ids, suppressed_token_ids)
from vqalib.train.base import VQATrainer, make_reference, reference_mode, run_stage
from vqalib.train.collator import VideoCollator, model_inputs, schema_kw
from vqalib.train.common import GRPOConfig, TrainResult
from vqalib.method.grpo_math import group_advantages, group_advantages_per_dimension, grpo_loss, score_rewards

VISION_TOKENS: tuple[str, ...] = SUPPRESSED_TOKENS


def vision_token_ids(processor: Any, model: Any | None = None) -> list[int]:
    """Ids that must never be sampled (the family's): :func:`vqalib.model.generation.suppressed_token_ids`."""
    return suppressed_token_ids(processor, model)


def completion_mask(completion: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    """1 up to and including the first end-of-sequence token of each row, 0 after it."""
    is_eos = torch.zeros_like(completion, dtype=torch.bool)
    for e in eos_ids:
        is_eos |= completion == e
    after = torch.cumsum(is_eos.int(), dim=1) - is_eos.int()  # number of eos strictly before t
    return (after == 0).long()


@torch.no_grad()
def sample_completions(model: Any, processor: Any, prompt: dict[str, torch.Tensor], *, max_new_tokens: int = 96,
                       temperature: float = 1.0, top_p: float = 1.0, do_sample: bool = True,
                       settings: GenerationSettings | None = None) -> dict[str, Any]:
    """Sample one completion per row of ``prompt`` (a prompt-only batch from the collator) with the video.

    ``settings`` (:class:`vqalib.model.generation.GenerationSettings`, e.g. ``from_config(cfg)``) are the
    complete sampling parameters; without it they are built from ``max_new_tokens``, ``temperature``,
    ``top_p`` and ``do_sample`` (no other filter, no penalty). Nothing comes from the checkpoint's
    ``generation_config``. Returns ``completion`` ids [N, L], ``mask`` [N, L] (through the first
    eos), decoded ``texts`` (:func:`vqalib.model.generation.decode_answers`: special tokens dropped, a
    leading think block removed by the family) and the ``settings`` used."""
    if settings is None:
        settings = (GenerationSettings.sampling(max_new_tokens, temperature, top_p) if do_sample
                    else GenerationSettings.greedy(max_new_tokens))
    eos_ids, pad = stop_token_ids(processor), pad_token_id(processor)
    was_training = model.training
    model.eval()
    try:
        completion = generate(model, processor, prompt, settings)
    finally:
        model.train(was_training)
    mask = completion_mask(completion, eos_ids)
    texts = decode_answers(processor, completion * mask + pad * (1 - mask), model)
    return {"completion": completion, "mask": mask, "texts": texts, "settings": settings}


def completion_logprobs(model: Any, prompt: dict[str, torch.Tensor], completion: torch.Tensor,
                        mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(o_t | x, o_<t) of each completion token [N, L] (float32), the video passed again.

    Only the L positions that predict completion tokens (``P - 1 .. P + L - 2`` for a prompt of P
    tokens) go through ``lm_head`` (``logits_to_keep`` as a 1-D index tensor): the vocabulary
    projection and its float32 log-softmax cost ``N x L x V`` instead of ``N x (P + L) x V`` (at 7B
    with a 32-frame clip P ~ 4.2 k and L <= 512, ~9x less). Values and gradients equal the
    full-sequence computation (``tests/unit/test_grpo_compute.py``)."""
    P = prompt["input_ids"].shape[1]
    L = completion.shape[1]
    ids = torch.cat([prompt["input_ids"], completion], dim=1)
    attn = torch.cat([prompt["attention_mask"], mask.to(prompt["attention_mask"].dtype)], dim=1)
    extra = {k: v for k, v in prompt.items() if k not in {"input_ids", "attention_mask", "mm_token_type_ids"}}
    if "mm_token_type_ids" in prompt:
        mm = prompt["mm_token_type_ids"]
        extra["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(completion, dtype=mm.dtype)], dim=1)
    keep = torch.arange(P - 1, P + L - 1, device=ids.device)
    logits = model(input_ids=ids, attention_mask=attn, logits_to_keep=keep, **extra).logits.float()  # [N, L, V]
    if temperature != 1.0:
        logits = logits / temperature
    return torch.gather(F.log_softmax(logits, dim=-1), 2, completion[..., None]).squeeze(-1)


class GRPOTrainer(VQATrainer):
    """GRPO: rollouts, rewards, group advantages and the clipped KL-regularised objective per batch."""

    #: encode each clip once per group and step (:mod:`vqalib.train.vision_cache`); False = every copy
    #: in every pass, the un-optimised path (comparisons and the benchmark)
    reuse_vision: bool = True

    def __init__(self, *args: Any, ref_model: torch.nn.Module | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ref_model = ref_model
        if ref_model is not None:
            self.ref_model.to(self.args.device)
        self._share_tower: bool | None = None  # decided once, on the first step (towers frozen and equal)
        self.n_videos_encoded = 0  # videos that went through the vision tower, over the run

    def _vision_reuse(self, unwrapped: torch.nn.Module):
        """The context that encodes each distinct clip once per call, and once per step when the
        vision tower is frozen (and equal in the reference copy)."""
        from vqalib.train.vision_cache import reuse_video_features, towers_shareable

        if self._share_tower is None:
            self._share_tower = towers_shareable(unwrapped, self.ref_model)
        return reuse_video_features(unwrapped, self.ref_model, share=self._share_tower, enabled=self.reuse_vision)

    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        """The GRPO loss of a batch (:meth:`_compute_loss`) with each clip through the vision tower once
        per group (once per step with a frozen tower) instead of 3 G times; logs ``vision_encodes_per_prompt``."""
        unwrapped = self.accelerator.unwrap_model(model)
        with self._vision_reuse(unwrapped) as vision:
            out = self._compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.n_videos_encoded += vision.n_encoded
        if self.reuse_vision:
            n_prompts = max(inputs["input_ids"].shape[0] // self.cfg.num_generations, 1)  # type: ignore[union-attr]
            self.record(vision_encodes_per_prompt=vision.n_encoded / n_prompts)
        return out

    def _compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        cfg: GRPOConfig = self.cfg  # type: ignore[assignment]
        G = cfg.num_generations
        prompt = model_inputs(inputs)
        unwrapped = self.accelerator.unwrap_model(model)
        roll = sample_completions(unwrapped, self.processing_class, prompt, settings=GenerationSettings.from_config(cfg))
        from vqalib.schema.prompts import parse_answer

        skw = schema_kw(self.schema)
        parsed = [parse_answer(t, **skw) for t in roll["texts"]]
        raters = inputs["rater_scores"].numpy() if cfg.reward == "multi_rater" else None
        rewards = score_rewards(parsed, inputs["targets"].cpu().numpy(), cfg.format_weight,
                                acc_rounding=cfg.acc_rounding, rater_scores=raters, **skw)
        r = torch.as_tensor(rewards.total, dtype=torch.float32, device=prompt["input_ids"].device)
        lmask = inputs.get("label_mask")
        masked = lmask is not None and not bool(lmask.all())
        if cfg.group_by == "dimension" and masked:
            # missing labels: each labelled dimension normalised within the group, the mean over those only
            per_dim = np.nan_to_num(rewards.acc + rewards.dist + cfg.format_weight * rewards.fmt)  # [N, D]
            adv = group_advantages_per_dimension(torch.as_tensor(per_dim, dtype=torch.float32, device=r.device), G,
                                                 labelled=lmask.to(r.device))
        elif cfg.group_by == "dimension":  # per clip and dimension (paper), then mean over the dimensions
            per_dim = rewards.acc + rewards.dist + cfg.format_weight * rewards.fmt  # [N, D]
            adv = group_advantages_per_dimension(torch.as_tensor(per_dim, dtype=torch.float32, device=r.device), G)
        else:
            adv = group_advantages(r, G)
        logp = completion_logprobs(model, prompt, roll["completion"], roll["mask"], cfg.temperature)
        ref_logp = None
        if cfg.kl_coef:
            with torch.no_grad(), reference_mode(unwrapped, self.ref_model) as ref:
                ref_logp = completion_logprobs(ref, prompt, roll["completion"], roll["mask"], cfg.temperature)
        loss, stats = grpo_loss(logp, logp.detach(), ref_logp, adv, roll["mask"], cfg.clip_eps, cfg.kl_coef)
        sel = lmask.cpu().numpy() if masked else slice(None)  # the labelled (completion, dimension) pairs
        self.record(reward=float(r.mean()), reward_acc=float(rewards.acc[sel].mean()),
                    reward_dist=float(rewards.dist[sel].mean()), reward_format=float(rewards.fmt[sel].mean()),
                    reward_std=float(r.reshape(-1, G).std(1).mean()),
                    kl=stats["kl"], completion_len=float(roll["mask"].sum(1).float().mean()),
                    n_unparsable=rewards.n_unparsable, n_completions=len(parsed))
        if masked:  # (completion, dimension) pairs without a label: no reward, out of the advantages
            self.record(n_dims_masked=int((~lmask).sum()))
        return (loss, roll) if return_outputs else loss


def train_grpo(cfg: GRPOConfig, progress: bool = True, on_step=None) -> TrainResult:
    """Run Stage II from a config (the CLI and notebook 05 both call this). Starts from ``init_from``."""

    def prepare(model, processor, examples, cache):
        return {"ref_model": make_reference(model) if cfg.kl_coef else None}

    def collator_factory(processor, cache, schema=None):
        return VideoCollator(processor, cache, with_answers=False, augment=cfg.augment, rationale=cfg.rationale,
                             repeat=cfg.num_generations, seed=cfg.seed, instruction=cfg.instruction,
                             with_raters=cfg.reward == "multi_rater", schema=schema)

    return run_stage(cfg, GRPOTrainer, with_answers=False, repeat=cfg.num_generations, progress=progress,
                     on_step=on_step, prepare=prepare, collator_factory=collator_factory)
