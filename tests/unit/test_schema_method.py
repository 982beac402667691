"""The method for any rating schema (issue 23): the one-pass level scorer for K words, 9 levels and 10
integers ("1" is a prefix of "10"), the readouts, ASO's reward and pi*, GRPO's rewards with masked
dimensions, the teaching bandit and the derivation figure on other grids. Right values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model_helpers import synthetic_clip
from vqalib.method import aso, grpo_math, readout
from vqalib.method import distributions as scoring
from vqalib.schema import levels, prompts
from vqalib.schema.rating import INT10, MOS9, PAPER, QALIGN5

# ------------------------------------------------------------------------------ the one-pass scorer

ANSWERS = {
    "qalign5": ["The picture is sharp and steady.\n\nOverall Quality: excellent", "Overall Quality: fair"],
    "mos9": ["Soft edges.\n\nOverall Quality: 3.5", "Overall Quality: 1.0"],
    "int10": ["Visual Quality: 10\nTemporal Consistency: 1\nText Alignment: 7",
              "Some flicker.\n\nVisual Quality: 3\nTemporal Consistency: 10\nText Alignment: 1"],
}
SCHEMAS = {"qalign5": QALIGN5, "mos9": MOS9, "int10": INT10}


@pytest.fixture(scope="module")
def tiny():
    from vqalib.model import loading as models

    model, proc = models.load_model_and_processor("tiny")
    return model.eval(), proc


def score_positions(proc, batch, answers, schema, side):
    """[B, D] token index of the first token of each dimension's level (the token holding the level's first
    character; for a word that is " word", which holds the space before it), as the collator finds them."""
    tok = proc.tokenizer
    out = torch.full((len(answers), schema.n_dims), -1, dtype=torch.long)
    for b, text in enumerate(answers):
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        pad = int((batch["attention_mask"][b] == 0).sum()) if side == "left" else 0
        for d, name in enumerate(schema.names):
            at = text.find(f"{name}: ")
            if at < 0:
                continue
            char = at + len(name) + 2
            j = next(i for i, (a, e) in enumerate(offsets) if a <= char < e)
            out[b, d] = pad + batch.prompt_lengths[b] + j
    return out


def schema_batch(proc, key, side="left"):
    from vqalib.model.inputs import build_batch

    answers = ANSWERS[key]
    b = build_batch(proc, [synthetic_clip(seed=i) for i in range(len(answers))], answers, padding_side=side)
    return b, score_positions(proc, b, answers, SCHEMAS[key], side)


def test_paper_level_ids_are_the_level_strings_alone(tiny):
    _, proc = tiny
    tok = proc.tokenizer
    old = [tuple(tok.encode(s, add_special_tokens=False)) for s in levels.LEVEL_STRINGS]
    assert scoring.level_token_ids(tok) == old == scoring.level_token_ids(tok, schema=PAPER)
    assert scoring.level_token_ids(tok, schema=MOS9) == old
    assert scoring.prefix_levels(old) == {}


def test_level_ids_in_context_words_and_integers(tiny):
    _, proc = tiny
    tok = proc.tokenizer
    words = scoring.level_token_ids(tok, schema=QALIGN5)
    for w, ids in zip(QALIGN5.strings, words):  # each word holds the space before it (" excellent")
        assert tok.decode(list(ids)) == " " + w
    ints = scoring.level_token_ids(tok, schema=INT10)
    one, zero = tok.convert_tokens_to_ids("1"), tok.convert_tokens_to_ids("0")
    assert ints[0] == (one,) and ints[9] == (one, zero)
    assert scoring.prefix_levels(ints) == {0: (zero,)}  # "1" must end: not followed by the "0" of "10"
    trie = scoring.LevelTrie.build(ints)
    assert trie.n_nodes == 1 and trie.node_of((one,)) == 0


def test_our_score_positions_agree_with_build_batch_on_the_paper(tiny):
    from vqalib.model.inputs import build_batch

    _, proc = tiny
    answers = [prompts.format_answer(dict(zip(levels.DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Soft."),
               prompts.format_answer({k: 2.5 for k in levels.DIMENSION_KEYS})]
    b = build_batch(proc, [synthetic_clip(seed=0), synthetic_clip(seed=1)], answers)
    assert torch.equal(score_positions(proc, b, answers, PAPER, "left"), b.score_positions)


@pytest.mark.parametrize("key,side", [("qalign5", "left"), ("mos9", "right"), ("int10", "left"), ("int10", "right")])
def test_one_pass_equals_k_independent_passes(tiny, key, side):
    model, proc = tiny
    schema = SCHEMAS[key]
    b, sp = schema_batch(proc, key, side)
    ids = scoring.level_token_ids(proc.tokenizer, schema=schema)
    assert (sp > 0).all()
    with torch.no_grad():
        tree = scoring.level_logprobs_raw(model, b, ids, sp, schema=schema)
        ref = scoring.level_logprobs_independent(model, b, ids, sp, schema=schema)
    assert tree.shape == (2, schema.n_dims, schema.n_levels) and torch.isfinite(tree).all()
    torch.testing.assert_close(tree, ref, atol=1e-5, rtol=1e-5)
    lp, out = scoring.level_logprobs(model, b, ids, sp, schema=schema)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, schema.n_dims), atol=1e-5)
    assert ((out >= 0) & (out <= 1)).all()


def test_one_and_ten_split_the_mass_of_the_first_digit(tiny):
    """pi("1") + pi("10") = p("1" | x): "1" counts only the continuations that are not the "0" of "10"."""
    model, proc = tiny
    b, sp = schema_batch(proc, "int10", "right")
    ids = scoring.level_token_ids(proc.tokenizer, schema=INT10)
    with torch.no_grad():
        raw = scoring.level_logprobs_raw(model, b, ids, sp, schema=INT10)
        logp = torch.log_softmax(model(**b.model_inputs(False)).logits.float(), -1)
    one, zero = ids[0][0], ids[9][1]
    for i in range(2):
        for d in range(3):
            p = int(sp[i, d])
            p1 = logp[i, p - 1, one].exp()
            assert float(raw[i, d, 0].exp() + raw[i, d, 9].exp()) == pytest.approx(float(p1), rel=1e-4)
            ids_next = b["input_ids"][i, p:p + 2].tolist()
            if ids_next == [one, zero]:  # the answer wrote "10": its level is teacher-forced exactly
                assert float(raw[i, d, 9]) == pytest.approx(float(logp[i, p - 1, one] + logp[i, p, zero]), abs=1e-5)


def test_schema_checks_k_and_d(tiny):
    model, proc = tiny
    b, sp = schema_batch(proc, "int10")
    with pytest.raises(ValueError, match="K = 10"):
        scoring.level_logprobs_raw(model, b, scoring.level_token_ids(proc.tokenizer), sp, schema=INT10)
    with pytest.raises(ValueError, match="3 columns"):
        scoring.level_logprobs_raw(model, b, scoring.level_token_ids(proc.tokenizer, schema=MOS9), sp, schema=MOS9)
