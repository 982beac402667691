"""GRPO and ASO compute at real size (issue 19 item 6), checked on the real tiny Qwen2.5-VL on CPU.

- logits only where a loss reads them: GRPO's completion log-probs and ASO's rationale term project
  only the positions they use onto the vocabulary (counted at ``lm_head``), with values and gradients
  equal to the full-sequence computation;
- the attention implementation is chosen per part (vision tower / language model) and recorded;
- each video goes through the vision tower once per GRPO group (counted), with the same rollouts,
  log-probs and loss as encoding every copy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_helpers import synthetic_clip

from vqalib.schema.levels import DIMENSION_KEYS

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _clip(seed: int):
    return synthetic_clip(n_frames=8, source_fps=8.0, n_source_frames=32, seed=seed)


@pytest.fixture(scope="module")
def tiny():
    from vqalib.model.loading import load_model_and_processor

    torch.manual_seed(0)
    model, proc = load_model_and_processor("tiny")
    return model.eval(), proc


class _HeadRows:
    """Counts the positions ``lm_head`` projects onto the vocabulary (rows of its input)."""

    def __init__(self, model):
        self.rows = 0
        self.handle = model.lm_head.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        self.rows += int(args[0].shape[:-1].numel())

    def close(self):
        self.handle.remove()


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5):
    assert a.keys() == b.keys() and a
    for n in a:
        assert torch.allclose(a[n], b[n], atol=atol, rtol=1e-4), n
    assert max(float(g.abs().max()) for g in a.values()) > 1e-4  # not trivially zero


# --------------------------------------------------------------------------- (b) logits where used


def _old_completion_logprobs(model, prompt, completion, mask):
    """The full-sequence computation the GRPO trainer used before: logits of every position."""
    P = prompt["input_ids"].shape[1]
    ids = torch.cat([prompt["input_ids"], completion], 1)
    attn = torch.cat([prompt["attention_mask"], mask], 1)
    extra = {k: v for k, v in prompt.items() if k not in {"input_ids", "attention_mask", "mm_token_type_ids"}}
    mm = prompt["mm_token_type_ids"]
    extra["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(completion, dtype=mm.dtype)], 1)
    logits = model(input_ids=ids, attention_mask=attn, **extra).logits[:, P - 1:-1].float()
    return torch.gather(torch.log_softmax(logits, -1), 2, completion[..., None]).squeeze(-1)


def test_completion_logprobs_project_only_completion_positions(tiny):
    """GRPO's log pi(o_t | x, o_<t): lm_head sees N x L positions (not N x (P + L)); values and the
    gradient of a weighted sum equal the full-sequence computation to 1e-5."""
    from vqalib.model.inputs import build_batch
    from vqalib.train.grpo import completion_logprobs, sample_completions

    model, proc = tiny
    prompt = build_batch(proc, [_clip(1)] * 2 + [_clip(2)] * 2).model_inputs()
    torch.manual_seed(0)
    roll = sample_completions(model, proc, prompt, max_new_tokens=12, temperature=1.5)
    comp, mask = roll["completion"], roll["mask"]
    N, L = comp.shape
    P = prompt["input_ids"].shape[1]
    weights = torch.randn(N, L)
    counter = _HeadRows(model)
    try:
        model.zero_grad()
        new = completion_logprobs(model, prompt, comp, mask)
        rows = counter.rows
        (new * weights * mask).sum().backward()
        g_new = _grads(model)
    finally:
        counter.close()
    model.zero_grad()
    old = _old_completion_logprobs(model, prompt, comp, mask)
    (old * weights * mask).sum().backward()
    g_old = _grads(model)
    model.zero_grad()
    assert new.shape == (N, L)
    assert torch.allclose(new, old, atol=1e-5)
    _assert_same_grads(g_new, g_old)
    assert rows == N * L, f"lm_head projected {rows} positions; the completion has {N} x {L} (prompt {P})"


def _aso_batch(proc, with_ids=("a", "b")):
    from vqalib.model.inputs import build_batch
    from vqalib.schema.prompts import format_answer

    answers = [format_answer({k: 1.0 + 0.5 * i for i, k in enumerate(DIMENSION_KEYS)}, "Seen: blur and noise."),
               format_answer({k: 5.0 - 0.5 * i for i, k in enumerate(DIMENSION_KEYS)}, "Seen: shaky camera.")]
    built = build_batch(proc, [_clip(3), _clip(4)], answers)
    batch = dict(built)
    batch["score_positions"] = built.score_positions
    batch["targets"] = torch.tensor([[1.0 + 0.5 * i for i in range(5)], [5.0 - 0.5 * i for i in range(5)]])
    batch["video_ids"] = list(with_ids)
    return batch


@pytest.mark.parametrize("rationale_loss", ["kl", "ce"])
def test_aso_rationale_term_reads_logits_only_at_answer_positions(tiny, tmp_path, rationale_loss):
    """The ASO trainer's loss (score term + rationale term, through ``ASOTrainer.compute_loss``):
    policy and reference project only the answer's non-score positions (+ the tree blocks) onto the
    vocabulary, and the loss and its gradients equal the full-sequence computation to 1e-5."""
    from transformers import TrainingArguments

    from vqalib.method.distributions import level_logprobs_raw, level_token_ids
    from vqalib.train.aso_trainer import (ASOTrainer, aso_target, rationale_ce, rationale_kl, score_loss,
                                          score_token_mask)
    from vqalib.train.base import make_reference
    from vqalib.train.collator import model_inputs
    from vqalib.train.common import ASOConfig
    from vqalib.train.token_logits import answer_logit_positions

    model, proc = tiny
    ref = make_reference(model)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in ref.parameters():  # a reference that differs from the policy, so the KL is not 0
            p.add_(0.02 * torch.randn_like(p))
    batch = _aso_batch(proc)
    pi_ref = {v: torch.log_softmax(torch.randn(5, 9), -1) for v in batch["video_ids"]}
    cfg = ASOConfig(rationale_loss=rationale_loss, rationale_weight=0.7, device="cpu", output_dir=str(tmp_path))
    trainer = ASOTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True),
                         processing_class=proc, cfg=cfg, pi_ref=pi_ref, ref_model=ref)
    heads = _HeadRows(model), _HeadRows(ref)
    try:
        model.zero_grad()
        loss = trainer.compute_loss(model, batch)
        rows_policy, rows_ref = heads[0].rows, heads[1].rows
        loss.backward()
        g_new = _grads(model)
    finally:
        for h in heads:
            h.close()
    # the full-sequence computation (the trainer before issue 19)
    model.zero_grad()
    tok = proc.tokenizer
    raw, logits = level_logprobs_raw(model, model_inputs(batch), level_token_ids(tok), batch["score_positions"],
                                     return_logits=True)
    smask = score_token_mask(batch["labels"], batch["score_positions"])
    logp_ref = torch.stack([pi_ref[v] for v in batch["video_ids"]])
    old = score_loss(raw, aso_target(cfg, logp_ref, batch["targets"]))
    if rationale_loss == "kl":
        with torch.no_grad():
            ref_logits = ref(**model_inputs(batch)).logits
        old = old + 0.7 * rationale_kl(logits, ref_logits, batch["labels"], smask)
    else:
        old = old + 0.7 * rationale_ce(logits, batch["labels"], smask)
    old.backward()
    g_old = _grads(model)
    model.zero_grad()
    assert float(loss.detach()) == pytest.approx(float(old), abs=1e-5)
    _assert_same_grads(g_new, g_old)
    B, L = batch["input_ids"].shape
    pos, valid = answer_logit_positions(batch["labels"], smask)
    K = pos.shape[1]
    E = 5 * 11  # 5 dimensions x (root copy + 10 trie nodes) for Qwen's digit tokens
    assert K < L // 2  # the answer's rationale is a small part of the sequence
    assert rows_policy == B * (K + E), f"policy lm_head projected {rows_policy} positions, not {B} x ({K} + {E})"
    assert rows_ref == (B * K if rationale_loss == "kl" else 0)


def test_answer_logit_positions_pads_rows_and_marks_them_invalid():
    from vqalib.train.token_logits import answer_logit_positions

    labels = torch.tensor([[-100, -100, 5, 6, 7, 8], [-100, -100, -100, -100, 9, -100]])
    score = torch.zeros_like(labels, dtype=torch.bool)
    score[0, 3] = True  # token 6 is a score token: its predicting position 2 is left out
    pos, valid = answer_logit_positions(labels, score)
    assert pos.tolist() == [[1, 3, 4], [3, 0, 0]]
    assert valid.tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="shape"):
        answer_logit_positions(labels, score[:, :3])


# --------------------------------------------------------------------------- (c) attention per part


def test_attention_chosen_per_part():
    """Vision tower on flash-attention only when it is installed and the model is on CUDA; the language
    model keeps sdpa (the tree mask) unless no tree-masked pass will run."""
    from vqalib.model.attention import attention_implementation, flash_attention_available

    assert attention_implementation(flash=True) == {"": "sdpa", "text_config": "sdpa",
                                                    "vision_config": "flash_attention_2"}
    assert attention_implementation(flash=True, tree_mask=False)["text_config"] == "flash_attention_2"
    assert set(attention_implementation(flash=False).values()) == {"sdpa"}
    assert set(attention_implementation("cpu").values()) == {"sdpa"}
    if not flash_attention_available():  # this machine: no flash-attn or no CUDA
        assert attention_implementation() == attention_implementation(flash=False)


def test_vision_attention_choice_is_recorded_and_leaves_level_scores_unchanged(tiny):
    """A model loaded with a different vision attention (``eager`` here; flash-attention on CUDA) scores
    the same tree-masked level distributions; the choice per part is in ``describe_model``."""
    from vqalib.model.inputs import build_batch
    from vqalib.model.loading import attention_parts, describe_model, load_model_and_processor
    from vqalib.method.distributions import level_logprobs, level_token_ids

    model, proc = tiny
    assert attention_parts(model) == {"text": "sdpa", "vision": "sdpa"}  # the default on CPU
    other, _ = load_model_and_processor("tiny", attn_implementation={"": "sdpa", "text_config": "sdpa",
                                                                     "vision_config": "eager"})
    other.eval()
    info = describe_model(other)
    assert info["attn_implementation_parts"] == {"text": "sdpa", "vision": "eager"}
    batch = _aso_batch(proc)
    ids = level_token_ids(proc.tokenizer)
    with torch.no_grad():
        a, _ = level_logprobs(model, batch, ids)
        b, _ = level_logprobs(other, batch, ids)
    assert torch.allclose(a, b, atol=1e-5)


def test_level_scoring_refuses_a_language_model_without_4d_masks(tiny, monkeypatch):
    """The tree mask needs sdpa/eager in the *language model*: the check reads its sub-config, so
    flash-attention there (even with the top-level config saying sdpa) is refused with the fix."""
    from vqalib.method.distributions import level_logprobs, level_token_ids

    model, proc = tiny
    monkeypatch.setattr(model.config.text_config, "_attn_implementation", "flash_attention_2", raising=False)
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="sdpa"):
        level_logprobs(model, _aso_batch(proc), level_token_ids(proc.tokenizer))


# --------------------------------------------------------------------------- (a) one encoding per group


class _TowerVideos:
    """Counts the videos that go through vision towers (rows of ``grid_thw`` at the tower's forward)."""

    def __init__(self, *models):
        from vqalib.model.loading import vision_tower

        self.n = 0
        towers = {id(vision_tower(m)): vision_tower(m) for m in models if m is not None}
        self.handles = [t.register_forward_pre_hook(self._hook, with_kwargs=True) for t in towers.values()]

    def _hook(self, module, args, kwargs):
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.n += int(grid.shape[0])

    def close(self):
        for h in self.handles:
            h.remove()


def _grpo_trainer(model, proc, tmp_path, ref, G: int, kl_coef: float = 0.1):
    from transformers import TrainingArguments

    from vqalib.train.common import GRPOConfig
    from vqalib.train.grpo import GRPOTrainer

    cfg = GRPOConfig(num_generations=G, max_new_tokens=10, temperature=1.5, kl_coef=kl_coef, device="cpu",
                     output_dir=str(tmp_path))
    return GRPOTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True),
                       processing_class=proc, cfg=cfg, ref_model=ref)


