"""Issue 20: ASO where the model decides - pi_ref health (item 2) and the trained decision (item 1)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from vqalib.method.aso import (HealthThresholds, argmax_score, expected_score, keep_argmax_threshold, optimal_policy,
                        pi_ref_health, pi_ref_health_problems, reward_abs)

UNIFORM = math.log(1 / 9)


def _two_level(p_wrong: torch.Tensor, label_idx: int = 4, wrong_idx: int = 5) -> torch.Tensor:
    pi = torch.zeros(len(p_wrong), 9, dtype=torch.float64)
    pi[:, label_idx] = 1 - p_wrong
    pi[:, wrong_idx] = p_wrong
    return pi


# ------------------------------------------------------------------ the lambda = beta = 1 fact (docs, notebook 03)

def test_adjacent_wrong_level_above_0_6225_keeps_its_argmax_and_moves_the_expected_score_little():
    """With lambda = beta = 1, pi_ref = p on the level next to s* and 1 - p on s*: pi* keeps the wrong
    argmax iff p > 1 / (1 + e^-0.5) = 0.6225, and the expected score moves by at most 0.061 for such p
    (the sentence in aso_*.yaml, notebooks/params/06_aso.*.yaml and notebook 03 says 'at most 0.08')."""
    th = keep_argmax_threshold(1.0, 1.0)
    assert th == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert th == pytest.approx(0.6225, abs=5e-5)
    p = torch.linspace(0.5, 0.9999, 2001, dtype=torch.float64)
    for label, wrong in ((4, 5), (4, 3), (0, 1), (8, 7)):
        pi = _two_level(p, label, wrong)
        s_star = torch.full((len(p),), 1.0 + 0.5 * label, dtype=torch.float64)
        star = optimal_policy(pi, reward_abs(s_star, 1.0), 1.0, probs=True)
        kept = argmax_score(star) == argmax_score(pi)
        assert bool(kept[p > th + 1e-9].all()) and not bool(kept[(p > 0.5 + 1e-9) & (p < th - 1e-9)].any())
        shift = (expected_score(star) - expected_score(pi)).abs()
        assert float(shift[p >= th].max()) <= 0.08
        assert float(shift[p >= th].max()) == pytest.approx(0.0613, abs=1e-3)
    # the rest of the mass one level further away is not covered by the sentence: it can move E[s] by more
    pi = torch.zeros(1, 9, dtype=torch.float64)
    pi[0, 5], pi[0, 2] = 0.63, 0.37
    star = optimal_policy(pi, reward_abs(torch.tensor([3.0], dtype=torch.float64)), 1.0, probs=True)
    assert argmax_score(star) == argmax_score(pi)
    assert float((expected_score(star) - expected_score(pi)).abs()) > 0.08


# ------------------------------------------------------------------ health thresholds

def _health(logp, s_star, outside=None, lam=1.0, beta=1.0):
    return pi_ref_health(logp, s_star, lam, beta, outside=outside)


def test_health_flags_a_pi_ref_mostly_off_the_levels():
    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(50, 5, 9, dtype=torch.float64), -1)
    s = torch.full((50, 5), 3.0, dtype=torch.float64)
    h = _health(logp, s, outside=torch.full((50, 5), 0.59, dtype=torch.float64))
    assert h["off_level_mean"] == pytest.approx(0.59)
    assert h["off_level_share_over_half"] == 1.0
    assert len(h["off_level_by_dim"]) == 5
    probs = pi_ref_health_problems(h)
    assert any("mostly off the levels" in p and "target_position: keyword" in p for p in probs)
    h2 = _health(logp, s, outside=torch.full((50, 5), 0.49, dtype=torch.float64))
    assert not any("off the levels" in p for p in pi_ref_health_problems(h2))
    assert not any("off the levels" in p for p in pi_ref_health_problems(_health(logp, s)))  # unknown: no claim


def test_health_flags_aso_as_a_no_op_when_pi_star_is_pi_ref():
    # pi_ref one-hot on s*: pi* = pi_ref, nothing moves
    logp = torch.full((20, 5, 9), -math.inf, dtype=torch.float64)
    logp[..., 4] = 0.0
    s = torch.full((20, 5), 3.0, dtype=torch.float64)
    h = _health(logp, s)
    assert h["kl_star_ref"] == 0.0 and h["argmax_flip_share"] == 0.0 and h["expected_shift_mean"] == 0.0
    probs = pi_ref_health_problems(h)
    assert any("no-op" in p and "raise beta" in p for p in probs)
    assert any("one-hot label" in p for p in probs)  # and pi*(s*) = 1: SFT too
    # a spread pi_ref with a huge lambda: also a no-op, but not SFT
    torch.manual_seed(0)
    h = _health(torch.log_softmax(torch.randn(20, 5, 9, dtype=torch.float64), -1), s, lam=1e4)
    probs = pi_ref_health_problems(h)
    assert any("no-op" in p for p in probs) and not any("one-hot" in p for p in probs)


def test_health_flags_aso_as_sft_when_pi_star_is_the_label():
    s = torch.full((20, 5), 3.0, dtype=torch.float64)
    h = _health(torch.full((20, 5, 9), UNIFORM, dtype=torch.float64), s, beta=20.0)
    assert h["pistar_label_mean"] > 0.9
    probs = pi_ref_health_problems(h)
    assert any("one-hot label" in p and "raise lam or lower beta" in p for p in probs)
    assert not any("no-op" in p for p in probs)
    # the paper's lambda = beta = 1 on a uniform pi_ref: healthy (pi*(s*) ~ 0.29, a real move)
    h = _health(torch.full((20, 5, 9), UNIFORM, dtype=torch.float64), s)
    assert pi_ref_health_problems(h) == []
    assert h["p_label_mean"] == pytest.approx(1 / 9)
    assert h["entropy"] == pytest.approx(math.log(9))


def test_health_thresholds_are_the_documented_limits():
    th = HealthThresholds()
    assert (th.max_off_level, th.min_kl, th.min_flip, th.min_shift, th.max_label_mass) == (0.5, 0.01, 0.01, 0.02, 0.9)
    s = torch.full((4, 5), 3.0, dtype=torch.float64)
    h = _health(torch.full((4, 5, 9), UNIFORM, dtype=torch.float64), s, outside=torch.full((4, 5), 0.3, dtype=torch.float64))
    assert pi_ref_health_problems(h, HealthThresholds(max_off_level=0.2))  # a stricter limit flags it


def test_check_pi_ref_health_warns_refuses_or_stays_silent():
    from vqalib.train.aso_trainer import check_pi_ref_health
    from vqalib.train.common import load_config

    s = torch.full((4, 5), 3.0, dtype=torch.float64)
    bad = _health(torch.full((4, 5, 9), UNIFORM, dtype=torch.float64), s, outside=torch.full((4, 5), 0.99, dtype=torch.float64))
    with pytest.warns(UserWarning, match="mostly off the levels"):
        check_pi_ref_health(load_config("aso", None, []), bad, announce=False)
    with pytest.raises(ValueError, match="pi_ref_health: refuse"):
        check_pi_ref_health(load_config("aso", None, ["pi_ref_health=refuse"]), bad, announce=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_pi_ref_health(load_config("aso", None, ["pi_ref_health=off"]), bad, announce=False) == []
    with pytest.raises(ValueError, match="pi_ref_health='maybe'"):
        load_config("aso", None, ["pi_ref_health=maybe"])


# ------------------------------------------------------------------ item 1: the soft target at the keyword

def _rationale_example(vid: str = "clip-a"):
    from pathlib import Path

    from vqalib.schema.levels import DIMENSION_KEYS as DIMS
    from vqalib.data.synth import rationale_text
    from vqalib.train.collator import ClipExample

    scores = dict(zip(DIMS, (2.5, 4.0, 3.5, 1.0, 5.0)))
    tags = {"motion_quality": ["camera_shake"], "motion_amplitude": ["large_motion"], "aesthetic_quality": [],
            "content_quality": ["black_borders"], "clarity_quality": []}
    rats = {k: rationale_text(k, scores[k], tags[k]) for k in DIMS}
    rats["aesthetic_quality"] = "Overall Aesthetic: The overall quality is Good, rich in aesthetics and expressiveness."
    return ClipExample(vid, Path(f"/nonexistent/{vid}.mp4"), scores, rats, tags)


class _Frames:
    """Serves one synthetic clip per path (the collator's cache interface: get / draw)."""

    def __init__(self):
        from model_helpers import synthetic_clip

        self.clip = synthetic_clip()

    def get(self, path):
        return self.clip

    def draw(self, path, rng):
        return self.clip


@pytest.fixture(scope="module")
def tiny():
    from vqalib.model.loading import load_model_and_processor

    torch.manual_seed(0)
    return load_model_and_processor("tiny")


def test_keyword_spans_find_each_dimension_s_evaluation_keyword():
    from vqalib.schema.levels import KEYWORDS
    from vqalib.train.collator import answer_text, keyword_spans

    ex = _rationale_example()
    text = answer_text(ex, "full")
    spans = keyword_spans(ex)
    assert all(s is not None for s in spans)
    for (a, b, level, cap), key in zip(spans, ex.scores):
        assert text[a:b].lower() == KEYWORDS[level].lower()
        assert level == ex.scores[key]  # the sample data's keyword names the label
    assert spans[2][3] and not spans[0][3]  # "Good" capitalised, "subpar" not


def test_keyword_positions_point_at_the_keyword_tokens_and_are_scored_like_levels(tiny):
    from vqalib.schema.levels import KEYWORDS
    from vqalib.train.aso_trainer import keyword_logprobs_raw, keyword_token_mask
    from vqalib.train.collator import VideoCollator, keyword_token_ids

    model, proc = tiny
    exs = [_rationale_example("a"), _rationale_example("b")]
    exs[1].rationales = dict(exs[1].rationales, clarity_quality="Blur everywhere.")  # no keyword there
    batch = VideoCollator(proc, _Frames(), rationale="full", keywords=True)(exs)
    pos, cap = batch["keyword_positions"], batch["keyword_capitalised"]
    assert pos[1, 4] == -1 and (pos[0] > 0).all()
    lower, upper = keyword_token_ids(proc.tokenizer), keyword_token_ids(proc.tokenizer, True)
    levels = list(KEYWORDS)
    for b, ex in enumerate(exs):
        for d, key in enumerate(ex.scores):
            if pos[b, d] < 0:
                continue
            ids = (upper if cap[b, d] else lower)[levels.index(ex.scores[key])]
            assert batch["input_ids"][b, pos[b, d]: pos[b, d] + len(ids)].tolist() == list(ids)
    with torch.no_grad():
        raw = keyword_logprobs_raw(model, batch, proc.tokenizer)
        logits = model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "pixel_values_videos",
                                                                    "video_grid_thw", "second_per_grid_ts",
                                                                    "mm_token_type_ids")}).logits
    assert torch.isnan(raw[1, 4]).all() and not torch.isnan(raw[0]).any()
    # single-token keywords in the tiny vocabulary: the tree pass equals the plain next-token log-probs
    for b in range(2):
        for d in range(5):
            if pos[b, d] < 0:
                continue
            ids = upper if cap[b, d] else lower
            assert all(len(i) == 1 for i in ids)
            want = torch.log_softmax(logits[b, pos[b, d] - 1].float(), -1)[[i[0] for i in ids]]
            assert torch.allclose(raw[b, d], want, atol=1e-4)
    mask = keyword_token_mask(batch["labels"], pos, proc.tokenizer)
    assert int(mask.sum()) == int((pos >= 0).sum())  # one token per keyword here
    assert mask[0, pos[0, 0]] and not mask[0, pos[0, 0] - 1]


