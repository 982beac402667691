"""A bare "3" is the level 3.0 for the parser and for the level distribution alike (issue 8, section 2).

The parser reads ``Motion Quality: 3`` as 3.0. Before, the 9-level distribution counted only the
strings ``"3.0"`` ... so a model that writes ``3`` had that mass in ``outside_mass`` and its argmax /
expected score could name another level than its parsed answer. With
``continue_ids=number_continuation_ids(tokenizer)`` (what :func:`vqalib.eval.predict.predict` uses) the
``X.0`` levels also count ``X`` followed by anything that does not continue the number.
"""

from __future__ import annotations

import pytest
import torch

from model_helpers import synthetic_clip
from vqalib.model import loading as models
from vqalib.schema import prompts
from vqalib.method import distributions as scoring
from vqalib.model.inputs import build_batch
from vqalib.schema.levels import DIMENSION_KEYS, LEVEL_STRINGS

BARE = prompts.format_answer(dict(zip(DIMENSION_KEYS, [3.0, 2.0, 4.0, 1.0, 5.0])), "Steady.").replace(": 3.0", ": 3")


@pytest.fixture(scope="module")
def tiny():
    model, proc = models.load_model_and_processor("tiny")
    return model.eval(), proc


def test_parser_reads_the_bare_level_and_points_at_it():
    res = prompts.parse_answer(BARE)
    assert res.ok and res.scores["motion_quality"] == 3.0 and res.raw["motion_quality"] == "3"
    a, b = res.spans["motion_quality"]
    assert BARE[a:b] == "3" and not prompts.check_format(BARE)


def test_continuation_ids_are_the_digits_and_the_point(tiny):
    _, proc = tiny
    ids = scoring.number_continuation_ids(proc.tokenizer)
    assert proc.tokenizer.convert_ids_to_tokens(list(ids)) == list("0123456789.")


def test_integer_form_equals_independent_passes(tiny):
    """pi(X.0) = p(X.0) + p(X) (1 - sum_t p(t | X)), each term from plain teacher-forced passes."""
    model, proc = tiny
    b = build_batch(proc, [synthetic_clip(seed=0)], [BARE])
    cont = scoring.number_continuation_ids(proc.tokenizer)
    level_ids = scoring.level_token_ids(proc.tokenizer)
    with torch.no_grad():
        strict = scoring.level_logprobs_raw(model, b)
        tree = scoring.level_logprobs_raw(model, b, continue_ids=cont)
        firsts = sorted({s[0] for s in level_ids})
        p_first = scoring.level_logprobs_independent(model, b, [(x,) for x in firsts], batched_levels=True).exp()
        p_pair = scoring.level_logprobs_independent(model, b, [(x, t) for x in firsts for t in cont],
                                                    batched_levels=True).exp().reshape(1, 5, len(firsts), len(cont))
    expected = strict.exp().clone()
    for s, (text, seq) in enumerate(zip(LEVEL_STRINGS, level_ids)):
        if text.endswith(".0"):
            j = firsts.index(seq[0])
            expected[..., s] += p_first[..., j] - p_pair[..., j, :].sum(-1)
    torch.testing.assert_close(tree.exp(), expected, atol=1e-6, rtol=1e-5)
    half = [s for s, t in enumerate(LEVEL_STRINGS) if t.endswith(".5")]
    torch.testing.assert_close(tree[..., half], strict[..., half])  # "3.5" has no bare form
    whole = [s for s, t in enumerate(LEVEL_STRINGS) if t.endswith(".0")]
    assert (tree[..., whole] > strict[..., whole]).all()


def test_predict_counts_the_bare_form(tiny):
    """score_answers (the prediction path) uses the integer form: less mass outside the 9 levels."""
    from vqalib.eval.predict import score_answers

    model, proc = tiny
    clip = synthetic_clip(seed=0)
    dist, outside, kinds, parses = score_answers(model, proc, [clip], [BARE])
    b = build_batch(proc, [clip], [BARE])
    with torch.no_grad():
        lp_strict, out_strict = scoring.level_logprobs(model, b)
    assert kinds == ["generated"] and parses[0].scores["motion_quality"] == 3.0
    assert (torch.as_tensor(outside) < out_strict.double()).all()
