"""Exact 9-level distributions: the one-pass tree equals nine independent teacher-forced passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model_helpers import QWEN_DIR, shrunk_real_model, synthetic_clip
from vqalib.model import loading as models
from vqalib.schema import prompts
from vqalib.method import distributions as scoring
from vqalib.model.inputs import build_batch
from vqalib.schema.levels import DIMENSION_KEYS, LEVELS

ANSWERS = [prompts.format_answer(dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Soft but steady, a longer one."),
           prompts.format_answer({k: 2.5 for k in DIMENSION_KEYS})]


@pytest.fixture(scope="module")
def tiny():
    model, proc = models.load_model_and_processor("tiny")
    return model.eval(), proc


def _batch(proc, side="left", size=(112, 112)):
    return build_batch(proc, [synthetic_clip(seed=0, size=size), synthetic_clip(seed=1, size=size)], ANSWERS,
                       padding_side=side)


def test_level_trie_for_digit_tokens(tiny):
    _, proc = tiny
    ids = scoring.level_token_ids(proc.tokenizer)
    assert all(len(s) == 3 for s in ids)
    trie = scoring.LevelTrie.build(ids)
    assert trie.n_nodes == 10  # "1".."5" and "1.".."5."
    assert [len(s) for s in trie.steps] == [3] * 9


@pytest.mark.parametrize("side", ["left", "right"])
def test_tree_equals_nine_independent_passes_tiny(tiny, side):
    model, proc = tiny
    b = _batch(proc, side)
    with torch.no_grad():
        tree = scoring.level_logprobs_raw(model, b)
        ref = scoring.level_logprobs_independent(model, b)
    assert torch.isfinite(tree).all()
    torch.testing.assert_close(tree, ref, atol=1e-5, rtol=1e-5)
    lp_t, out_t = scoring.normalise(tree)
    lp_r, out_r = scoring.normalise(ref)
    torch.testing.assert_close(lp_t, lp_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_t, out_r, atol=1e-5, rtol=1e-5)


def test_tree_equals_nine_independent_passes_shrunk_real_config():
    if not (QWEN_DIR / "config.json").is_file():
        pytest.skip(f"real Qwen2.5-VL files not found in {QWEN_DIR} (../shared/data is CI-only)")
    model, proc = shrunk_real_model()
    b = _batch(proc, "left", size=(56, 84))
    with torch.no_grad():
        tree = scoring.level_logprobs_raw(model, b)
        ref = scoring.level_logprobs_independent(model, b, batched_levels=True)
    torch.testing.assert_close(tree, ref, atol=1e-5, rtol=1e-5)


def test_matches_plain_teacher_forcing_of_the_written_level(tiny):
    model, proc = tiny
    b = _batch(proc)
    with torch.no_grad():
        tree = scoring.level_logprobs_raw(model, b)
        logp = torch.log_softmax(model(**b.model_inputs(False)).logits, -1)
    for i, ans in enumerate(ANSWERS):
        scores = prompts.parse_answer(ans).scores
        for d, k in enumerate(DIMENSION_KEYS):
            p = int(b.score_positions[i, d])
            ids = b["input_ids"][i, p: p + 3]
            tf = sum(logp[i, p - 1 + j, ids[j]] for j in range(3))
            level = int(np.argmin(np.abs(LEVELS - scores[k])))
            assert float(tree[i, d, level]) == pytest.approx(float(tf), abs=1e-5)


def test_gradients_equal_those_of_independent_passes(tiny):
    model, proc = tiny
    b = build_batch(proc, [synthetic_clip()], ANSWERS[:1])
    w = torch.linspace(-1, 1, 45).view(1, 5, 9)
    params = [model.get_input_embeddings().weight, model.lm_head.weight]

    def grads(fn):
        model.zero_grad()
        lp, _ = scoring.normalise(fn(model, b))
        (lp * w).sum().backward()
        return [p.grad.clone() for p in params]

    g_tree = grads(scoring.level_logprobs_raw)
    g_ref = grads(scoring.level_logprobs_independent)
    assert g_tree[0].abs().sum() > 0
    for a, r in zip(g_tree, g_ref):  # float32 sums in a different order: compare relative to the norm
        assert float((a - r).norm() / r.norm()) < 1e-5


def test_missing_positions_give_nan_rows_only_there(tiny):
    model, proc = tiny
    b = _batch(proc)
    sp = b.score_positions.clone()
    sp[1, 2] = -1
    with torch.no_grad():
        lp, out = scoring.level_logprobs(model, b, score_positions=sp)
        full, _ = scoring.level_logprobs(model, b)
    assert torch.isnan(lp[1, 2]).all() and math.isnan(float(out[1, 2]))
    keep = torch.ones(2, 5, dtype=torch.bool)
    keep[1, 2] = False
    torch.testing.assert_close(lp[keep], full[keep])
    assert torch.allclose(lp[keep].exp().sum(-1), torch.ones(9))
    assert ((out[keep] >= 0) & (out[keep] <= 1)).all()


def test_plain_dict_batches_need_level_ids_and_positions(tiny):
    model, proc = tiny
    b = _batch(proc)
    plain = dict(b)
    with pytest.raises(ValueError, match="level_token_ids"):
        scoring.level_logprobs(model, plain)
    plain["score_positions"] = b.score_positions
    with torch.no_grad():
        lp, _ = scoring.level_logprobs(model, plain, level_ids=scoring.level_token_ids(proc.tokenizer))
        ref, _ = scoring.level_logprobs(model, b)
    torch.testing.assert_close(lp, ref)


def test_flash_attention_is_refused(tiny, monkeypatch):
    model, proc = tiny
    monkeypatch.setattr(model.config, "_attn_implementation", "flash_attention_2", raising=False)
    with pytest.raises(ValueError, match="sdpa"):
        scoring.level_logprobs(model, _batch(proc))


@pytest.mark.parametrize("side", ["left", "right"])
def test_returned_sequence_logits_equal_a_plain_forward(tiny, side):
    """return_logits=True: the sequence part of the tree-masked pass is a plain teacher-forced pass,
    so a loss on the answer's other tokens needs no second forward (ASO's rationale term)."""
    model, proc = tiny
    b = _batch(proc, side)
    with torch.no_grad():
        logp, outside, logits = scoring.level_logprobs(model, b, return_logits=True)
        plain = model(**b.model_inputs(False)).logits
        logp_only, outside_only = scoring.level_logprobs(model, b)
    real = b["attention_mask"].bool()
    assert logits.shape == plain.shape
    torch.testing.assert_close(logits[real], plain[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logp, logp_only)
    torch.testing.assert_close(outside, outside_only)
