"""The K-level scorer on the Qwen3-VL and Qwen3.5 tiny presets: which pass each family gets, and that its
values *and gradients* (what ASO trains through) are those of independent teacher-forced passes.

Qwen3.5's linear-attention layers are recurrent: a 4-D tree mask does not stop a tree token from reading
the tokens before it in the recurrent state, so the tree pass is wrong there (checked below: it would fail),
and the branch pass (one batched pass over the trie's branches, video encoded once per clip) is used.
"""

from __future__ import annotations

import pytest
import torch

from model_helpers import SHARED, synthetic_clip
from vqalib.method import distributions as D
from vqalib.model.family import family_of
from vqalib.model.inputs import build_batch

ANSWER = ("Fine.\nMotion Quality: 3.5\nMotion Amplitude: 2.0\nAesthetic Quality: 4.0\nContent Quality: 1.5\n"
          "Clarity Quality: 5.0")
PRESETS = {"tiny-qwen3-vl": "qwen3_vl", "tiny-qwen3.5": "qwen3_5"}


@pytest.fixture(scope="module", params=list(PRESETS))
def loaded(request):
    if not (SHARED / PRESETS[request.param] / "tokenizer.json").is_file():
        pytest.skip(f"real {PRESETS[request.param]} files not found in {SHARED} (../shared/data is CI-only)")
    from vqalib.model.loading import load_model_and_processor

    model, processor = load_model_and_processor(request.param)
    clips = [synthetic_clip(8, (128, 128), 30.0, 120, seed=1), synthetic_clip(4, (96, 64), 25.0, 100, seed=2)]
    return request.param, model, processor, build_batch(processor, clips, [ANSWER, ANSWER.replace("3.5", "1.0")])


def test_the_family_declares_the_pass_the_scorer_takes(loaded):
    name, model, _, _ = loaded
    assert family_of(model).tree_mask is D.reads_tree_mask(model)
    assert D.reads_tree_mask(model) is (name == "tiny-qwen3-vl")


def test_values_equal_independent_passes(loaded):
    _, model, _, batch = loaded
    with torch.no_grad():
        one = D.level_logprobs_raw(model, batch)
        ref = D.level_logprobs_independent(model, batch, batched_levels=True)
    assert torch.isfinite(one).all() and one.shape == (2, 5, 9)
    assert (one - ref).abs().max() < 1e-5


def test_gradients_equal_independent_passes(loaded):
    """What ASO trains through: one clip (small frames), the independent passes batched over the levels."""
    _, model, processor, _ = loaded
    batch = build_batch(processor, [synthetic_clip(4, (64, 64), 25.0, 100, seed=3)], [ANSWER])
    picks = [n for n, _ in model.named_parameters()
             if n.endswith(("visual.blocks.0.attn.qkv.weight", "layers.0.mlp.up_proj.weight",
                            "layers.0.linear_attn.in_proj_qkv.weight", "layers.1.self_attn.q_proj.weight"))]
    assert len(picks) >= 3, picks
    params = dict(model.named_parameters())

    def run(fn):
        model.zero_grad()
        raw = fn(model, batch)
        torch.nan_to_num(raw).sum().backward()
        return raw.detach(), {n: params[n].grad.clone() for n in picks}

    one, g_one = run(D.level_logprobs_raw)
    ref, g_ref = run(lambda m, b: D.level_logprobs_independent(m, b, batched_levels=True))
    assert (one - ref).abs().max() < 1e-5
    for n in picks:  # relative to the gradient's own size (the LM weights' grads reach ~1e2 on random weights)
        assert (g_one[n] - g_ref[n]).abs().max() <= 1e-5 * max(1.0, float(g_ref[n].abs().max())), n
        assert g_ref[n].abs().max() > 0, n


def test_a_tree_mask_is_wrong_on_recurrent_layers(loaded):
    name, model, _, batch = loaded
    trie = D.LevelTrie.build(batch.level_ids)
    with torch.no_grad():
        tree, _ = D._tree_pass(model, batch, batch.score_positions, trie, False)
        branch, _ = D._branch_pass(model, batch, batch.score_positions, trie, False)
    diff = float((tree - branch).abs().max())
    if name == "tiny-qwen3.5":  # the recurrent state carries the other tree tokens: far from the exact pass
        assert diff > 1e-3
    else:
        assert diff < 1e-5
