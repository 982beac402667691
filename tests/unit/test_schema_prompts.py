"""Issue 23: the instruction, the strict answer format and the tolerant parser for any rating schema.

The paper's schema (``schema=None``) stays bit-identical (literal strings below); the presets
``mos9``, ``qalign5`` (five words), ``int10`` (three dimensions, "1" a prefix of "10") and custom
schemas (uneven numeric levels; word levels that are prefixes of each other) get their own
instruction, strict form and parser rules. Every test calls an API that the old code did not have
(``instruction``, ``score_prefix``, ``schema=``, ``allow_missing=``), so each fails on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from vqalib.schema import prompts
from vqalib.schema.levels import DIMENSION_KEYS
from vqalib.schema.rating import INT10, MOS9, PAPER, QALIGN5, Dimension, make_schema

#: two dimensions (one with a description), uneven numeric levels 1, 2, 3, 5, 8 with keywords.
UNEVEN = make_schema("uneven", [Dimension("sharpness", "Sharpness", description="how crisp fine detail is"),
                                Dimension("stability", "Stability")],
                     values=[1, 2, 3, 5, 8], keywords=["awful", "weak", "okay", "nice", "superb"])
#: word levels that are prefixes of each other ("good" / "good+") and a multi-word level.
PLUS = make_schema("plus", ["Overall Quality"], values=[1, 2, 3, 4], strings=["bad", "good", "good+", "very good"])
#: the paper's dimensions and levels under another name (not ``is_paper``): the generic builders.
PAPER_COPY = make_schema("paper_copy", PAPER.dimensions, PAPER.values, PAPER.strings, PAPER.keywords)

PAPER_SCORES = dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0]))
PAPER_INSTRUCTION = (
    "Rate the quality of this video on five dimensions: Motion Quality, Motion Amplitude, Aesthetic Quality, "
    "Content Quality and Clarity Quality. Each score is from 1.0 (Abysmal) to 5.0 (Perfect) in steps of 0.5. "
    "First give a short rationale, then write one line per dimension in this order, in the form "
    "\"Motion Quality: 3.5\"."
)
PAPER_ANSWER = ("Soft but steady.\n\nMotion Quality: 3.5\nMotion Amplitude: 2.0\nAesthetic Quality: 4.0\n"
                "Content Quality: 1.0\nClarity Quality: 5.0")

ALL = [PAPER, MOS9, QALIGN5, INT10, UNEVEN, PLUS]


# --------------------------------------------------------------------------- the paper's defaults, unchanged


def test_paper_defaults_are_unchanged():
    assert prompts.INSTRUCTION == PAPER_INSTRUCTION
    assert prompts.instruction() == prompts.instruction(PAPER) == prompts.instruction("paper") == PAPER_INSTRUCTION
    assert prompts._instruction_text(PAPER_COPY) == PAPER_INSTRUCTION  # the generic builder agrees
    assert prompts.format_answer(PAPER_SCORES, "Soft but steady.") == PAPER_ANSWER
    assert prompts.format_answer(PAPER_SCORES, "Soft but steady.", schema=PAPER) == PAPER_ANSWER
    assert prompts.format_answer(PAPER_SCORES, "Soft but steady.", schema=PAPER_COPY) == PAPER_ANSWER
    assert prompts.build_messages(schema=None)[0]["content"][1]["text"] == PAPER_INSTRUCTION
    assert prompts.score_prefix("clarity_quality") == "Clarity Quality: "
    assert prompts.check_format(PAPER_ANSWER) and prompts.check_format(PAPER_ANSWER, schema=PAPER)
    res = prompts.parse_answer(PAPER_ANSWER, schema=None)
    assert res.ok and res.scores == PAPER_SCORES and res.keys == DIMENSION_KEYS and res.rationale == "Soft but steady."
    assert not any(res.as_number.values())


# --------------------------------------------------------------------------- instruction per schema


@pytest.mark.parametrize("schema, text", [
    (MOS9, "Rate the Overall Quality of this video (the overall perceptual quality of the video). The score is "
           "from 1.0 (Abysmal) to 5.0 (Perfect) in steps of 0.5. First give a short rationale, then write the "
           "score on its own line, in the form \"Overall Quality: 3.5\"."),
    (QALIGN5, "Rate the Overall Quality of this video (the overall perceptual quality of the video). The score is "
              "one of these five words, from worst to best: bad, poor, fair, good, excellent. First give a short "
              "rationale, then write the score on its own line, in the form \"Overall Quality: good\"."),
    (INT10, "Rate the quality of this video on three dimensions: Visual Quality, Temporal Consistency and Text "
            "Alignment. Each score is a whole number from 1 to 10. First give a short rationale, then write one "
            "line per dimension in this order, in the form \"Visual Quality: 7\"."),
    (UNEVEN, "Rate the quality of this video on two dimensions: Sharpness (how crisp fine detail is) and Stability. "
             "Each score is one of 1 (awful), 2 (weak), 3 (okay), 5 (nice) or 8 (superb). First give a short "
             "rationale, then write one line per dimension in this order, in the form \"Sharpness: 5\"."),
    (PLUS, "Rate the Overall Quality of this video. The score is one of these four words, from worst to best: bad, "
           "good, good+, very good. First give a short rationale, then write the score on its own line, in the "
           "form \"Overall Quality: good+\"."),
])
def test_instruction_names_dimensions_levels_and_line_form(schema, text):
    assert prompts.instruction(schema) == text
    assert prompts.instruction(schema.name if schema in (MOS9, QALIGN5, INT10) else schema) == text
    msgs = prompts.build_messages(answer="A", schema=schema)
    assert msgs[0]["content"][1]["text"] == text and msgs[1]["content"][0]["text"] == "A"
    assert prompts.build_messages("Rate it.", schema=schema)[0]["content"][1]["text"] == "Rate it."


def test_instruction_of_a_grid_with_a_step_and_negative_levels():
    s = make_schema("signed", ["Sub Score"], values=[-1, -0.5, 0, 0.5, 1], keywords=["low", "b", "mid", "d", "high"])
    assert "The score is from -1.0 (low) to 1.0 (high) in steps of 0.5." in prompts.instruction(s)
    res = prompts.parse_answer("Sub Score: -0.5", schema=s)
    assert res.scores == {"sub_score": -0.5} and res.ok


# --------------------------------------------------------------------------- strict answer: score lines, format_answer


@pytest.mark.parametrize("schema, key, value, line", [
    (PAPER, "Clarity Quality", 3.5, "Clarity Quality: 3.5"), (MOS9, "overall_quality", 4.0, "Overall Quality: 4.0"),
    (QALIGN5, "overall_quality", 4, "Overall Quality: good"),
    (QALIGN5, "Overall Quality", 5.0, "Overall Quality: excellent"),
    (INT10, "visual_quality", 10, "Visual Quality: 10"), (INT10, "text_alignment", 1.0, "Text Alignment: 1"),
    (UNEVEN, "stability", 8, "Stability: 8"), (PLUS, "overall_quality", 3, "Overall Quality: good+"),
])
def test_score_line_and_prefix(schema, key, value, line):
    assert prompts.score_line(key, value, schema=schema) == line
    assert line.startswith(prompts.score_prefix(key, schema=schema))
    assert prompts.score_prefix(key, schema) + schema.string(value) == line


def test_score_line_rejects_values_off_the_grid_and_unknown_dimensions():
    with pytest.raises(ValueError, match="not on the grid"):
        prompts.score_line("visual_quality", 7.5, schema=INT10)
    with pytest.raises(ValueError, match="not on the grid"):
        prompts.score_line("overall_quality", 4.5, schema=QALIGN5)
    with pytest.raises(ValueError, match="not on the grid"):
        prompts.score_line("stability", 4, schema=UNEVEN)
    with pytest.raises(ValueError, match="unknown dimension"):
        prompts.score_line("motion_quality", 3.5, schema=MOS9)


def test_format_answer_per_schema():
    assert prompts.format_answer({"overall_quality": 4}, "Fine.", schema=QALIGN5) == "Fine.\n\nOverall Quality: good"
    assert prompts.format_answer({"Overall Quality": 2.5}, schema=MOS9) == "Overall Quality: 2.5"
    int10 = {"visual_quality": 10, "temporal_consistency": 1, "text_alignment": 7}
    assert prompts.format_answer(int10, {"text_alignment": "Off topic.", "visual_quality": "Sharp."}, schema=INT10) == (
        "Sharp.\nOff topic.\n\nVisual Quality: 10\nTemporal Consistency: 1\nText Alignment: 7")
    assert prompts.format_answer({"stability": 5, "sharpness": 8}, schema=UNEVEN) == "Sharpness: 8\nStability: 5"


def test_format_answer_leaves_out_missing_dimensions_only_when_allowed():
    part = {"visual_quality": 10, "temporal_consistency": float("nan"), "text_alignment": 1}
    with pytest.raises(ValueError, match=r"\['temporal_consistency'\] are missing"):
        prompts.format_answer(part, schema=INT10)
    with pytest.raises(ValueError, match=r"\['text_alignment'\] are missing"):
        prompts.format_answer({"visual_quality": 10, "temporal_consistency": 3}, schema=INT10)
    assert prompts.format_answer(part, "Sharp.", schema=INT10, allow_missing=True) == (
        "Sharp.\n\nVisual Quality: 10\nText Alignment: 1")
    assert prompts.format_answer({"visual_quality": 3, "text_alignment": None}, schema=INT10,
                                 allow_missing=True) == "Visual Quality: 3"
    paper = {k: v for k, v in PAPER_SCORES.items() if k != "motion_amplitude"}
    assert prompts.format_answer(paper, allow_missing=True) == PAPER_ANSWER.split("\n\n")[1].replace(
        "Motion Amplitude: 2.0\n", "")
    with pytest.raises(ValueError, match="no dimension"):
        prompts.format_answer({"overall_quality": float("nan")}, schema=MOS9, allow_missing=True)


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.name)
def test_strict_answers_round_trip(schema):
    rng = np.random.default_rng(1)
    for _ in range(25):
        scores = {k: float(rng.choice(schema.levels)) for k in schema.keys}
        text = prompts.format_answer(scores, "Why.", schema=schema)
        assert prompts.check_format(text, schema=schema)
        assert prompts.check_format(text, schema=schema, allow_missing=True)
        res = prompts.parse_answer(text, schema=schema)
        assert res.ok and res.scores == scores and list(res.scores) == list(schema.keys) and res.rationale == "Why."
        assert not any(res.off_grid.values()) and not any(res.as_number.values())
        for k in schema.keys:
            a, b = res.spans[k]
            assert text[a:b] == schema.string(scores[k])


# --------------------------------------------------------------------------- check_format (the GRPO format reward)


@pytest.mark.parametrize("schema, text, strict", [
    (QALIGN5, "Fine.\n\nOverall Quality: good", True),
    (QALIGN5, "Fine.\n\nOverall Quality: Good", False),  # the schema's string exactly
    (QALIGN5, "Fine.\n\nOverall Quality: 4", False),  # a number on a word schema parses, never rewarded
    (MOS9, "Overall Quality: 3.0", True), (MOS9, "Overall Quality: 3", False),
    (MOS9, "Motion Quality: 3.0", False),  # the paper's name, not this schema's
    (INT10, "Visual Quality: 10\nTemporal Consistency: 1\nText Alignment: 7", True),
    (INT10, "Visual Quality: 10.0\nTemporal Consistency: 1\nText Alignment: 7", False),
    (INT10, "Visual Quality: 10\nText Alignment: 7\nTemporal Consistency: 1", False),
    (PLUS, "Overall Quality: good+", True), (PLUS, "Overall Quality: very good", True),
    (PLUS, "Overall Quality: good++", False), (PLUS, "Overall Quality: very  good", False),
    (PAPER, PAPER_ANSWER.replace("Motion Amplitude: 2.0\n", ""), False),
])
def test_check_format_only_the_schema_s_strings(schema, text, strict):
    assert prompts.check_format(text, schema=schema) is strict


def test_check_format_allow_missing_accepts_lines_left_out_in_order():
    two = "Sharp.\n\nVisual Quality: 10\nText Alignment: 1"
    assert not prompts.check_format(two, schema=INT10)
    assert prompts.check_format(two, schema=INT10, allow_missing=True)
    assert not prompts.check_format("Text Alignment: 1\nVisual Quality: 10", schema=INT10, allow_missing=True)
    assert not prompts.check_format("Visual Quality: 10\nVisual Quality: 10", schema=INT10, allow_missing=True)
    assert not prompts.check_format("Sharp.", schema=INT10, allow_missing=True)
    assert not prompts.check_format("Sharp.\n\nVisual Quality: 7.5", schema=INT10, allow_missing=True)
    assert prompts.check_format(PAPER_ANSWER.replace("Motion Amplitude: 2.0\n", ""), allow_missing=True)


# --------------------------------------------------------------------------- numeric schemas


@pytest.mark.parametrize("line, value", [
    ("Visual Quality: 10", 10.0),  # "1" is a prefix of "10": read whole, never 1
    ("Visual Quality: 1", 1.0), ("Visual Quality: 7", 7.0), ("Visual Quality: 10/10", 10.0),
    ("Visual Quality: 7 out of 10", 7.0), ("Visual Quality: 9 of 10", 9.0), ("Visual Quality (1-10): 9", 9.0),
    ("Visual Quality: 8 (on a 1-10 scale)", 8.0), ("**Visual Quality**: **10**", 10.0), ("visual_quality = 3", 3.0),
    ("Visual Quality: 7.0", 7.0), ("Visual Quality Score: 6", 6.0),
])
def test_int10_reads_its_own_scale(line, value):
    text = "Sharp and steady.\n" + line + "\nText Alignment: 1"
    res = prompts.parse_answer(text, schema=INT10)
    assert res.status["visual_quality"] == "ok" and res.scores["visual_quality"] == value
    assert not res.off_grid["visual_quality"] and res.scores["text_alignment"] == 1.0
    a, b = res.spans["visual_quality"]
    assert float(text[a:b]) == value


def test_int10_off_grid_is_snapped_and_flagged():
    res = prompts.parse_answer("Visual Quality: 7.5\nTemporal Consistency: 7.4\nText Alignment: 9.99", schema=INT10)
    assert res.scores == {"visual_quality": 8.0, "temporal_consistency": 7.0, "text_alignment": 10.0}
    assert all(res.off_grid.values()) and res.raw_value["visual_quality"] == 7.5 and res.ok


@pytest.mark.parametrize("written, reason", [
    ("4/5", "another scale (4/5), not 1-10"), ("3 out of 5", "another scale"), ("8 (1-5)", "another scale"),
    ("80/100", "another scale"), ("11", "11 is outside [1, 10]"), ("0", "outside [1, 10]"),
    ("70%", "a percentage, not a 1-10 score"), ("7-8", "range"), ("7,5", "decimal comma"),
    ("10th", "runs on"), ("great", "no number"),
])
def test_int10_other_scales_are_unparsable_with_a_reason(written, reason):
    res = prompts.parse_answer(f"Visual Quality: {written}\nTemporal Consistency: 10", schema=INT10)
    assert res.status["visual_quality"] == "unparsable" and res.scores["visual_quality"] is None
    assert reason in res.reason["visual_quality"]
    assert res.scores["temporal_consistency"] == 10.0 and res.status["text_alignment"] == "missing"
    assert res.failed == ["visual_quality", "text_alignment"] and not res.ok


def test_int10_rescale_maps_other_scales_onto_1_to_10():
    res = prompts.parse_answer("Visual Quality: 4/5\nTemporal Consistency: 3 (1-5)", schema=INT10, rescale=True)
    assert res.scores["visual_quality"] == 8.0 and res.rescaled["visual_quality"]  # 1 + 9 * 0.8 = 8.2
    assert res.scores["temporal_consistency"] == 6.0  # 1 + 9 * 0.5 = 5.5, ties up
    assert res.rescaled["temporal_consistency"]
    assert not prompts.parse_answer("Visual Quality: 7/10", schema=INT10, rescale=True).rescaled["visual_quality"]


def test_mos9_reads_its_dimension_and_not_the_paper_s():
    res = prompts.parse_answer("Motion Quality: 2.0\nOverall Quality: 3.25", schema=MOS9)
    assert list(res.scores) == ["overall_quality"] and res.scores["overall_quality"] == 3.5
    assert res.off_grid["overall_quality"] and res.rationale == "Motion Quality: 2.0" and res.ok
    res = prompts.parse_answer("Motion Quality: 2.0", schema=MOS9)
    assert res.status == {"overall_quality": "missing"} and res.failed == ["overall_quality"]
    assert prompts.parse_answer("Overall Quality: 4/5", schema=MOS9).scores["overall_quality"] == 4.0
    assert prompts.parse_answer("Overall Quality: 7/10", schema=MOS9).status["overall_quality"] == "unparsable"


@pytest.mark.parametrize("written, value, off", [
    ("5", 5.0, False), ("8", 8.0, False), ("4", 5.0, True),  # halfway between 3 and 5: ties up
    ("3.9", 3.0, True), ("6.4", 5.0, True), ("6.5", 8.0, True), ("8/8", 8.0, False),
])
def test_uneven_levels_snap_to_the_nearest_level(written, value, off):
    res = prompts.parse_answer(f"Sharpness: {written}\nStability: 1", schema=UNEVEN)
    assert res.scores == {"sharpness": value, "stability": 1.0} and res.off_grid["sharpness"] is off
    assert prompts.parse_answer("Sharpness: 9", schema=UNEVEN).reason["sharpness"] == "9 is outside [1, 8]"


# --------------------------------------------------------------------------- word schemas


@pytest.mark.parametrize("line, value", [
    ("Overall Quality: good", 4.0), ("overall quality: GOOD", 4.0), ("Overall Quality: Excellent", 5.0),
    ("**Overall Quality**: **fair**", 3.0), ("- overall_quality = poor", 2.0), ("Overall Quality: bad.", 1.0),
    ("Overall Quality: good, sharp and steady", 4.0), ("Overall Quality: good (4/5)", 4.0),
    ("Overall Quality Rating: excellent", 5.0), ("Overall Quality (1-5): good", 4.0),
])
def test_qalign5_reads_level_words(line, value):
    text = "Sharp.\n" + line
    res = prompts.parse_answer(text, schema=QALIGN5)
    assert res.ok and res.scores == {"overall_quality": value} and not res.as_number["overall_quality"]
    a, b = res.spans["overall_quality"]
    assert QALIGN5.value_of_string(text[a:b]) == value and res.rationale == "Sharp."


@pytest.mark.parametrize("written, reason", [
    ("great", "'great' is not one of the levels bad, poor, fair, good, excellent"),
    ("goodness", "'goodness' is not one of the levels"), ("", "no level after the dimension name"),
    ("fair to good", "range"), ("fair-good", "range"), ("fair/good", "range"), ("poor or bad", "range"),
    ("good overall", "followed by more words"), ("6", "6 is outside [1, 5]"), ("8/10", "another scale"),
])
def test_qalign5_unparsable_with_a_reason(written, reason):
    res = prompts.parse_answer(f"Overall Quality: {written}", schema=QALIGN5)
    assert res.status["overall_quality"] == "unparsable" and res.scores["overall_quality"] is None
    assert reason in res.reason["overall_quality"]


@pytest.mark.parametrize("written, value, off", [("4", 4.0, False), ("3.5", 4.0, True), ("2/5", 2.0, False),
                                                 ("1", 1.0, False)])
def test_qalign5_numbers_are_read_as_level_values_and_flagged(written, value, off):
    res = prompts.parse_answer(f"Overall Quality: {written}", schema=QALIGN5)
    assert res.ok and res.scores["overall_quality"] == value and res.as_number["overall_quality"]
    assert res.off_grid["overall_quality"] is off
    assert not prompts.check_format(f"Overall Quality: {written}", schema=QALIGN5)


def test_qalign5_rescale_and_later_prose():
    res = prompts.parse_answer("Overall Quality: 8/10", schema=QALIGN5, rescale=True)
    assert res.scores["overall_quality"] == 4.0 and res.rescaled["overall_quality"] and res.as_number["overall_quality"]
    text = 'Overall Quality: good\n\n{"reason": "overall quality: poor lighting in one shot"}'
    res = prompts.parse_answer(text, schema=QALIGN5)  # "poor lighting" is prose: it does not undo "good"
    assert res.scores["overall_quality"] == 4.0 and res.n_matches["overall_quality"] == 2
    res = prompts.parse_answer("Overall Quality: poor\nOverall Quality: great\nOverall Quality: fair", schema=QALIGN5)
    assert res.scores["overall_quality"] == 3.0 and res.n_matches["overall_quality"] == 3  # the last value counts


@pytest.mark.parametrize("written, value", [
    ("good", 2.0), ("good+", 3.0), ("Good+", 3.0), ("very good", 4.0), ("Very  Good", 4.0), ("bad", 1.0),
    ("good+.", 3.0), ('"good+"', 3.0),
])
def test_word_levels_that_are_prefixes_of_each_other(written, value):
    res = prompts.parse_answer(f"Overall Quality: {written}", schema=PLUS)
    assert res.ok and res.scores["overall_quality"] == value


def test_word_levels_prefix_siblings_that_are_not_levels():
    for written, reason in [("good++", "'good++' is not one of the levels"), ("goodish", "not one of the levels"),
                            ("very", "'very' is not one of the levels"),
                            ("good-ish", "'good-ish' is not one of the levels")]:
        res = prompts.parse_answer(f"Overall Quality: {written}", schema=PLUS)
        assert res.status["overall_quality"] == "unparsable" and reason in res.reason["overall_quality"], written


# --------------------------------------------------------------------------- wild layouts per schema


def _layouts(schema, scores):
    """JSON (names, keys, quoted, nested), a markdown table, bold list lines, labels in brackets."""
    names = [schema.name_of(k) for k in scores]
    strs = [schema.string(v) for v in scores.values()]
    return [
        "{\n  " + ",\n  ".join(f'"{n}": "{s}"' for n, s in zip(names, strs)) + "\n}",
        "{" + ", ".join(f'"{k}": {{"score": "{s}", "reason": "fine"}}' for k, s in zip(scores, strs)) + "}",
        "Steady.\n```json\n{" + ", ".join(f'"{k}": "{s}"' for k, s in zip(scores, strs)) + "}\n```",
        "| Dimension | Score |\n|---|---|\n" + "\n".join(f"| {n} | {s} |" for n, s in zip(names, strs)),
        "| Dimension | Score | Note |\n|:--|:-:|---|\n"
        + "\n".join(f"| **{n}** | **{s}** | ok |" for n, s in zip(names, strs)),
        "Steady.\n" + "\n".join(f"- **{n}**: **{s}**" for n, s in zip(names, strs)),
        "\n".join(f"{n} ({schema.strings[0]}-{schema.strings[-1]}): {s}" for n, s in zip(names, strs)),
    ]


LAYOUT_CASES = [
    (PAPER, PAPER_SCORES), (MOS9, {"overall_quality": 4.5}), (QALIGN5, {"overall_quality": 2.0}),
    (INT10, {"visual_quality": 10.0, "temporal_consistency": 1.0, "text_alignment": 7.0}),
    (UNEVEN, {"sharpness": 8.0, "stability": 3.0}), (PLUS, {"overall_quality": 3.0}),
]


@pytest.mark.parametrize("schema, scores", LAYOUT_CASES, ids=lambda x: getattr(x, "name", ""))
def test_json_tables_and_bold_per_schema(schema, scores):
    for i, text in enumerate(_layouts(schema, scores)):
        if i == 6 and schema in (QALIGN5, PLUS):  # "(bad-excellent)" is a range of words, not a numeric scale
            text = text.replace(f"({schema.strings[0]}-{schema.strings[-1]})", "(1-5)" if schema is QALIGN5 else "")
        res = prompts.parse_answer(text, schema=schema)
        assert res.ok and res.scores == scores, (i, text, res.reason)
        for k in schema.keys:
            a, b = res.spans[k]
            assert text[a:b] == schema.string(scores[k]), (i, text)


@pytest.mark.parametrize("schema, text, key", [
    (QALIGN5, "<think>Overall Quality: good</think>\nSteady.", "overall_quality"),
    (INT10, "<think>Visual Quality: 10?</think>\nText Alignment: 3", "visual_quality"),
    (MOS9, "Overall Quality: 4.0 maybe\n</think>\nSteady.", "overall_quality"),
])
def test_think_blocks_are_skipped_per_schema(schema, text, key):
    res = prompts.parse_answer(text, schema=schema)
    assert res.status[key] == "missing" and "<think>" in res.reason[key] and "think>" not in res.rationale


def test_full_width_and_spans_on_int10():
    text = "Sharp.\nVisual Quality：１０\nTemporal Consistency: 1"
    res = prompts.parse_answer(text, schema=INT10)
    assert res.scores["visual_quality"] == 10.0 and res.rationale == "Sharp."
    a, b = res.spans["visual_quality"]
    assert text[a:b] == "１０"


def test_parse_result_is_keyed_by_the_schema():
    res = prompts.parse_answer("", schema=INT10)
    assert res.keys == INT10.keys == tuple(res.scores) == tuple(res.status) == tuple(res.as_number)
    assert res.failed == list(INT10.keys) and not res.ok and res.schema is INT10


# --------------------------------------------------------------------------- rationale expansion per schema


def test_rationale_prompt_and_template_per_schema():
    paper = prompts.rationale_prompt("Clarity Quality", 2.5, ["blur"], schema=PAPER)
    assert "Human score: 2.5 out of 5.0 (Subpar). The score scale is 1.0 Abysmal, 1.5 Terrible" in paper
    assert paper == prompts.rationale_prompt("Clarity Quality", 2.5, ["blur"])
    assert paper == prompts.rationale_prompt("Clarity Quality", 2.5, ["blur"], schema=PAPER_COPY)  # generic path
    assert prompts.template_rationale("clarity_quality", 3.3, ["noise"], schema=PAPER_COPY) == (
        prompts.template_rationale("clarity_quality", 3.3, ["noise"]))
    q = prompts.rationale_prompt("overall_quality", 4, schema=QALIGN5)
    assert "Definition of Overall Quality: the overall perceptual quality of the video." in q
    assert "Human score: good. The score scale is bad, poor, fair, good, excellent." in q
    assert '"Overall, the overall quality is good."' in q
    i = prompts.rationale_prompt("visual_quality", 7, comment="soft", schema=INT10)
    assert "Human score: 7 out of 10. The score scale is 1, 2, 3, 4, 5, 6, 7, 8, 9, 10." in i
    assert "Rater comment: soft" in i and '"Overall, the visual quality is rated 7 out of 10."' in i
    u = prompts.rationale_prompt("sharpness", 5, schema=UNEVEN)
    assert "Definition of Sharpness: how crisp fine detail is." in u
    assert "Human score: 5 out of 8 (nice). The score scale is 1 awful, 2 weak, 3 okay, 5 nice, 8 superb." in u
    with pytest.raises(ValueError, match="not on the grid"):
        prompts.rationale_prompt("sharpness", 4, schema=UNEVEN)
    with pytest.raises(ValueError, match="not valid"):
        prompts.rationale_prompt("visual_quality", 7, ["blur"], schema=INT10)
    assert prompts.template_rationale("overall_quality", 2.2, schema=QALIGN5) == (
        "No specific problems were noted. Overall, the overall quality is poor.")
    assert prompts.template_rationale("visual_quality", 7.4, ["blur"], schema=INT10) == (
        "The video shows blur. Overall, the visual quality is rated 7 out of 10.")
    assert prompts.template_rationale("clarity_quality", 3.3, ["blur"], schema=None) == (
        "The video shows blur. Overall, the clarity quality is good.")


# --------------------------------------------------------------------------- what the level scorer tokenises


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from vqalib.model import tokenizer as tk

    return tk.build_tokenizer()


@pytest.mark.parametrize("schema", [PAPER, MOS9, QALIGN5, INT10, UNEVEN, PLUS], ids=lambda s: s.name)
def test_level_context_splits_at_a_token_boundary(schema, tiny_tokenizer):
    tok = tiny_tokenizer
    for key in schema.keys:
        context, conts = prompts.level_context(key, schema=schema)
        assert len(conts) == schema.n_levels
        ctx = tok.tokenize("Steady.\n\n" + context)
        seqs = []
        for value, cont in zip(schema.values, conts):
            assert context + cont == prompts.score_line(key, value, schema=schema)
            full = tok.tokenize("Steady.\n\n" + context + cont)
            assert full[:len(ctx)] == ctx, (context, cont)
            seqs.append(tuple(full[len(ctx):]))
        assert len(set(seqs)) == schema.n_levels  # K distinct token sequences


def test_score_prefix_is_no_token_boundary_before_a_word(tiny_tokenizer):
    """Why level_context exists: the space before a level word joins the word's token."""
    tok = tiny_tokenizer
    pre = prompts.score_prefix("overall_quality", schema=QALIGN5)
    assert tok.tokenize(pre + "good")[:len(tok.tokenize(pre))] != tok.tokenize(pre)
    pre = prompts.score_prefix("visual_quality", schema=INT10)
    assert tok.tokenize(pre + "10")[:len(tok.tokenize(pre))] == tok.tokenize(pre)
    int10 = [tok.tokenize(c) for c in prompts.level_context("visual_quality", schema=INT10)[1]]
    assert int10[0] == int10[-1][:len(int10[0])]  # " 1" is a prefix of " 10" in tokens too
