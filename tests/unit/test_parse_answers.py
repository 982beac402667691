"""Model answers from the wild (issue 21): full-width digits, numbers read as written, scales stated
next to the score, <think> blocks, and the JSON / markdown-table / labelled layouts VLMs emit."""

from __future__ import annotations

import pytest

from vqalib.schema import prompts
from vqalib.schema.levels import DIMENSION_KEYS

MQ = "motion_quality"


@pytest.mark.parametrize("text, value", [
    ("Motion Quality：3．5", 3.5),  # before: 3.0 ok (the full-width full stop cut the number)
    ("Motion Quality: ３．５", 3.5), ("Motion Quality：４", 4.0), ("Motion Quality: 3.5／5", 3.5),
    ("ＭＯＴＩＯＮ ＱＵＡＬＩＴＹ: 2.5", 2.5),
    ("Motion Quality: 3e0", 3.0),  # read as written
    ("Motion Quality: 4 of 5", 4.0), ("Motion Quality: 3 (on a 1-5 scale)", 3.0),
    ("Motion Quality: 3 (out of 5)", 3.0), ("Motion Quality: 4.5 (Excellent)", 4.5),
])
def test_values_are_read_as_written(text, value):
    res = prompts.parse_answer(text)
    assert res.status[MQ] == "ok" and res.scores[MQ] == value and res.reason[MQ] is None


def test_full_width_spans_index_the_text_as_given():
    text = "Smooth.\nMotion Quality：3．5\nClarity Quality: 4"
    res = prompts.parse_answer(text)
    a, b = res.spans[MQ]
    assert text[a:b] == "3．5" and res.rationale == "Smooth."
    a, b = res.spans["clarity_quality"]
    assert text[a:b] == "4"


@pytest.mark.parametrize("written, reason, raw_value", [
    ("1e1", "outside [1, 5]", 10.0),  # before: 1.0 ok
    ("2E0.5", "runs on", 2.0), ("3.5.1", "runs on", 3.5), ("3rd", "runs on", 3.0), ("3½", "runs on", 3.0),
    ("3²", "runs on", 3.0), ("4x", "runs on", 4.0),
    ("4 of 10", "another scale", 4.0),  # before: 4.0 ok
    ("3 (on a 1-10 scale)", "another scale", 3.0),  # before: 3.0 ok
    ("3 (on a scale of 1 to 10)", "another scale", 3.0), ("3, on a scale of 10", "another scale", 3.0),
    ("3 on a 0-10 scale", "another scale", 3.0), ("3 (out of 10)", "another scale", 3.0),
    ("3 [1-10]", "another scale", 3.0), ("3 (on a 0-5 scale)", "another scale", 3.0),
])
def test_unparsable_with_the_reason_never_a_truncated_number(written, reason, raw_value):
    res = prompts.parse_answer(f"Rationale.\nMotion Quality: {written}\nMotion Amplitude: 3.0")
    assert res.status[MQ] == "unparsable" and res.scores[MQ] is None
    assert reason in res.reason[MQ] and res.raw_value[MQ] == raw_value
    assert res.status["motion_amplitude"] == "ok" and res.scores["motion_amplitude"] == 3.0


def test_rescale_maps_stated_scales():
    res = prompts.parse_answer("Motion Quality: 7 (on a 1-10 scale)\nClarity Quality (1-10): 10", rescale=True)
    assert res.scores[MQ] == 3.5 and res.rescaled[MQ]  # 1 + 4 * 6/9 = 3.67 -> 3.5
    assert res.scores["clarity_quality"] == 5.0 and res.rescaled["clarity_quality"]
    assert prompts.parse_answer("Motion Quality: 4 of 10", rescale=True).scores[MQ] == 2.5  # 1 + 4 * 0.4 = 2.6
    assert prompts.parse_answer("Motion Quality: 11 (1-10)", rescale=True).status[MQ] == "unparsable"


# --------------------------------------------------------------------------- <think> blocks


@pytest.mark.parametrize("text", [
    "<think>Motion Quality: 3.5 seems right.</think>\nThe clip is smooth.",  # before: 3.5 ok
    "<THINK>Motion Quality: 3.5</THINK> The clip is smooth.",
    "<think>Motion Quality: 3.5, maybe 4",  # unclosed: the answer never came
    "Motion Quality: 3.5 perhaps.\n</think>\nThe clip is smooth.",  # template opened the block in the prompt
])
def test_a_score_only_inside_think_is_not_taken(text):
    res = prompts.parse_answer(text)
    assert res.status[MQ] == "missing" and res.scores[MQ] is None and res.n_matches[MQ] == 0
    assert "<think>" in res.reason[MQ]
    assert "3.5" not in res.rationale and "think>" not in res.rationale


