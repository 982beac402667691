"""Training losses on the real tiny model: answer-only SFT masking, ASO's gradient on the score
logits, the LoRA reference (adapter disabled) equals the base model, vision tokens never sampled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqalib.schema.levels import DIMENSION_KEYS

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _clip(seed: int):
    from vqalib.video.frames import SampledVideo

    rng = np.random.default_rng(seed)
    idx = np.arange(8, dtype=np.int64) * 4
    return SampledVideo(frames=rng.integers(0, 256, (8, 112, 112, 3), dtype=np.uint8), indices=idx,
                        timestamps=idx / 8.0, source_fps=8.0, width=112, height=112, n_source_frames=32,
                        backend="synthetic", path=f"synthetic-{seed}")


@pytest.fixture(scope="module")
def tiny():
    from vqalib.model.loading import load_model_and_processor

    torch.manual_seed(0)
    return load_model_and_processor("tiny")


def _answers():
    from vqalib.schema.prompts import format_answer

    a = format_answer({k: 1.0 + 0.5 * i for i, k in enumerate(DIMENSION_KEYS)}, "Seen: blur.")
    b = format_answer({k: 5.0 - 0.5 * i for i, k in enumerate(DIMENSION_KEYS)}, None)
    return [a, b]


def test_sft_loss_is_answer_only(tiny):
    from vqalib.model.inputs import build_batch
    from vqalib.train.sft import answer_token_ce

    model, proc = tiny
    batch = build_batch(proc, [_clip(0), _clip(1)], _answers())
    labels = batch["labels"]
    # the labelled tokens are exactly the answer followed by <|im_end|>
    for b, ans in enumerate(_answers()):
        text = proc.tokenizer.decode(labels[b][labels[b] != -100])
        assert text == ans + "<|im_end|>"
    logits = torch.randn(*labels.shape, len(proc.tokenizer), requires_grad=True)
    loss = answer_token_ce(logits, labels)
    loss.backward()
    predicts_answer = torch.zeros_like(labels, dtype=torch.bool)
    predicts_answer[:, :-1] = labels[:, 1:] != -100
    g = logits.grad.abs().sum(-1)
    assert (g[~predicts_answer] == 0).all(), "prompt / video / padding positions must get no gradient"
    assert (g[predicts_answer] > 0).all()
    # value: mean CE over the answer tokens, computed by hand
    lp = torch.log_softmax(logits.detach(), -1)
    terms = [-lp[b, t, labels[b, t + 1]] for b in range(2) for t in range(labels.shape[1] - 1) if labels[b, t + 1] != -100]
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="no answer tokens"):
        answer_token_ce(logits, torch.full_like(labels, -100))


def test_aso_gradient_on_score_logits_is_pi_theta_minus_pi_star(tiny):
    """Through the real model: d loss / d (level scores) = pi_theta - pi* (A7), per clip and dimension."""
    from vqalib.method.aso import aso_loss, optimal_policy, reward_abs
    from vqalib.model.inputs import build_batch
    from vqalib.method.distributions import level_logprobs_raw, level_token_ids, normalise

    model, proc = tiny
    batch = build_batch(proc, [_clip(2), _clip(3)], _answers())
    raw = level_logprobs_raw(model, batch, level_token_ids(proc.tokenizer))
    raw.retain_grad()
    logp, _ = normalise(raw)
    logp_ref = torch.log_softmax(torch.randn(2, 5, 9, dtype=torch.float64), -1)
    target = optimal_policy(logp_ref, reward_abs(torch.full((2, 5), 3.5, dtype=torch.float64)), 1.0).float()
    aso_loss(logp, target, reduction="sum").backward()
    expected = logp.detach().exp() - target
    assert torch.allclose(raw.grad, expected, atol=1e-5)
    assert raw.grad.abs().max() > 1e-3  # not trivially zero


def test_aso_score_loss_penalises_mass_off_the_levels(tiny):
    """Issue 9 item 2, through the real model: the trainer's score term is the 9-level CE plus
    -log(1 - outside); renormalising first (the old loss) is blind to the outside mass."""
    import math

    from vqalib.method.aso import aso_loss, optimal_policy, reward_abs
    from vqalib.model.inputs import build_batch
    from vqalib.method.distributions import level_logprobs_raw, level_token_ids, normalise
    from vqalib.train.aso_trainer import score_loss

    model, proc = tiny
    batch = build_batch(proc, [_clip(4), _clip(5)], _answers())
    with torch.no_grad():
        raw = level_logprobs_raw(model, batch, level_token_ids(proc.tokenizer)).double()
    logp, outside = normalise(raw)
    assert float(outside.min()) > 0.01  # an untrained model puts real mass off the levels
    target = optimal_policy(torch.log_softmax(torch.randn(2, 5, 9, dtype=torch.float64), -1),
                            reward_abs(torch.full((2, 5), 3.0, dtype=torch.float64)), 1.0)
    with_pen = score_loss(raw, target)
    assert float(with_pen) == pytest.approx(float(aso_loss(logp, target) - torch.log1p(-outside).mean()), rel=1e-9)
    assert float(score_loss(raw, target, penalise_outside=False)) == pytest.approx(float(aso_loss(logp, target)))
    # moving more mass off the levels (same shape over the 9) raises the loss only with the penalty
    for extra in (0.5, 0.99):
        moved = raw + math.log(1 - extra)
        assert float(score_loss(moved, target)) > float(with_pen)
        assert float(score_loss(moved, target, penalise_outside=False)) == pytest.approx(
            float(score_loss(raw, target, penalise_outside=False)))


def test_lora_reference_equals_base_model(tiny):
    from vqalib.model.inputs import build_batch
    from vqalib.model.loading import LoraSettings, load_model_and_processor
    from vqalib.method.distributions import level_logprobs, level_token_ids
    from vqalib.train.base import make_reference, reference_mode

    base, proc = tiny
    lora_model, _ = load_model_and_processor("tiny", lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(1)
    for name, p in lora_model.named_parameters():
        if "lora_B" in name:  # peft initialises B = 0 (adapter = identity); make the adapter matter
            p.data.normal_(0, 0.5)
    assert make_reference(lora_model) is None  # LoRA: no copy, the adapter is disabled instead
    batch = build_batch(proc, [_clip(4)], _answers()[:1])
    ids = level_token_ids(proc.tokenizer)
    with torch.no_grad():
        ref_base, _ = level_logprobs(base.eval(), batch, ids)
        adapted, _ = level_logprobs(lora_model.eval(), batch, ids)
        with reference_mode(lora_model, None) as ref:
            ref_lora, _ = level_logprobs(ref, batch, ids)
        after, _ = level_logprobs(lora_model, batch, ids)
    assert torch.allclose(ref_lora, ref_base, atol=1e-5)
    assert not torch.allclose(adapted, ref_base, atol=1e-3)  # the adapter does change the policy...
    assert torch.allclose(after, adapted, atol=1e-6)  # ...and is switched back on afterwards


def test_full_finetune_reference_is_frozen_copy(tiny):
    from vqalib.train.base import make_reference

    model, _ = tiny
    ref = make_reference(model)
    assert ref is not model and not any(p.requires_grad for p in ref.parameters())
    p0 = next(model.parameters())
    assert p0.data_ptr() != next(ref.parameters()).data_ptr()


def test_sampling_never_emits_vision_tokens(tiny):
    """A random tiny model spreads mass over all ~770 tokens: 16 x 48 samples would hit one of the vision
    tokens with near certainty if they were not suppressed (and the next forward would then fail)."""
    from vqalib.model.inputs import build_batch
    from vqalib.train.grpo import sample_completions, vision_token_ids

    model, proc = tiny
    vids = vision_token_ids(proc, model)
    assert model.config.video_token_id in vids and model.config.vision_start_token_id in vids
    batch = build_batch(proc, [_clip(5)] * 16)
    torch.manual_seed(0)
    roll = sample_completions(model, proc, batch.model_inputs(), max_new_tokens=48, temperature=1.5)
    sampled = roll["completion"][roll["mask"].bool()]
    assert len(sampled) > 100
    assert not np.isin(sampled.numpy(), vids).any()
