"""Instruction, strict answer format, tolerant parser and rationale-expansion templates.

The model is asked for a short rationale followed by one line per dimension, in
:data:`vqalib.schema.levels.DIMENSIONS` order, each score one of the 9 level strings::

    The camera pans smoothly over a well-lit street; fine detail is slightly soft.

    Motion Quality: 4.0
    Motion Amplitude: 3.0
    Aesthetic Quality: 3.5
    Content Quality: 4.0
    Clarity Quality: 3.0

:func:`format_answer` writes exactly this (the SFT target), :func:`check_format` says whether a
text follows it exactly (the GRPO format reward), and :func:`parse_answer` reads it tolerantly.

Parser rules (documented choices, tested in ``tests/unit/test_prompts.py``):

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
* If a dimension has several score matches the **last** one with a number counts (the score
  block ends the answer); a match with no number (``Motion Quality: smooth``, as in a JSON
  ``"reason"`` after the score) counts only when no match has a number. The number of matches is
  recorded.
* A number inside [1, 5] but off the 0.5 grid (``3.3``) is snapped with
  :func:`vqalib.schema.levels.snap_to_grid` (round half up) and counted as ``ok`` with
  ``off_grid=True`` and the raw value kept, so evaluation can report how often it happens.
* A number outside [1, 5] (``7``, ``0``) or a dimension followed by no number
  (``Clarity Quality: good``) is ``unparsable``; a dimension that is never named is ``missing``.
  No default is ever filled in: failed dimensions have ``score=None``.
* The text is read after NFKC normalisation (per character, so spans still index the text as
  given): full-width ``３．５`` and ``：`` read as ``3.5`` and ``:``. Superscripts, subscripts and
  vulgar fractions are kept, so ``3²`` and ``3½`` are unparsable, never 32 or 31.
* A number is read as written or not at all: ``1e1`` is 10 (outside [1, 5]), and a number that
  runs on into letters, digits or another decimal point (``3.5.1``, ``3rd``, ``3½``) is
  ``unparsable`` ("the number runs on"); it is never cut to its first digits.
* A scale stated next to the score decides which scale it is on: ``4 of 10``, ``3 (on a 1-10
  scale)``, ``3, on a scale of 10``, ``3 (out of 10)`` and a bracketed label ``Motion Quality
  (1-10): 7`` are other scales (``unparsable``, or mapped with ``rescale=True``); ``(1-5)``,
  ``out of 5`` and ``of 5`` are the 1-5 scale. A bracket saying no scale (``4.5 (Excellent)``) is ignored.
* Three other layouts that instruction-tuned VLMs emit are read with the same rules: JSON objects
  keyed by dimension names or keys (``{"Motion Quality": 3.5}``, ``{"motion_quality": "3.5"}``,
  ``{"motion_quality": {"score": 3.5, ...}}``), markdown table rows with the score in the cell
  right after the name (``| Motion Quality | 3.5 |``) and labels with the scale in brackets
  (``Motion Quality (1-5): 3.5``); ``Motion Quality Score: 3.5`` too. A table whose score is not
  the cell after the name, or a transposed table (names in the header row), is not read:
  ``unparsable`` ("no number after the dimension name") or ``missing``, counted as always.
* Text inside ``<think>...</think>`` (the reasoning of thinking models) is not read: an unclosed
  ``<think>`` runs to the end, and a ``</think>`` with no opening before it closes a block that
  starts the text (chat templates that open the block in the prompt). A dimension scored only
  there is ``missing`` with that reason; the rationale leaves the block out.
* The rationale is the text before the first match that counts (without the list/markdown marks
  that open its line), so a dimension named inside a sentence earlier on (``The motion quality:
  okay-ish.``) does not cut it.

The strict form (:func:`check_format`, the GRPO format reward) accepts only the 9 level strings,
so ``3`` or ``3.50`` parse as scores but earn no format reward.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Mapping

from vqalib.schema import levels
from vqalib.schema.levels import DIMENSION_KEYS, DIMENSIONS, KEYWORDS, LEVEL_STRINGS, NAME_OF, TAG_TEXT

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
_MD = r"(?:\*\*|__|\*)?"  # optional markdown emphasis
_NUM = r"\d+(?:\.\d+)?"
#: name (optionally "... Score"), a closing quote (JSON), an optional label in brackets ("(1-5)"),
#: the separator (":", "=", or a table bar "|"), a nested JSON {"score": ...} opening or a quote,
#: then (optionally) a number and what follows it (checked in :func:`_read_number`).
_SCORE_RE = re.compile(
    r"(?P<name>" + "|".join(_NAME_ALTS) + r")(?:[ _]+(?:score|rating))?[\"']?"
    r"[ \t]*" + _MD + r"[ \t]*(?:[(\[](?P<label>[^)\]\n]{0,40})[)\]][ \t]*" + _MD + r")?[ \t]*[\"']?"
    r"[ \t]*[:=：|][ \t]*" + _MD + r"[ \t]*"
    r"(?:\{\s*[\"']?(?:score|rating|value)[\"']?\s*:\s*)?[\"']?[ \t]*"
    r"(?:(?P<num>[+-]?" + _NUM + r"))?",
    re.IGNORECASE,
)
#: what may follow the number: a denominator ("/ 5", "out of 10", "4 of 10"), a percent sign, a decimal
#: comma ("3,5") or the second end of a range ("3-4", "3 – 4", "3 to 4").
_DEN_RE = re.compile(r"[ \t]*(?:\*\*|__|\*)?[ \t]*(?:/|out[ \t]+of|of)[ \t]*(?P<den>\d+(?:\.\d+)?)", re.IGNORECASE)
_PERCENT_RE = re.compile(r"[ \t]*%")
_COMMA_RE = re.compile(r",\d")
_EXP_RE = re.compile(r"[eE][+-]?\d+")  # 1e1: read as written (10), never as 1
_MARKUP_TAIL_RE = re.compile(r"(?:^|(?<=\n))[ \t]*(?:[-*+>#|]+|\d+[.)])?[ \t]*(?:\*\*|__|\*)?[\"'{ \t]*$")  # "- **" before a score
_RANGE_RE = re.compile(r"[ \t]*(?:[-–—~]|to)[ \t]*\d", re.IGNORECASE)
#: a scale stated right after the number: "3 (on a 1-10 scale)", "3 (out of 10)", "3, on a scale of 10".
_PAREN_TAIL_RE = re.compile(r"[ \t]*" + _MD + r"[ \t]*[(\[](?P<inner>[^)\]\n]{0,40})[)\]]")
_ON_SCALE_RE = re.compile(
    r"[ \t]*,?[ \t]*(?P<inner>on[ \t]+(?:a|the)[ \t]+(?:" + _NUM + r"[ \t]*(?:-|–|—|to)[ \t]*" + _NUM
    + r"[ \t-]*(?:point[ \t]+)?scale|scale[ \t]+(?:of|from)[ \t]+(?:" + _NUM + r"[ \t]*(?:-|–|—|to)[ \t]*)?" + _NUM + r"))",
    re.IGNORECASE)
_SCALE_RANGE_RE = re.compile(r"(?P<lo>" + _NUM + r")[ \t]*(?:-|–|—|to)[ \t]*(?P<hi>" + _NUM + r")", re.IGNORECASE)
_SCALE_DEN_RE = re.compile(r"(?:out[ \t]+of|of|/)[ \t]*(?P<hi>" + _NUM + r")", re.IGNORECASE)
_THINK_OPEN_RE = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(r"</think>", re.IGNORECASE)
#: compatibility forms kept as they are by the normalisation: "3½" or "3²" must not become "31⁄2" or "32".
_KEEP_COMPAT = ("<super>", "<sub>", "<fraction>")
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


def _scale_of(inner: str) -> tuple[float | None, float] | None:
    """The scale a bracketed label or tail states: (low, high) for "1-10", (None, high) for a bare
    top ("on a scale of 10", "out of 5"; read as [0, high] like ``x/N``), or None."""
    m = _SCALE_RANGE_RE.search(inner)
    if m:
        return float(m.group("lo")), float(m.group("hi"))
    m = _SCALE_DEN_RE.search(inner)
    if m:
        return None, float(m.group("hi"))
    return None


def _is_five_point(scale: tuple[float | None, float]) -> bool:
    """The range 1-5, or a bare top of 5 ("out of 5", ``3.5/5``); "0-5" is another scale."""
    return scale in ((levels.SCORE_MIN, levels.SCORE_MAX), (None, levels.SCORE_MAX))


def _read_number(m: re.Match, text: str, rescale: bool) -> _Read:
    """Read the number of a score match and what follows it (see the module docstring's rules)."""
    num = m.group("num")
    if num is None:
        return _Read(None, STATUS_UNPARSABLE, "no number after the dimension name", m.group(0).strip())
    end, span = m.end("num"), (m.start("num"), m.end("num"))
    exp = _EXP_RE.match(text, end)
    if exp:  # read as written: 1e1 is 10, not 1
        num, end = num + exp.group(0), exp.end()
        span = (span[0], end)
    value = float(num)
    den = _DEN_RE.match(text, end)
    if _COMMA_RE.match(text, end):
        return _Read(None, STATUS_UNPARSABLE, f"decimal comma ({num},{text[end + 1]}...); write a decimal point",
                     text[m.start("num"): end + 2], value, span)
    if _PERCENT_RE.match(text, end):
        return _Read(None, STATUS_UNPARSABLE, "a percentage, not a 1-5 score", num + "%", value, span)
    rng = _RANGE_RE.match(text, end)
    if rng:
        return _Read(None, STATUS_UNPARSABLE, "a range, not one score", text[m.start("num"): rng.end()], value, span)
    if end < len(text) and (text[end].isalnum() or text[end] == "_"
                            or (text[end] == "." and end + 1 < len(text) and text[end + 1].isalnum())):
        runon = re.match(r"[^\s,;)\]|*]*", text[end:]).group(0)
        return _Read(None, STATUS_UNPARSABLE, f"the number runs on into {runon!r} ({num}{runon}); "
                     "write the score as a plain number", num + runon, value, span)
    rescaled = False
    raw = num
    scale: tuple[float | None, float] | None = None
    if den:
        scale, raw = (None, float(den.group("den"))), num + den.group(0)
    else:
        tail = _ON_SCALE_RE.match(text, end) or _PAREN_TAIL_RE.match(text, end)
        tail_scale = _scale_of(tail.group("inner")) if tail else None
        if tail_scale is not None:
            scale, raw = tail_scale, num + tail.group(0)
        elif m.group("label") and _scale_of(m.group("label")) is not None:
            scale = _scale_of(m.group("label"))
            raw = f"{num} (label: {m.group('label').strip()})"
    if scale is not None and not _is_five_point(scale):
        lo, hi = scale[0] or 0.0, scale[1]
        if not rescale or hi <= lo:
            return _Read(None, STATUS_UNPARSABLE, f"score on another scale ({raw.strip()}), not 1-5",
                         raw, value, span)
        if not lo <= value <= hi:
            return _Read(None, STATUS_UNPARSABLE, f"{raw.strip()} is outside [{lo:g}, {hi:g}]", raw, value, span)
        value, rescaled = levels.SCORE_MIN + (levels.SCORE_MAX - levels.SCORE_MIN) * (value - lo) / (hi - lo), True
    if not (levels.SCORE_MIN <= value <= levels.SCORE_MAX):
        return _Read(None, STATUS_UNPARSABLE, f"{num} is outside [1, 5]", raw, float(num), span)
    return _Read(levels.snap_to_grid(value), STATUS_OK, None, raw, float(num), span,
                 off_grid=not levels.is_on_grid(value), rescaled=rescaled)


def _think_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of ``<think>...</think>`` blocks (the model's reasoning, not its answer).

    An unclosed ``<think>`` runs to the end of the text; a ``</think>`` with no opening before it
    (the chat template opened the block in the prompt) closes a block that starts the text."""
    spans: list[tuple[int, int]] = []
    pos = 0
    close = _THINK_CLOSE_RE.search(text)
    opening = _THINK_OPEN_RE.search(text)
    if close and (opening is None or close.start() < opening.start()):
        spans.append((0, close.end()))
        pos = close.end()
    while True:
        o = _THINK_OPEN_RE.search(text, pos)
        if o is None:
            return spans
        c = _THINK_CLOSE_RE.search(text, o.end())
        stop = c.end() if c else len(text)
        spans.append((o.start(), stop))
        pos = stop


def _normalise(text: str) -> tuple[str, list[int]]:
    """NFKC per character (full-width ``３．５`` -> ``3.5``, ``：`` -> ``:``) with a map from each
    normalised character to its index in ``text`` (the last entry maps the end).
    Superscripts, subscripts and vulgar fractions are kept (``3½`` is not ``31⁄2``)."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        n = ch
        if ord(ch) > 127 and not unicodedata.decomposition(ch).startswith(_KEEP_COMPAT):
            n = unicodedata.normalize("NFKC", ch) or ch
        out.append(n)
        where.extend([i] * len(n))
    where.append(len(text))
    return "".join(out), where


def _rationale_of(before: str) -> str:
    """The rationale: text before the first counted score, without the marks opening the score's
    line, a table header above it, or an opening JSON brace / code fence."""
    lines = _MARKUP_TAIL_RE.sub("", before).rstrip().split("\n")
    while lines and (lines[-1].strip().startswith("|") or lines[-1].strip() in ("{", "```", "```json")):
        lines.pop()
    return "\n".join(lines).strip()


def parse_answer(text: str, rescale: bool = False) -> ParseResult:
    """Read the five scores from a model answer; see the module docstring for the rules.

    ``rescale=True`` (opt-in) maps a score written on another scale (``x/N``, ``x out of N``,
    ``x (on a lo-hi scale)``, a ``Name (lo-hi):`` label) linearly onto [1, 5] and flags it in
    ``rescaled``; by default it is unparsable. Spans index ``text`` as given."""
    res = ParseResult(text=text)
    for k in DIMENSION_KEYS:
        res.scores[k], res.status[k], res.raw[k], res.raw_value[k] = None, STATUS_MISSING, None, None
        res.off_grid[k], res.rescaled[k], res.spans[k], res.n_matches[k] = False, False, None, 0
        res.reason[k] = "the dimension is never named with a score"
    thinks = _think_spans(text)
    visible = list(text)
    for a, b in thinks:  # blanked, not cut, so indices still point into ``text``
        visible[a:b] = [c if c == "\n" else " " for c in text[a:b]]
    norm, where = _normalise("".join(visible))
    counted: dict[str, int] = {}  # key -> start of the match that counts (the last one), in ``text``
    for m in _SCORE_RE.finditer(norm):
        key = _key_of_match(m.group("name"))
        res.n_matches[key] += 1
        r = _read_number(m, norm, rescale)
        if m.group("num") is None and res.raw_value[key] is not None:
            continue  # "Motion Quality: smooth" after its score (a JSON "reason", a closing remark)
        counted[key] = where[m.start()]
        span = None if r.span is None else (where[r.span[0]], where[r.span[1] - 1] + 1)
        res.scores[key], res.status[key], res.reason[key], res.raw[key] = r.value, r.status, r.reason, r.raw
        res.raw_value[key], res.spans[key], res.off_grid[key], res.rescaled[key] = r.raw_value, span, r.off_grid, r.rescaled
    for a, b in thinks:
        inner = _normalise(text[a:b])[0]
        for m in _SCORE_RE.finditer(inner):
            key = _key_of_match(m.group("name"))
            if res.status[key] == STATUS_MISSING and m.group("num") is not None:
                res.reason[key] = ("scored only inside a <think> block (the model's reasoning), "
                                   "not in the answer after it")
    before = "".join(c for i, c in enumerate(text[:min(counted.values()) if counted else len(text)])
                     if not any(a <= i < b for a, b in thinks))
    res.rationale = _rationale_of(before) if counted else before.strip()
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