def _grpo_inputs(proc, clips, G: int):
    from vqalib.model.inputs import build_batch

    videos = [c for c in clips for _ in range(G)]  # the collator's repeat: G adjacent copies per clip
    batch = dict(build_batch(proc, videos))
    batch["targets"] = torch.full((len(videos), 5), 3.0)
    batch["video_ids"] = [f"clip{i // G}" for i in range(len(videos))]
    return batch


def _grpo_step(trainer, model, inputs, reuse: bool, seed: int = 7):
    """One GRPO loss + backward with the vision reuse on or off: (loss, completions, grads, videos encoded)."""
    refs = (model, trainer.ref_model)
    trainer.reuse_vision = reuse
    counter = _TowerVideos(*refs)
    try:
        model.zero_grad()
        torch.manual_seed(seed)
        loss, roll = trainer.compute_loss(model, inputs, return_outputs=True)
        loss.backward()
    finally:
        counter.close()
    grads = _grads(model)
    model.zero_grad()
    return float(loss.detach()), roll["completion"], grads, counter.n


@pytest.mark.parametrize("setting", ["frozen_tower_ref_copy", "lora", "trainable_tower"])
def test_grpo_encodes_each_clip_once_per_group(tiny, tmp_path, setting):
    """G = 8, one prompt: the clip went through the vision tower 24 times per prompt (8 in generate, 8
    in the policy pass, 8 in the reference pass); now once with a frozen tower (a full fine-tune with
    ``freeze_vision`` and its reference copy, or LoRA, whose base weights are frozen) and 3 times with
    a trainable tower (generate, policy with gradient, reference with its own weights). Same sampled
    tokens under a fixed seed, same loss and gradients (tower gradients included) as the
    un-optimised path."""
    from vqalib.model.loading import LoraSettings, load_model_and_processor, vision_tower
    from vqalib.train.base import make_reference

    base, proc = tiny
    G = 8
    if setting == "lora":
        torch.manual_seed(0)
        model, _ = load_model_and_processor("tiny", lora=LoraSettings(r=4, alpha=8, dropout=0.0))
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.1)
        ref, expect = None, 1
    else:
        model, _ = load_model_and_processor("tiny")
        if setting == "frozen_tower_ref_copy":
            for p in vision_tower(model).parameters():
                p.requires_grad_(False)
        ref = make_reference(model)
        with torch.no_grad():  # the policy has moved away from the reference (except a frozen tower)
            for n, p in model.named_parameters():
                if p.requires_grad:
                    p.add_(0.01 * torch.randn_like(p))
        expect = 1 if setting == "frozen_tower_ref_copy" else 3
    model.train()
    trainer = _grpo_trainer(model, proc, tmp_path, ref, G)
    inputs = _grpo_inputs(proc, [_clip(11)], G)
    loss_old, comp_old, g_old, n_old = _grpo_step(trainer, model, inputs, reuse=False)
    loss_new, comp_new, g_new, n_new = _grpo_step(trainer, model, inputs, reuse=True)
    assert n_old == 3 * G  # the un-optimised path: every copy in every pass
    assert n_new == expect, f"{n_new} vision-tower encodings per prompt with G = {G}; expected {expect}"
    assert torch.equal(comp_new, comp_old)
    assert loss_new == pytest.approx(loss_old, abs=1e-5)
    _assert_same_grads(g_new, g_old)
    if setting == "trainable_tower":
        assert any(n.startswith("model.visual") or ".visual." in n for n in g_new)  # the tower does train


def test_reuse_keeps_different_clips_apart(tiny):
    """Two different clips in one call keep their own features (exact pixel comparison), and the
    un-patched method is back after the block."""
    from vqalib.model.inputs import build_batch
    from vqalib.train.vision_cache import reuse_video_features

    model, proc = tiny
    batch = build_batch(proc, [_clip(1), _clip(2), _clip(1), _clip(2)]).model_inputs()
    with torch.no_grad():
        plain = model(**batch).logits
        with reuse_video_features(model, share=True) as cache:
            reused = model(**batch).logits
            again = model(**batch).logits
    assert (cache.n_videos, cache.n_encoded) == (8, 2)
    assert torch.allclose(reused, plain, atol=1e-5) and torch.allclose(again, plain, atol=1e-5)
    assert not torch.allclose(plain[0], plain[1], atol=1e-3)
    assert "get_video_features" not in vars(model.model)