def test_the_answer_after_think_counts_and_spans_point_into_the_text():
    text = "<think>Motion Quality: 2.0? No.</think>\nSteady.\n\nMotion Quality: 4.5\nClarity Quality: 3"
    res = prompts.parse_answer(text)
    assert res.scores[MQ] == 4.5 and res.n_matches[MQ] == 1 and res.rationale == "Steady."
    a, b = res.spans[MQ]
    assert text[a:b] == "4.5"
    assert res.reason["aesthetic_quality"] == "the dimension is never named with a score"


# --------------------------------------------------------------------------- layouts: JSON, tables, labels

SCORES = dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0]))
NAMES = ["Motion Quality", "Motion Amplitude", "Aesthetic Quality", "Content Quality", "Clarity Quality"]


def _json(keys, quote_values=False, nested=False, indent=True):
    items = []
    for k, v in zip(keys, SCORES.values()):
        val = f'"{v}"' if quote_values else f"{v}"
        if nested:
            val = f'{{"score": {val}, "reason": "motion quality: fine"}}'
        items.append(f'"{k}": {val}')
    sep = ",\n  " if indent else ","
    return "{\n  " + sep.join(items) + "\n}" if indent else "{" + sep.join(items) + "}"


@pytest.mark.parametrize("text", [
    _json(NAMES), _json(DIMENSION_KEYS), _json(NAMES, quote_values=True), _json(DIMENSION_KEYS, indent=False),
    "The video is steady.\n```json\n" + _json(NAMES) + "\n```",
    _json(DIMENSION_KEYS, nested=True),
    "| Dimension | Score |\n|---|---|\n" + "\n".join(f"| {n} | {v} |" for n, v in zip(NAMES, SCORES.values())),
    "| Dimension | Score | Note |\n|:--|:-:|---|\n" + "\n".join(
        f"| **{n}** | {v} | ok |" for n, v in zip(NAMES, SCORES.values())),
    "\n".join(f"{n} (1-5): {v}" for n, v in zip(NAMES, SCORES.values())),
    "\n".join(f"- **{n} [1–5]**: {v}/5" for n, v in zip(NAMES, SCORES.values())),
    "\n".join(f"{n} Score: {v}" for n, v in zip(NAMES, SCORES.values())),
])
def test_json_tables_and_labels_are_read(text):
    """Before: every dimension 'missing'."""
    res = prompts.parse_answer(text)
    assert res.ok and res.scores == SCORES, res.reason
    for k in DIMENSION_KEYS:
        a, b = res.spans[k]
        assert float(text[a:b]) == SCORES[k]


def test_rationale_leaves_out_json_braces_and_table_headers():
    assert prompts.parse_answer("Steady.\n" + _json(NAMES)).rationale == "Steady."
    table = "Sharp.\n\n| Dimension | Score |\n|---|---|\n| Motion Quality | 3.5 |"
    assert prompts.parse_answer(table).rationale == "Sharp."


@pytest.mark.parametrize("text, status, reason", [
    ("| Dimension | Note | Score |\n|---|---|---|\n| Motion Quality | smooth | 3.5 |", "unparsable", "no number"),
    ('{"Motion Quality": null}', "unparsable", "no number"),
    ('{"Motion Quality": "4/10"}', "unparsable", "another scale"),
    ("| Motion Quality | 3,5 |", "unparsable", "decimal comma"),
    ("Motion Quality (0-10): 7", "unparsable", "another scale"),
])
def test_layout_siblings_that_are_not_read_say_why(text, status, reason):
    res = prompts.parse_answer(text)
    assert res.status[MQ] == status and res.scores[MQ] is None and reason in res.reason[MQ]


def test_a_later_mention_without_a_number_does_not_undo_a_score():
    res = prompts.parse_answer("Motion Quality: 3.5\n\nIn short, the motion quality: smooth.")
    assert res.scores[MQ] == 3.5 and res.n_matches[MQ] == 2
    res = prompts.parse_answer("Motion Quality: 2.0 at first.\nMotion Quality: 4.0\nMotion quality: fine")
    assert res.scores[MQ] == 4.0 and res.n_matches[MQ] == 3
