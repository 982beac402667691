"""Instruction, strict format, tolerant parser (per-dimension status, never a default), rationale prompts."""

from __future__ import annotations

import numpy as np
import pytest

from vqalib.schema import levels, prompts
from vqalib.schema.levels import DIMENSION_KEYS, DIMENSIONS

SCORES = dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0]))


def test_format_answer_is_strict_and_parses_back():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = {k: float(rng.choice(levels.LEVELS)) for k in DIMENSION_KEYS}
        text = prompts.format_answer(scores, "The picture is soft.")
        assert prompts.check_format(text)
        res = prompts.parse_answer(text)
        assert res.ok and res.scores == scores
        assert res.rationale == "The picture is soft."
    assert prompts.format_answer(SCORES).splitlines() == [
        "Motion Quality: 3.5", "Motion Amplitude: 2.0", "Aesthetic Quality: 4.0", "Content Quality: 1.0",
        "Clarity Quality: 5.0"]


def test_format_answer_with_per_dimension_rationales_and_errors():
    text = prompts.format_answer(SCORES, {"clarity_quality": "Blurry.", "Motion Quality": "Smooth."})
    assert text.startswith("Smooth.\nBlurry.\n\nMotion Quality: 3.5")
    with pytest.raises(ValueError, match="missing"):
        prompts.format_answer({"motion_quality": 3.0})
    with pytest.raises(ValueError, match="not on the grid"):
        prompts.format_answer({**SCORES, "motion_quality": 3.2})


@pytest.mark.parametrize("line, value", [
    ("Motion Quality: 3.5/5", 3.5), ("Motion Quality: 3", 3.0), ("Motion Quality: 3.50", 3.5),
    ("**Motion Quality**: **3.5**", 3.5), ("- motion quality = 4.0 / 5", 4.0), ("motion_quality: 2.5", 2.5),
    ("Motion Quality: 4.5 out of 5", 4.5), ("MOTION QUALITY:1.0 (Abysmal)", 1.0),
])
def test_tolerant_forms(line, value):
    res = prompts.parse_answer("Some rationale.\n" + line)
    assert res.status["motion_quality"] == "ok" and res.scores["motion_quality"] == value
    assert res.raw_value["motion_quality"] == value


def test_reordered_lines_and_spans_point_at_the_numbers():
    lines = [prompts.score_line(k, v) for k, v in SCORES.items()][::-1]
    text = "why\n" + "\n".join(lines)
    res = prompts.parse_answer(text)
    assert res.ok and res.scores == SCORES
    for k in DIMENSION_KEYS:
        a, b = res.spans[k]
        assert float(text[a:b]) == SCORES[k]


def test_failures_are_reported_per_dimension_and_never_filled():
    text = "Motion Quality: 3.5\nAesthetic Quality: good\nContent Quality: 7\nClarity Quality: 0"
    res = prompts.parse_answer(text)
    assert res.status == {"motion_quality": "ok", "motion_amplitude": "missing", "aesthetic_quality": "unparsable",
                          "content_quality": "unparsable", "clarity_quality": "unparsable"}
    assert res.failed == ["motion_amplitude", "aesthetic_quality", "content_quality", "clarity_quality"]
    assert all(res.scores[k] is None for k in res.failed)
    assert res.raw_value["content_quality"] == 7.0 and not res.ok
    empty = prompts.parse_answer("")
    assert set(empty.status.values()) == {"missing"} and empty.rationale == ""


def test_off_grid_values_are_snapped_and_flagged():
    res = prompts.parse_answer("Motion Quality: 3.3\nClarity Quality: 3.25")
    assert res.scores["motion_quality"] == 3.5 and res.off_grid["motion_quality"]
    assert res.scores["clarity_quality"] == 3.5 and res.raw_value["clarity_quality"] == 3.25
    assert not prompts.parse_answer("Motion Quality: 3.5").off_grid["motion_quality"]


def test_last_match_wins_and_is_counted():
    res = prompts.parse_answer("Motion Quality: 2.0 at first.\n\nMotion Quality: 4.0")
    assert res.scores["motion_quality"] == 4.0 and res.n_matches["motion_quality"] == 2


@pytest.mark.parametrize("text", [
    prompts.format_answer(SCORES) + "\n", prompts.format_answer(SCORES).replace("3.5", "3.50"),
    prompts.format_answer(SCORES).replace("Motion Quality", "motion quality"),
    "\n".join(prompts.format_answer(SCORES).splitlines()[::-1]), "x\nMotion Quality: 3.5",
])
def test_check_format_rejects_anything_but_the_strict_form(text):
    assert not prompts.check_format(text)