def test_keyword_target_config_needs_the_full_rationale():
    from vqalib.train.common import load_config

    cfg = load_config("aso", None, ["target_position=keyword", "rationale=full"])
    assert cfg.target_position == "keyword"
    assert load_config("aso", None, []).target_position == "score"  # the paper's reading stays the default
    with pytest.raises(ValueError, match="target_position=keyword trains the evaluation keyword"):
        load_config("aso", None, ["target_position=keyword", "rationale=scrubbed"])
    with pytest.raises(ValueError, match="target_position='middle'"):
        load_config("aso", None, ["target_position=middle"])
    with pytest.raises(ValueError, match="rationale=full teacher-forces"):
        load_config("aso", None, ["rationale=full"])  # the score target after a named level is still refused


# ------------------------------------------------------------------ items 5: both views, labelled

def _pred_rows(method_shift: float, n: int = 12, keyword_ok: bool = True):
    import pandas as pd

    from vqalib.schema.levels import DIMENSION_KEYS as DIMS
    from vqalib.schema.levels import KEYWORDS, NAME_OF

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        target = float(1.0 + 0.5 * (i % 9))
        parsed = min(5.0, target + method_shift)
        kw = KEYWORDS[parsed if keyword_ok else (5.0 if parsed < 3 else 1.0)]
        text = "\n".join(f"{NAME_OF[k]} is {kw.lower()}: detail." for k in DIMS) + "\n\n" + \
            "\n".join(f"{NAME_OF[k]}: {parsed:.1f}" for k in DIMS)
        for k in DIMS:
            dist = np.full(9, 0.01)
            dist[int(round((target - 1) * 2))] += 0.91
            dist = dist / dist.sum()
            ok = i != 0  # one clip fails to parse
            rows.append({"video_id": f"v{i}", "dimension": k, "target": target, "parsed_score": parsed if ok else None,
                         "expected_score": float((dist * np.arange(1, 5.01, 0.5)).sum()) + rng.normal(0, 0.01),
                         "argmax_score": target, "dist": None, "outside_mass": 0.0, "raw_text": text,
                         "parse_status": "ok" if ok else "missing"})
    return pd.DataFrame(rows)


import numpy as np  # noqa: E402


def test_answer_views_report_generated_and_teacher_forced_side_by_side():
    from vqalib.report.compare import VIEW_LABEL, answer_views

    views = answer_views({"sft": [_pred_rows(0.0)], "aso": [_pred_rows(0.0, keyword_ok=False)]}, n_boot=50)
    assert list(views.index) == ["SFT", "ASO"]
    assert {f"SRCC mean, {VIEW_LABEL['parsed_score']}", f"SRCC mean, {VIEW_LABEL['expected_score']}"} <= set(views.columns)
    assert views.loc["SFT", "parse rate"] == pytest.approx(11 / 12)
    assert views.loc["SFT", "score = its own keyword"] == 1.0
    assert views.loc["ASO", "score = its own keyword"] == 0.0
    assert views.loc["SFT", "items with a keyword"] == 11 * 5


def test_own_keyword_levels_reads_each_dimension_s_keyword_not_the_score_lines():
    from vqalib.report.compare import own_keyword_levels

    text = "Motion Quality is subpar: shake.\nBecause of blur; the clarity quality is good.\n\nMotion Quality: 2.5\nClarity Quality: 3.5"
    assert own_keyword_levels(text) == [2.5, None, None, None, 3.5]
