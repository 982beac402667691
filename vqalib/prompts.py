"""Instruction, strict answer format, tolerant parser and rationale-expansion templates.

The model is asked for a short rationale followed by one line per dimension, in
:data:`vqalib.levels.DIMENSIONS` order, each score one of the 9 level strings::

    The camera pans smoothly over a well-lit street; fine detail is slightly soft.

    Motion Quality: 4.0
    Motion Amplitude: 3.0
    Aesthetic Quality: 3.5
    Content Quality: 4.0
    Clarity Quality: 3.0

:func:`format_answer` writes exactly this (the SFT target), :func:`check_format` says whether a
text follows it exactly (the GRPO format reward), and :func:`parse_answer` reads it tolerantly.

Parser rules (documented choices, tested in ``tests/test_prompts.py``):

* A score is ``<dimension name or key> : <number>`` anywhere in the text, case-insensitive,
  with optional markdown (``**Motion Quality**: **3.5**``), ``=`` instead of ``:``, and an
  optional ``/5`` or ``out of 5`` after the number (``3.5/5``). ``3`` and ``3.50`` are read
  as 3.0 and 3.5. Lines may come in any order.
* Only the 1-5 scale is read. A number followed by another denominator (``4/10``,
  ``2 out of 10``, ``80/100``), a percent sign (``80%``), a decimal comma (``3,5``) or a range
  (``3-4``, ``3 to 4``) is ``unparsable``, with the reason in ``ParseResult.reason``: a baseline
  model answering on another scale is counted, never read as a 1-5 score. Rescaling is the
  caller's explicit choice (``parse_answer(text, rescale=True)`` maps ``x/N`` and ``x out of N``
  linearly from [0, N] to [1, 5] and flags it with ``rescaled=True``; off by default).
* If a dimension has several score matches the **last** one counts (the score block ends the
  answer); the number of matches is recorded.
* A number inside [1, 5] but off the 0.5 grid (``3.3``) is snapped with
  :func:`vqalib.levels.snap_to_grid` (round half up) and counted as ``ok`` with
  ``off_grid=True`` and the raw value kept, so evaluation can report how often it happens.
* A number outside [1, 5] (``7``, ``0``) or a dimension followed by no number
  (``Clarity Quality: good``) is ``unparsable``; a dimension that is never named is ``missing``.
  No default is ever filled in: failed dimensions have ``score=None``.
* The rationale is the text before the first match that counts (without the list/markdown marks
  that open its line), so a dimension named inside a sentence earlier on (``The motion quality:
  okay-ish.``) does not cut it.

The strict form (:func:`check_format`, the GRPO format reward) accepts only the 9 level strings,
so ``3`` or ``3.50`` parse as scores but earn no format reward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from . import levels
from .levels import DIMENSION_KEYS, DIMENSIONS, KEYWORDS, LEVEL_STRINGS, NAME_OF, TAG_TEXT

#: Parse status values (one per dimension).
STATUS_OK = "ok"
STATUS_MISSING = "missing"
STATUS_UNPARSABLE = "unparsable"

SYSTEM_PROMPT = "You are a helpful assistant."

#: The one instruction the model is trained and evaluated with (user turn, after the video).
INSTRUCTION = (
    "Rate the quality of this video on five dimensions: "
    + ", ".join(DIMENSIONS[:-1])
    + f" and {DIMENSIONS[-1]}. "
    f"Each score is from 1.0 ({KEYWORDS[1.0]}) to 5.0 ({KEYWORDS[5.0]}) in steps of 0.5. "
    "First give a short rationale, then write one line per dimension in this order, "
    "in the form \"Motion Quality: 3.5\"."
)


def build_messages(instruction: str | None = None, answer: str | None = None,
                   system: str | None = None) -> list[dict]:
    """Chat messages for one clip: a user turn holding the video then the instruction.

    ``answer`` (optional) is added as the assistant turn. The video itself is passed to the
    processor separately; here it is only the ``{"type": "video"}`` placeholder that the chat
    template turns into ``<|vision_start|><|video_pad|><|vision_end|>``.
    """
    msgs: list[dict] = []
    if system is not None:
        msgs.append({"role": "system", "content": [{"type": "text", "text": system}]})
    msgs.append({"role": "user", "content": [{"type": "video"},
                                             {"type": "text", "text": instruction or INSTRUCTION}]})
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


def score_line(dimension: str, score: float) -> str:
    """``score_line("clarity_quality", 3.5) == "Clarity Quality: 3.5"`` (score must be on the grid)."""
    return f"{NAME_OF[levels.dimension_key(dimension)]}: {levels.level_string(score)}"


def format_answer(scores: Mapping[str, float], rationales: Mapping[str, str] | str | None = None) -> str:
    """The strict answer: rationale paragraph(s), a blank line, then five score lines.

    ``scores`` maps dimension keys (or display names) to grid values; all five are required.
    ``rationales`` is one text, a dict of per-dimension texts (written as one paragraph per
    dimension in :data:`DIMENSIONS` order, missing ones skipped) or ``None`` (scores only).
    """
    by_key = {levels.dimension_key(k): v for k, v in scores.items()}
    missing = [k for k in DIMENSION_KEYS if k not in by_key]
    if missing:
        raise ValueError(f"format_answer: scores for {missing} are missing; all five dimensions are required")
    lines = [score_line(k, by_key[k]) for k in DIMENSION_KEYS]
    if isinstance(rationales, Mapping):
        rk = {levels.dimension_key(k): str(v).strip() for k, v in rationales.items()}
        text = "\n".join(rk[k] for k in DIMENSION_KEYS if rk.get(k))
    else:
        text = (rationales or "").strip()
    block = "\n".join(lines)
    return f"{text}\n\n{block}" if text else block


_NAME_ALTS = sorted(
    [re.escape(n).replace(r"\ ", r"[ _]+") for n in DIMENSIONS] + [re.escape(k) for k in DIMENSION_KEYS],
    key=len, reverse=True,
)
#: name, separator, then (optionally) a number and what follows it (checked in :func:`_read_number`).
_SCORE_RE = re.compile(
    r"(?P<name>" + "|".join(_NAME_ALTS) + r")"
    r"[ \t]*(?:\*\*|__|\*)?[ \t]*[:=：][ \t]*(?:\*\*|__|\*)?[ \t]*"
    r"(?:(?P<num>[+-]?\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
#: what may follow the number: a denominator ("/ 5", "out of 10"), a percent sign, a decimal comma
#: ("3,5") or the second end of a range ("3-4", "3 – 4", "3 to 4").
_DEN_RE = re.compile(r"[ \t]*(?:\*\*|__|\*)?[ \t]*(?:/|out[ \t]+of)[ \t]*(?P<den>\d+(?:\.\d+)?)", re.IGNORECASE)
_PERCENT_RE = re.compile(r"[ \t]*%")
_COMMA_RE = re.compile(r",\d")
_MARKUP_TAIL_RE = re.compile(r"(?:^|(?<=\n))[ \t]*(?:[-*+>#]+|\d+[.)])?[ \t]*(?:\*\*|__|\*)?[ \t]*$")  # "- **" before a score
_RANGE_RE = re.compile(r"[ \t]*(?:[-–—~]|to)[ \t]*\d", re.IGNORECASE)
_STRICT_RE = re.compile(
    r"(?:(?P<rationale>.*\S)\n\n)?" + r"\n".join(
        re.escape(n) + r": (?:" + "|".join(re.escape(s) for s in LEVEL_STRINGS) + r")" for n in DIMENSIONS
    ),
    re.DOTALL,
)


@dataclass
class ParseResult:
    """What :func:`parse_answer` read, per dimension key.

    ``scores[k]`` is a grid value or ``None``; ``status[k]`` is ``ok``/``missing``/``unparsable``;
    ``reason[k]`` why a dimension is not ``ok`` (``None`` when it is); ``raw[k]`` the matched text
    (``"3.50/5"``) or ``None``; ``raw_value[k]`` the number as written; ``off_grid[k]`` whether it
    was snapped; ``rescaled[k]`` whether it was mapped from another scale (``rescale=True`` only);
    ``spans[k]`` the character span of the number in the text (used to find the score tokens);
    ``n_matches[k]`` how many score matches the dimension had; ``rationale`` the text before the
    first counted score match.
    """

    text: str
    scores: dict[str, float | None] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    reason: dict[str, str | None] = field(default_factory=dict)
    raw: dict[str, str | None] = field(default_factory=dict)
    raw_value: dict[str, float | None] = field(default_factory=dict)
    off_grid: dict[str, bool] = field(default_factory=dict)
    rescaled: dict[str, bool] = field(default_factory=dict)
    spans: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    n_matches: dict[str, int] = field(default_factory=dict)
    rationale: str = ""

    @property
    def ok(self) -> bool:
        """True when all five dimensions parsed."""
        return all(self.status[k] == STATUS_OK for k in DIMENSION_KEYS)

    @property
    def failed(self) -> list[str]:
        """Keys of the dimensions that did not parse, in :data:`DIMENSION_KEYS` order."""
        return [k for k in DIMENSION_KEYS if self.status[k] != STATUS_OK]


def _key_of_match(name: str) -> str:
    return levels.dimension_key(re.sub(r"[ _]+", " ", name.strip()))


@dataclass
class _Read:
    """One score match read: value on the 1-5 scale (or None), status, reason, raw text, flags."""

    value: float | None
    status: str
    reason: str | None
    raw: str
    raw_value: float | None = None
    span: tuple[int, int] | None = None
    off_grid: bool = False
    rescaled: bool = False


def _read_number(m: re.Match, text: str, rescale: bool) -> _Read:
    """Read the number of a score match and what follows it (see the module docstring's rules)."""
    num = m.group("num")
    if num is None:
        return _Read(None, STATUS_UNPARSABLE, "no number after the dimension name", m.group(0).strip())
    value, end, span = float(num), m.end("num"), (m.start("num"), m.end("num"))
    den = _DEN_RE.match(text, end)
    if _COMMA_RE.match(text, end):
        return _Read(None, STATUS_UNPARSABLE, f"decimal comma ({num},{text[end + 1]}...); write a decimal point",
                     text[m.start("num"): end + 2], value, span)
    if _PERCENT_RE.match(text, end):
        return _Read(None, STATUS_UNPARSABLE, "a percentage, not a 1-5 score", num + "%", value, span)
    rng = _RANGE_RE.match(text, end)
    if rng:
        return _Read(None, STATUS_UNPARSABLE, "a range, not one score", text[m.start("num"): rng.end()], value, span)
    rescaled = False
    raw = num
    if den:
        scale = float(den.group("den"))
        raw = num + den.group(0)
        if scale != levels.SCORE_MAX:
            if not rescale or scale <= 0:
                return _Read(None, STATUS_UNPARSABLE, f"score on another scale ({raw.strip()}), not out of 5",
                             raw, value, span)
            if not 0 <= value <= scale:
                return _Read(None, STATUS_UNPARSABLE, f"{raw.strip()} is outside [0, {den.group('den')}]", raw, value, span)
            value, rescaled = levels.SCORE_MIN + (levels.SCORE_MAX - levels.SCORE_MIN) * value / scale, True
    if not (levels.SCORE_MIN <= value <= levels.SCORE_MAX):
        return _Read(None, STATUS_UNPARSABLE, f"{num} is outside [1, 5]", raw, float(num), span)
    return _Read(levels.snap_to_grid(value), STATUS_OK, None, raw, float(num), span,
                 off_grid=not levels.is_on_grid(value), rescaled=rescaled)


def parse_answer(text: str, rescale: bool = False) -> ParseResult:
    """Read the five scores from a model answer; see the module docstring for the rules.

    ``rescale=True`` (opt-in) maps a score written on another scale (``x/N``, ``x out of N``)
    linearly from [0, N] to [1, 5] and flags it in ``rescaled``; by default it is unparsable."""
    res = ParseResult(text=text)
    for k in DIMENSION_KEYS:
        res.scores[k], res.status[k], res.raw[k], res.raw_value[k] = None, STATUS_MISSING, None, None
        res.off_grid[k], res.rescaled[k], res.spans[k], res.n_matches[k] = False, False, None, 0
        res.reason[k] = "the dimension is never named with a score"
    counted: dict[str, int] = {}  # key -> start of the match that counts (the last one)
    for m in _SCORE_RE.finditer(text):
        key = _key_of_match(m.group("name"))
        res.n_matches[key] += 1
        counted[key] = m.start()
        r = _read_number(m, text, rescale)
        res.scores[key], res.status[key], res.reason[key], res.raw[key] = r.value, r.status, r.reason, r.raw
        res.raw_value[key], res.spans[key], res.off_grid[key], res.rescaled[key] = r.raw_value, r.span, r.off_grid, r.rescaled
    if counted:
        first = min(counted.values())
        res.rationale = _MARKUP_TAIL_RE.sub("", text[:first]).strip()
    else:
        res.rationale = text.strip()
    return res


def check_format(text: str) -> bool:
    """True when ``text`` is exactly the strict format of :func:`format_answer` (the format reward)."""
    return _STRICT_RE.fullmatch(text) is not None


# --------------------------------------------------------------------------- rationale expansion

#: What each dimension judges (shared by the instruction-free rationale templates below).
DIMENSION_DEFINITIONS: dict[str, str] = {
    "motion_quality": "how natural, smooth and stable the motion is (camera shake, stutter, flicker lower it)",
    "motion_amplitude": "how much motion there is, from an almost static scene to large, fast motion",
    "aesthetic_quality": "the visual appeal: exposure, colour and composition",
    "content_quality": "whether the content is meaningful and clean (no overlays, borders, broken footage)",
    "clarity_quality": "how sharp and clean the picture is (blur, noise, compression blocking lower it)",
}

_RATIONALE_TEMPLATE = """You are an expert in video quality assessment. Write the rationale that a careful human rater would give for the {name} of a video.

Definition of {name}: {definition}.
Human score: {score} out of 5.0 ({keyword}). The score scale is {scale}.
Sub-attributes the raters marked: {tags}.
{comment}
Write two or three sentences in English that:
1. describe what in the video leads to this score, mentioning each marked sub-attribute;
2. do not mention sub-attributes that were not marked, and do not invent details you were not given;
3. end with the sentence "Overall, the {name_lower} is {keyword_lower}."
Output only the rationale text, with no heading, list or score line."""


def rationale_prompt(dimension: str, score: float, tags: list[str] | tuple[str, ...] = (),
                     comment: str | None = None) -> str:
    """A prompt to send to any LLM to expand a human score + tags into a rationale.

    Follows the structure of the paper's rationale-synthesis prompts (Figs. 3-6): a role, the
    dimension's definition, the human score with its evaluation keyword, the ticked sub-attribute
    tags, and fixed output rules ending in the keyword sentence. Unknown tags raise.
    """
    key = levels.dimension_key(dimension)
    bad = levels.check_tags(key, tags)
    if bad:
        raise ValueError(f"tags {bad} are not valid for {key}; valid: {list(levels.TAGS[key])}")
    score = float(score)
    if not levels.is_on_grid(score):
        raise ValueError(f"score {score} is not on the grid {LEVEL_STRINGS}; snap_to_grid() it first")
    kw = KEYWORDS[score]
    name = NAME_OF[key]
    return _RATIONALE_TEMPLATE.format(
        name=name, name_lower=name.lower(), definition=DIMENSION_DEFINITIONS[key],
        score=levels.level_string(score), keyword=kw, keyword_lower=kw.lower(),
        scale=", ".join(f"{levels.level_string(v)} {w}" for v, w in KEYWORDS.items()),
        tags=", ".join(TAG_TEXT[t] for t in tags) if tags else "none",
        comment=f"Rater comment: {comment.strip()}\n" if comment and comment.strip() else "",
    )


def template_rationale(dimension: str, score: float, tags: list[str] | tuple[str, ...] = ()) -> str:
    """A deterministic, LLM-free rationale in the same shape (for the embedded sample data and tests)."""
    key = levels.dimension_key(dimension)
    name = NAME_OF[key]
    kw = KEYWORDS[levels.snap_to_grid(score)]
    problems = ", ".join(TAG_TEXT[t] for t in tags)
    first = f"The video shows {problems}." if problems else "No specific problems were noted."
    return f"{first} Overall, the {name.lower()} is {kw.lower()}."