def test_instruction_and_messages():
    for name in DIMENSIONS:
        assert name in prompts.INSTRUCTION
    msgs = prompts.build_messages(answer="A")
    assert [m["role"] for m in msgs] == ["user", "assistant"] and msgs[0]["content"][0] == {"type": "video"}


def test_rationale_prompt_fills_score_keyword_and_tags():
    text = prompts.rationale_prompt("Clarity Quality", 2.5, ["blur", "noise"], comment="soft edges")
    assert "Human score: 2.5 out of 5.0 (Subpar)" in text
    assert "marked: blur, noise." in text and "Rater comment: soft edges" in text
    assert 'Overall, the clarity quality is subpar.' in text
    assert "2.5 Subpar, 3.0 Acceptable" in text  # the scale is written from levels.KEYWORDS
    assert "marked: none." in prompts.rationale_prompt("motion_quality", 5.0)
    with pytest.raises(ValueError, match="not valid"):
        prompts.rationale_prompt("clarity_quality", 2.5, ["camera_shake"])
    with pytest.raises(ValueError, match="grid"):
        prompts.rationale_prompt("clarity_quality", 2.7)


# --------------------------------------------------------------------------- issue 8: other scales, commas, ranges


@pytest.mark.parametrize("written, reason", [
    ("4/10", "another scale"), ("2 out of 10", "another scale"), ("8/10", "another scale"),
    ("80/100", "another scale"), ("4 / 10", "another scale"), ("**4**/10", "another scale"),
    ("3,5", "decimal comma"), ("3-4", "range"), ("3 - 4", "range"), ("3–4", "range"), ("3 to 4", "range"),
    ("80%", "percentage"), ("7", "outside"), ("good", "no number"),
])
def test_other_scales_commas_and_ranges_are_unparsable_with_a_reason(written, reason):
    """Before: 4/10 -> 4.0, 2 out of 10 -> 2.0, 3,5 -> 3.0, 3-4 -> 3.0, all 'ok'."""
    res = prompts.parse_answer(f"Rationale.\nMotion Quality: {written}\nMotion Amplitude: 3.0")
    assert res.status["motion_quality"] == "unparsable" and res.scores["motion_quality"] is None
    assert reason in res.reason["motion_quality"]
    assert res.status["motion_amplitude"] == "ok" and res.reason["motion_amplitude"] is None
    assert res.reason["clarity_quality"] and res.status["clarity_quality"] == "missing"


@pytest.mark.parametrize("written, value", [
    ("3.5/5", 3.5), ("4 / 5.0", 4.0), ("2 out of 5", 2.0), ("3, then", 3.0), ("4.", 4.0), ("4.5 (Excellent)", 4.5),
])
def test_explicit_five_point_scale_and_punctuation_still_parse(written, value):
    res = prompts.parse_answer(f"Motion Quality: {written}")
    assert res.status["motion_quality"] == "ok" and res.scores["motion_quality"] == value


def test_rescale_is_explicit_and_flagged():
    assert prompts.parse_answer("Motion Quality: 8/10").status["motion_quality"] == "unparsable"
    res = prompts.parse_answer("Motion Quality: 8/10\nClarity Quality: 4.0", rescale=True)
    assert res.scores["motion_quality"] == 4.0 and res.rescaled["motion_quality"]  # 1 + 4 * 0.8 = 4.2 -> 4.0
    assert res.off_grid["motion_quality"] and not res.rescaled["clarity_quality"]
    assert prompts.parse_answer("Motion Quality: 0/10", rescale=True).scores["motion_quality"] == 1.0
    assert prompts.parse_answer("Motion Quality: 12/10", rescale=True).status["motion_quality"] == "unparsable"


def test_rationale_is_not_cut_at_an_earlier_mention_of_a_dimension():
    """Before: the rationale ended at 'The' (the first 'motion quality:' inside a sentence)."""
    text = "The motion quality: okay-ish. Some shake at the start.\n\nMotion Quality: 3.5\nClarity Quality: 4.0"
    res = prompts.parse_answer(text)
    assert res.rationale == "The motion quality: okay-ish. Some shake at the start."
    assert res.scores["motion_quality"] == 3.5 and res.n_matches["motion_quality"] == 2
    md = prompts.parse_answer("Sharp and steady.\n- **Motion Quality**: 4.0\n- **Clarity Quality**: 4.5")
    assert md.rationale == "Sharp and steady."
