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
    "paper": [prompts.format_answer(dict(zip(levels.DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Soft."),
              prompts.format_answer({k: 2.5 for k in levels.DIMENSION_KEYS})],
}
SCHEMAS = {"qalign5": QALIGN5, "mos9": MOS9, "int10": INT10, "paper": PAPER}


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
    # this file's score positions (first token of the level) are build_batch's on the paper's answers
    from vqalib.model.inputs import build_batch

    answers = [prompts.format_answer(dict(zip(levels.DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Soft."),
               prompts.format_answer({k: 2.5 for k in levels.DIMENSION_KEYS})]
    b = build_batch(proc, [synthetic_clip(seed=0), synthetic_clip(seed=1)], answers)
    assert torch.equal(score_positions(proc, b, answers, PAPER, "left"), b.score_positions)


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


@pytest.mark.parametrize("key,side", [("qalign5", "left"), ("mos9", "right"), ("paper", "left"), ("int10", "left"),
                                      ("int10", "right")])
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


# ------------------------------------------------------------------------------------------ readouts

def test_readouts_over_the_schema_levels():
    pi = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0], dtype=torch.float64)  # bad .. excellent
    assert float(readout.expected_score(pi, schema=QALIGN5)) == pytest.approx(0.1 + 0.4 + 0.9 + 1.6)
    assert float(readout.argmax_score(pi, schema=QALIGN5)) == 4.0
    ten = np.zeros(10)
    ten[9], ten[2] = 0.75, 0.25
    assert readout.expected_score_np(ten, schema=INT10) == pytest.approx(0.75 * 10 + 0.25 * 3)
    assert readout.argmax_score_np(ten, schema=INT10) == 10.0
    assert np.isnan(readout.expected_score_np(np.full((2, 10), np.nan), schema=INT10)).all()
    with pytest.raises(ValueError, match="K = 9"):
        readout.expected_score(pi)
    with pytest.raises(ValueError, match=r"\[\.\.\., 10\]"):
        readout.check_distributions(np.full(9, 1 / 9), schema=INT10)
    torch.testing.assert_close(readout.levels_like(pi, schema=MOS9), torch.tensor(levels.LEVELS.tolist(), dtype=torch.float64))


# ------------------------------------------------------------------------------------------ ASO

def test_aso_reward_and_pi_star_on_other_grids():
    r = aso.reward_abs(7.0, 2.0, schema=INT10)
    assert r.tolist() == [-12.0, -10.0, -8.0, -6.0, -4.0, -2.0, 0.0, -2.0, -4.0, -6.0]
    assert aso.reward_abs(4.0, schema=QALIGN5).tolist() == [-3.0, -2.0, -1.0, 0.0, -1.0]
    # pi* ∝ pi_ref exp(R / lam): uniform pi_ref over the five words, s* = good, lam = beta = 1
    star = aso.optimal_policy(torch.full((5,), 0.2, dtype=torch.float64), aso.reward_abs(4.0, schema=QALIGN5), 1.0,
                              probs=True, schema=QALIGN5)
    w = np.exp(-np.abs(np.arange(1, 6) - 4.0))
    np.testing.assert_allclose(star.numpy(), w / w.sum(), rtol=1e-12)
    with pytest.raises(ValueError, match="K = 9"):
        aso.optimal_policy(torch.full((10,), 0.1), torch.zeros(10), 1.0, probs=True)
    with pytest.raises(ValueError, match="K = 10"):
        aso.as_log_probs(torch.full((9,), 1 / 9), probs=True, schema=INT10)
    with pytest.raises(ValueError, match=r"1/10\]"):
        aso.as_log_probs(torch.full((10,), 0.1), probs=True, eps=0.2, schema=INT10)
    assert float(aso.label_mass(star, 4.0, schema=QALIGN5)) == pytest.approx(w[3] / w.sum())
    with pytest.raises(ValueError, match="not on the grid"):
        aso.label_mass(star, 4.5, schema=QALIGN5)


def test_soft_target_reward_is_the_expected_distance():
    t = torch.tensor([0.0, 0.0, 0.5, 0.5, 0.0], dtype=torch.float64)  # raters split between fair (3) and good (4)
    r = aso.reward_abs(target=t, beta=2.0, schema=QALIGN5)
    # R(s) = -2 (0.5 |s - 3| + 0.5 |s - 4|): s = 1: -2 (1 + 1.5) = -5; s = 3, 4: -1; s = 5: -2 (1 + 0.5) = -3
    assert r.tolist() == [-5.0, -3.0, -1.0, -1.0, -3.0]
    one_hot = torch.zeros(10, dtype=torch.float64)
    one_hot[6] = 1.0
    torch.testing.assert_close(aso.reward_abs(target=one_hot, schema=INT10), aso.reward_abs(7.0, schema=INT10))
    g = INT10.target(6.2, 1.3, rule="gaussian")
    want = -np.array([np.sum(g * np.abs(s - INT10.levels)) for s in INT10.levels])
    np.testing.assert_allclose(aso.reward_abs(target=torch.as_tensor(g), schema=INT10).numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="K = 5"):
        aso.reward_abs(target=torch.full((9,), 1 / 9), schema=QALIGN5)
    with pytest.raises(ValueError, match="exactly one"):
        aso.reward_abs(3.0, target=t)


def test_grpo_reward_terms_on_other_grids():
    # INT10: span 9, pred 3 gt 10: R_dist = 9 - 7 = 2; R_acc 1 only at 10
    assert aso.dist_max(INT10) == 9.0 and aso.dist_max(QALIGN5) == 4.0
    assert aso.dist_max() == aso.dist_max(MOS9) == 5.0  # the paper's constant on its grid
    assert float(aso.reward_dist(10.0, schema=INT10)[2]) == 2.0
    acc = aso.reward_acc(10.0, schema=INT10)
    assert acc.tolist() == [0.0] * 9 + [1.0]
    assert aso.reward_acc(2.0, schema=QALIGN5).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert aso.keep_argmax_threshold(schema=INT10) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert aso.keep_argmax_threshold() == aso.keep_argmax_threshold(1.0, 1.0, 0.5)


def test_pi_ref_health_masks_unlabelled_items():
    lp = torch.log_softmax(torch.randn(4, 3, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    s = torch.tensor([[1.0, 5.0, 10.0]] * 4, dtype=torch.float64)
    s_nan = s.clone()
    s_nan[1, 2] = s_nan[3, 0] = float("nan")
    h = aso.pi_ref_health(lp, s_nan, schema=INT10)
    keep = ~torch.isnan(s_nan)
    ref = aso.pi_ref_health(lp[keep], s[keep], schema=INT10)
    assert h["n_unlabelled"] == 2 and h["n_items"] == 10
    for k in ("p_label_mean", "kl_star_ref", "expected_shift_mean", "entropy"):
        assert h[k] == pytest.approx(ref[k], rel=1e-12)
    assert h["p_label_by_dim"][2] == pytest.approx(float(lp[[0, 2, 3], 2, 9].exp().mean()))
    assert "uniform over 10" in aso.format_health(h, schema=INT10)


# ------------------------------------------------------------------------------------------ GRPO

def _parsed(text: str, scores: dict, schema) -> prompts.ParseResult:
    res = prompts.ParseResult(text=text)
    for k in schema.keys:
        v = scores.get(k)
        res.scores[k] = v
        res.status[k] = prompts.STATUS_OK if v is not None else "missing"
        res.off_grid[k] = False
        res.rescaled[k] = False
    return res


def test_grpo_single_dimension_reward_is_not_divided_by_five():
    res = [_parsed("Overall Quality: good", {"overall_quality": 4.0}, QALIGN5),
           _parsed("Overall Quality: bad", {"overall_quality": 1.0}, QALIGN5)]
    out = grpo_math.score_rewards(res, np.array([[4.0], [4.0]]), schema=QALIGN5, format_check=lambda t: True)
    # good: R_acc 1 + R_dist (4 - 0) + format 1 = 6; bad: 0 + (4 - 3) + 1 = 2; one dimension: no division
    assert out.total.tolist() == [6.0, 2.0]
    assert out.acc.shape == (2, 1) and out.dist.tolist() == [[4.0], [1.0]]


def test_grpo_int10_right_values_and_unlabelled_dimensions_masked():
    keys = INT10.keys
    res = [_parsed("a", {keys[0]: 3.0, keys[1]: 10.0, keys[2]: 5.0}, INT10),
           _parsed("b", {keys[0]: 10.0, keys[1]: None, keys[2]: 1.0}, INT10)]
    targets = np.array([[10.0, 10.0, np.nan], [10.0, 9.0, np.nan]])  # text_alignment unlabelled for both clips
    out = grpo_math.score_rewards(res, targets, format_weight=0.5, schema=INT10, format_check=lambda t: t == "a")
    # clip a: visual pred 3 gt 10: 0 + (9 - 7) + 0.5 = 2.5; temporal exact: 1 + 9 + 0.5 = 10.5 -> mean over 2 = 6.5
    # clip b: visual exact: 1 + 9 + 0 = 10; temporal missing: 0, counted -> 10 / 2 = 5
    assert out.total.tolist() == [6.5, 5.0]
    assert out.dist[0].tolist() == [2.0, 9.0, 0.0] and out.fmt[0].tolist() == [1.0, 1.0, 0.0]
    assert out.labelled.tolist() == [[True, True, False]] * 2
    assert out.n_dims_unlabelled == 2 and out.n_dims_missing == 1 and out.n_unparsable == 1
    with pytest.raises(ValueError, match="D\\] = \\[2, 3\\]"):
        grpo_math.score_rewards(res, np.zeros((2, 5)), schema=INT10, format_check=lambda t: True)


def test_advantages_per_dimension_average_over_labelled_only():
    r = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # one group of 2; dimension 2 unlabelled
    adv = grpo_math.group_advantages_per_dimension(r, 2, labelled=torch.tensor([[True, False]] * 2))
    torch.testing.assert_close(adv, grpo_math.group_advantages(r[:, 0].contiguous(), 2))
    torch.testing.assert_close(grpo_math.group_advantages_per_dimension(r, 2),
                               grpo_math.group_advantages(r[:, 0].contiguous(), 2) / 2)


def test_paper_rewards_unchanged_bit_for_bit():
    """schema=None and schema=PAPER give the numbers the old fixed-five code gave (its formula, by hand)."""
    rng = np.random.default_rng(0)
    tg = levels.LEVELS[rng.integers(0, 9, (6, 5))]
    pred = levels.LEVELS[rng.integers(0, 9, (6, 5))]
    res = [_parsed("x", dict(zip(levels.DIMENSION_KEYS, p)), PAPER) for p in pred]
    a = grpo_math.score_rewards(res, tg, format_check=lambda t: False)
    b = grpo_math.score_rewards(res, tg, schema=PAPER, format_check=lambda t: False)
    acc = (levels.snap_to_grid(pred) == levels.snap_to_grid(tg)).astype(float)
    dist = 5.0 - np.abs(pred - tg)
    assert np.array_equal(a.total, (acc + dist + 0.0).mean(axis=1)) and np.array_equal(a.total, b.total)


# ------------------------------------------------------------------------------ teaching and reports

def test_bandit_on_five_words_converges_to_pi_star():
    from vqalib.teaching import bandit

    s = np.array([1.0, 4.0, 4.0, 5.0])
    ref = bandit.marginal_reference(s, schema=QALIGN5)
    assert ref.tolist() == [2 / 9, 1 / 9, 1 / 9, 3 / 9, 2 / 9]  # counts 1, 0, 0, 2, 1 plus one each
    items = bandit.make_items(s, ref, schema=QALIGN5)
    assert items.R.shape == (4, 5) and items.R[1].tolist() == [-3.0, -2.0, -1.0, 0.0, -1.0]
    hist = bandit.run_aso(items, lam=1.0, steps=60)
    assert hist["tv_to_star"].iloc[-1] < 0.01
    with pytest.raises(ValueError, match="K = 5"):
        bandit.make_items(s, np.full(9, 1 / 9), schema=QALIGN5)


def test_bandit_items_from_labels_of_another_schema_skip_unlabelled_rows():
    import pandas as pd

    from vqalib.teaching import bandit

    labels = pd.DataFrame({"video_id": ["a", "b", "c", "a", "b"],
                           "dimension": ["visual_quality"] * 3 + ["text_alignment"] * 2,
                           "score": [10.0, 1.0, np.nan, 7.0, 7.0]})
    items = bandit.items_from_labels(labels, schema=INT10)
    assert items.s_star.tolist() == [10.0, 1.0, 7.0, 7.0] and items.logp_ref.shape == (4, 10)
    assert bandit.items_from_labels(labels, "Text Alignment", schema=INT10).s_star.tolist() == [7.0, 7.0]


def test_explorer_state_and_reference_shapes_on_ten_integers():
    from vqalib.teaching import widgets

    st = widgets.explorer_state(schema=INT10, s_star=7.0, ref_shape="zero_mass", lam=0.5)
    assert st["pi_ref"].shape == (10,) and st["zero_levels"] == ["7"]
    assert st["pi_star"][6] == 0.0 and st["pi_star"].sum() == pytest.approx(1.0)
    elsewhere = widgets.reference_policy("peaked_elsewhere", 3.0, schema=INT10)  # the bump at 3 + 9/2 = 7.5
    assert set(np.argsort(elsewhere)[-2:]) == {6, 7}
    fig = widgets.plot_state(st)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(INT10.strings)


def test_grid_pistar_tables_are_the_closed_form():
    from vqalib.teaching import widgets

    for schema, s_star in ((PAPER, 3.0), (QALIGN5, 3.0), (INT10, None)):
        fig, table = widgets.grid_pistar(schema.name, s_star)
        assert list(table.index) == list(schema.strings) and len(fig.axes) == 2
        s = schema.levels[schema.n_levels // 2] if s_star is None else s_star
        w = np.exp(-np.abs(schema.levels - s))  # uniform pi_ref, lam = beta = 1
        np.testing.assert_allclose(table["π* (uniform π_ref)"].to_numpy(), w / w.sum(), rtol=1e-12)
    assert widgets.grid_pistar("int10")[1]["value"].tolist() == list(range(1, 11))


def test_lambda_beta_readings_and_diagnostics_on_other_grids():
    from types import SimpleNamespace

    from vqalib.report import aso_diagnostics as diag
    from vqalib.report import derivation

    uniform = torch.full((5,), 0.2, dtype=torch.float64)
    fig, table = derivation.lambda_beta_readings({"C": (1.0, 1.0)}, 4.0, {"u": uniform}, schema=QALIGN5)
    w = np.exp(-np.abs(np.arange(1, 6) - 4.0))
    assert table["π*(s*)"].iloc[0] == pytest.approx(w[3] / w.sum())
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(QALIGN5.strings)
    assert "ten keywords" in diag.skip_reason(SimpleNamespace(on_policy=False, target_position="keyword"), schema=INT10)
    t = diag.outside_mass_table((0.0, 0.5), schema=INT10)
    assert t["loss, raw (used)"].iloc[1] - t["loss, renormalised"].iloc[1] == pytest.approx(math.log(2))
    ex = [SimpleNamespace(video_id="a", ratings={"visual_quality": [2.0, 9.0], "text_alignment": [1.0, 10.0]},
                          scores={"visual_quality": 6.0, "text_alignment": float("nan")})]
    caption, table = diag.multi_rater_case(ex, 1.0, 1.0, schema=INT10)
    assert caption.startswith("clip a, visual_quality") and list(table.columns) == list(INT10.strings)


def test_grpo_rewards_through_the_schema_parser_and_strict_format():
    texts = [prompts.format_answer({"overall_quality": 4.0}, "Sharp.", schema=QALIGN5), "Sharp. Overall Quality: poor"]
    parsed = [prompts.parse_answer(t, schema=QALIGN5) for t in texts]
    out = grpo_math.score_rewards(parsed, np.array([[4.0], [4.0]]), schema=QALIGN5)
    # strict "good" for gt good: 1 + 4 + 1 = 6; "poor" off the strict format: 0 + (4 - 2) + 0 = 2
    assert out.total.tolist() == [6.0, 2.0] and out.fmt[:, 0].tolist() == [1.0, 0.0]
    ten = prompts.format_answer({"visual_quality": 3.0, "temporal_consistency": 10.0, "text_alignment": 1.0}, "x",
                                schema=INT10)
    out = grpo_math.score_rewards([prompts.parse_answer(ten, schema=INT10)], np.array([[10.0, 10.0, np.nan]]),
                                  schema=INT10)
    assert out.total.tolist() == [((0 + 2 + 1) + (1 + 9 + 1)) / 2]  # text_alignment unlabelled: not in the mean
