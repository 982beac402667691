"""Instruction, strict answer format, tolerant parser and rationale-expansion templates, for any
:class:`~vqalib.schema.rating.RatingSchema` (``schema=None``: the paper's, bit-identical to before).

The model is asked for a short rationale followed by one line per dimension, in the schema's
order, each score one of the schema's level strings. On the paper's schema (five dimensions, the 9
level strings ``1.0 .. 5.0``)::

    The camera pans smoothly over a well-lit street; fine detail is slightly soft.

    Motion Quality: 4.0
    Motion Amplitude: 3.0
    Aesthetic Quality: 3.5
    Content Quality: 4.0
    Clarity Quality: 3.0

On Q-Align's five words (``qalign5``) it is ``Overall Quality: good``; on ten integers (``int10``)
``Visual Quality: 7`` and two more lines. :func:`instruction` asks for it (the paper's
:data:`INSTRUCTION`; for another schema: the dimensions with their descriptions, the levels as a
grid ``from lo (keyword) to hi (keyword) in steps of s``, a list of allowed values, or the K words
from worst to best, and the line form). :func:`format_answer` writes exactly this (the SFT target;
``allow_missing=True`` leaves out the lines of dimensions a clip has no label for),
:func:`check_format` says whether a text follows it exactly (the GRPO format reward),
:func:`parse_answer` reads it tolerantly, :func:`score_prefix` is the text before the level
string in a line (``"Clarity Quality: "``) and :func:`level_context` splits a line where tokenizers
have a boundary (``"Overall Quality:"`` + ``" good"``) for the one-pass level scorer.

Parser rules (documented choices, tested in ``tests/unit/test_prompts.py``,
``tests/unit/test_parse_answers.py`` and, per schema, ``tests/unit/test_schema_prompts.py``). Below,
"[lo, hi]" is the schema's range of level values ([1, 5] on the paper's schema, [1, 10] on
``int10``) and "the grid" its levels:

* A score is ``<dimension name or key> : <number>`` anywhere in the text, case-insensitive,
  with optional markdown (``**Motion Quality**: **3.5**``), ``=`` instead of ``:``, and an
  optional ``/hi`` or ``out of hi`` after the number (``3.5/5``; ``7/10`` on a 1-10 schema).
  ``3`` and ``3.50`` are read as 3.0 and 3.5. Lines may come in any order. Dimension names and
  keys are the schema's.
* Only the schema's scale is read. A number followed by another denominator (``4/10`` on 1-5,
  ``4/5`` on 1-10, ``2 out of 10``, ``80/100``), a percent sign (``80%``), a decimal comma (``3,5``)
  or a range (``3-4``, ``3 to 4``) is ``unparsable``, with the reason in ``ParseResult.reason``: a
  baseline model answering on another scale is counted, never read as a score. Rescaling is the
  caller's explicit choice (``parse_answer(text, rescale=True)`` maps ``x/N`` and ``x out of N``
  linearly from [0, N] to [lo, hi] and flags it with ``rescaled=True``; off by default).
* If a dimension has several score matches the **last** one with a value counts (the score
  block ends the answer); a match with no value (``Motion Quality: smooth``, as in a JSON
  ``"reason"`` after the score) counts only when no match has one. The number of matches is
  recorded.
* A number inside [lo, hi] but off the grid (``3.3`` on the paper's grid, ``7.5`` on ``int10``) is
  snapped with :meth:`RatingSchema.snap <vqalib.schema.rating.RatingSchema.snap>` (nearest level,
  ties up: ``3.25 -> 3.5``, ``7.5 -> 8``) and counted as ``ok`` with ``off_grid=True`` and the raw
  value kept, so evaluation can report how often it happens.
* A number outside [lo, hi] (``7`` or ``0`` on the paper's scale, ``11`` on ``int10``) or a dimension
  followed by no number (``Clarity Quality: good`` on a numeric schema) is ``unparsable``; a
  dimension that is never named is ``missing``. No default is ever filled in: failed dimensions
  have ``score=None``.
* Numbers are read whole: on ``int10`` ``Visual Quality: 10`` is 10, never 1 (``"1"`` is a prefix
  of ``"10"`` only for the level scorer's tokens, not for the parser).
* The text is read after NFKC normalisation (per character, so spans still index the text as
  given): full-width ``３．５`` and ``：`` read as ``3.5`` and ``:``. Superscripts, subscripts and
  vulgar fractions are kept, so ``3²`` and ``3½`` are unparsable, never 32 or 31.
* A number is read as written or not at all: ``1e1`` is 10 (outside [1, 5]), and a number that
  runs on into letters, digits or another decimal point (``3.5.1``, ``3rd``, ``3½``) is
  ``unparsable`` ("the number runs on"); it is never cut to its first digits.
* A scale stated next to the score decides which scale it is on: on the paper's ``4 of 10``,
  ``3 (on a 1-10 scale)``, ``3, on a scale of 10``, ``3 (out of 10)`` and a bracketed label
  ``Motion Quality (1-10): 7`` are other scales (``unparsable``, or mapped with ``rescale=True``);
  ``(lo-hi)``, ``out of hi`` and ``of hi`` are the schema's own scale (``(1-5)``, ``out of 5`` on the
  paper's; ``(1-10)``, ``/10`` on ``int10``). A bracket saying no scale (``4.5 (Excellent)``) is ignored.
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

Word schemas (level strings that are not their numbers: ``qalign5``'s ``bad, poor, fair, good,
excellent`` = 1..5, or a user's own words) follow the same rules, with the level word in place of
the number:

* ``Overall Quality: good`` is 4.0; words are matched case-insensitively (``Good``, ``GOOD``), a
  multi-word level with any run of spaces (``very  good``), in every layout above (JSON
  ``{"Overall Quality": "good"}``, table ``| Overall Quality | good |``, ``**good**``). A level that is
  a prefix of another (``good`` / ``good+``) is read as the longest level written; a word that runs
  on (``goodness``) is no level.
* A word that is not a level (``great``, ``goodness``) is ``unparsable`` with the reason
  ``'great' is not one of the levels bad, poor, fair, good, excellent``; nothing after the name gives
  "no level after the dimension name". Two levels joined as a range (``fair-good``, ``fair to
  good``, ``fair/good``, ``fair or good``) are ``unparsable`` ("a range").
* A level word followed on its line by another word (``Overall quality: poor lighting hurts it``)
  is prose, not a score: that match has no value, so, as ``Motion Quality: smooth`` above, it does
  not undo an earlier score, and alone it is ``unparsable`` with the reason. Punctuation, a bracket
  or the end of the line may follow the word (``good.``, ``good, sharp``, ``good (4/5)``, ``good |``).
* A **number** on a word schema is read as a level value with the numeric rules above (in
  [lo, hi], snapped, ``/hi`` is the own scale, ``rescale=True`` maps other scales), ``ok`` and flagged
  ``as_number=True`` (``Overall Quality: 4`` is ``good``, ``3.5`` snaps to 4.0 with ``off_grid``), so
  evaluation can count answers that ignored the words; it never earns the format reward.

The strict form (:func:`check_format`, the GRPO format reward) accepts only the schema's level
strings exactly as written in the schema (the paper's 9 strings; ``good``, not ``Good``), so ``3`` or
``3.50`` parse as scores but earn no format reward.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

from vqalib.schema import levels, rating
from vqalib.schema.levels import DIMENSIONS, KEYWORDS, LEVEL_STRINGS, NAME_OF, TAG_TEXT
from vqalib.schema.rating import RatingSchema

#: Parse status values (one per dimension).
STATUS_OK = "ok"
STATUS_MISSING = "missing"
STATUS_UNPARSABLE = "unparsable"

SYSTEM_PROMPT = "You are a helpful assistant."

#: The one instruction the model is trained and evaluated with on the paper's schema (user turn,
#: after the video); :func:`instruction` gives it for any schema (``instruction() == INSTRUCTION``).
INSTRUCTION = (
    "Rate the quality of this video on five dimensions: "
    + ", ".join(DIMENSIONS[:-1])
    + f" and {DIMENSIONS[-1]}. "
    f"Each score is from 1.0 ({KEYWORDS[1.0]}) to 5.0 ({KEYWORDS[5.0]}) in steps of 0.5. "
    "First give a short rationale, then write one line per dimension in this order, "
    "in the form \"Motion Quality: 3.5\"."
)

_COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")


def _count(n: int) -> str:
    return _COUNT_WORDS[n] if n < len(_COUNT_WORDS) else str(n)


def _is_word_schema(schema: RatingSchema) -> bool:
    """True when the level strings are not the levels' numbers (``bad .. excellent``)."""
    return not schema.numeric_strings


def _example_level(schema: RatingSchema) -> str:
    """The level string the instruction shows in its example line: an upper-middle level (index
    ``5K // 8``: ``3.5`` of the paper's nine, ``good`` of five words, ``7`` of ten integers)."""
    return schema.strings[(5 * schema.n_levels) // 8]


def _level_label(schema: RatingSchema, i: int) -> str:
    """``"1.0 (Abysmal)"``: a level string with its keyword, or the string alone when the keyword
    says the same (``"7"``, ``"good"``/``"Good"``)."""
    s, k = schema.strings[i], schema.keywords[i]
    return s if k.strip().lower() == s.lower() else f"{s} ({k})"


def _instruction_text(schema: RatingSchema) -> str:
    """The instruction built from a schema (module docstring); equals :data:`INSTRUCTION` for the
    paper's dimensions and levels."""
    items = [d.name + (f" ({d.description})" if d.description else "") for d in schema.dimensions]
    if schema.n_dims == 1:
        d = schema.dimensions[0]
        head = f"Rate the {d.name} of this video" + (f" ({d.description})" if d.description else "") + ". "
        subject = "The score is"
        lines = "write the score on its own line"
    else:
        head = (f"Rate the quality of this video on {_count(schema.n_dims)} dimensions: "
                + ", ".join(items[:-1]) + f" and {items[-1]}. ")
        subject = "Each score is"
        lines = "write one line per dimension in this order"
    k = schema.n_levels
    if _is_word_schema(schema):
        scale = (f"{subject} one of these {_count(k)} words, from worst to best: "
                 + ", ".join(_level_label(schema, i) for i in range(k)) + ". ")
    elif schema.step is not None:
        step = schema.step
        if step == 1 and all(float(v).is_integer() for v in schema.values):
            scale = f"{subject} a whole number from {_level_label(schema, 0)} to {_level_label(schema, k - 1)}. "
        else:
            scale = (f"{subject} from {_level_label(schema, 0)} to {_level_label(schema, k - 1)} "
                     f"in steps of {step:g}. ")
    else:
        scale = (f"{subject} one of " + ", ".join(_level_label(schema, i) for i in range(k - 1))
                 + f" or {_level_label(schema, k - 1)}. ")
    return (head + scale + f"First give a short rationale, then {lines}, "
            f"in the form \"{schema.names[0]}: {_example_level(schema)}\".")


def instruction(schema: RatingSchema | str | None = None) -> str:
    """The instruction for a schema: :data:`INSTRUCTION` for the paper's (``None``); for another it
    names the dimension(s) with their descriptions, the levels (a grid from the lowest to the
    highest level with its step, the list of allowed values, or the K words from worst to best)
    and the line form ``"Name: <level string>"``."""
    schema = rating.resolve(schema)
    return INSTRUCTION if schema.is_paper else _instruction_text(schema)


def build_messages(instruction: str | None = None, answer: str | None = None,
                   system: str | None = None, schema: RatingSchema | str | None = None) -> list[dict]:
    """Chat messages for one clip: a user turn holding the video then the instruction.

    ``instruction`` defaults to the schema's (:func:`instruction`; the paper's :data:`INSTRUCTION`
    when ``schema`` is ``None``). ``answer`` (optional) is added as the assistant turn. The video
    itself is passed to the processor separately; here it is only the ``{"type": "video"}``
    placeholder that the chat template turns into ``<|vision_start|><|video_pad|><|vision_end|>``.
    """
    msgs: list[dict] = []
    if system is not None:
        msgs.append({"role": "system", "content": [{"type": "text", "text": system}]})
    text = instruction or _instruction_of(schema)
    msgs.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]})
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


_instruction_of = instruction


def score_prefix(dimension: str, schema: RatingSchema | str | None = None) -> str:
    """What precedes the level string in a score line: ``score_prefix("clarity_quality") ==
    "Clarity Quality: "``; ``score_prefix(k, schema) + schema.string(v) == score_line(k, v, schema)``.

    Not a token boundary for word levels: Qwen2's pre-tokenizer joins the space to a following word
    (``"Overall Quality: good"`` ends in the token ``" good"``, while ``"Overall Quality: "`` ends in
    ``" "``); digits stay apart (``" "``, ``"1"``, ``"0"``). To score levels by tokens use
    :func:`level_context`, which splits where every such tokenizer has a boundary."""
    schema = rating.resolve(schema)
    return f"{schema.name_of(dimension)}: "


def level_context(dimension: str, schema: RatingSchema | str | None = None) -> tuple[str, tuple[str, ...]]:
    """The score line split at a token boundary, for the level scorer: ``(context, continuations)``
    with ``context + continuations[i] == score_line(dimension, values[i])``.

    ``context`` is ``"Name:"`` and ``continuations[i]`` is ``" " + strings[i]`` (``" 3.5"``,
    ``" good"``, ``" 10"``). The colon is a pre-token of its own in byte-level BPE tokenizers of the
    Qwen2 kind (the project's tiny one and Qwen2.5's), so ``tokens(context + c) == tokens(context) +
    tokens of c in context``, for words too (``" good"`` is one token there); the K continuations'
    token sequences are what the one-pass level scorer compares (``" 1"`` is a prefix of ``" 10"``)."""
    schema = rating.resolve(schema)
    return f"{schema.name_of(dimension)}:", tuple(" " + s for s in schema.strings)


def score_line(dimension: str, score: float, schema: RatingSchema | str | None = None) -> str:
    """``score_line("clarity_quality", 3.5) == "Clarity Quality: 3.5"``; on Q-Align's words
    ``score_line("overall_quality", 4, schema=QALIGN5) == "Overall Quality: good"``.

    ``score`` must be one of the schema's level values (raises ``ValueError`` "not on the grid")."""
    schema = rating.resolve(schema)
    key = schema.key_of(dimension)
    try:
        value = float(score)
    except (TypeError, ValueError):
        value = float("nan")
    if not schema.is_on_grid(value):
        raise ValueError(f"score {score!r} for {key} is not on the grid {list(schema.strings)} of the "
                         f"{schema.name!r} rating schema; snap() it first")
    return score_prefix(key, schema) + schema.string(value)


def _is_absent(v) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN
    except (TypeError, ValueError):
        return False


def format_answer(scores: Mapping[str, float], rationales: Mapping[str, str] | str | None = None,
                  schema: RatingSchema | str | None = None, allow_missing: bool = False) -> str:
    """The strict answer: rationale paragraph(s), a blank line, then one score line per dimension
    in the schema's order.

    ``scores`` maps dimension keys (or display names) to level values. Every dimension is required
    unless ``allow_missing=True``, which leaves out the lines of dimensions absent from ``scores``
    or ``None``/NaN there (a clip without that label); otherwise raises ``ValueError`` naming them.
    ``rationales`` is one text, a dict of per-dimension texts (written as one paragraph per
    dimension in the schema's order, missing ones skipped) or ``None`` (scores only).
    """
    schema = rating.resolve(schema)
    by_key = {schema.key_of(k): v for k, v in scores.items()}
    missing = [k for k in schema.keys if k not in by_key or _is_absent(by_key[k])]
    if missing and not allow_missing:
        raise ValueError(f"format_answer: scores for {missing} are missing (or NaN); all {_count(schema.n_dims)} "
                         "dimensions are required (allow_missing=True leaves their lines out)")
    present = [k for k in schema.keys if k not in missing]
    if not present:
        raise ValueError("format_answer: no dimension has a score; there is no answer to write")
    lines = [score_line(k, by_key[k], schema) for k in present]
    if isinstance(rationales, Mapping):
        rk = {schema.key_of(k): str(v).strip() for k, v in rationales.items()}
        text = "\n".join(rk[k] for k in schema.keys if rk.get(k))
    else:
        text = (rationales or "").strip()
    block = "\n".join(lines)
    return f"{text}\n\n{block}" if text else block


_MD = r"(?:\*\*|__|\*)?"  # optional markdown emphasis
_NUM = r"\d+(?:\.\d+)?"
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
#: the text right after a dimension name that gave no level (quoted in the reason on word schemas).
_WORD_AFTER_RE = re.compile(r"[^\s\"'*|,;.:{}()\[\]<>]+")
#: what may follow a level word: a space, the end, or punctuation ("good.", "good+" is no "good"; "good-ish"
#: is checked after, as it may start a range "fair-good").
_WORD_END = r"(?=[\s.,;:!?()\[\]{}<>|*_\"'`/\\~–—-]|$)(?!\.\d)"
#: a level word followed by another word ("poor lighting"): prose, not a score.
_PROSE_RE = re.compile(r"[ \t]+[^\W\d_][^\s\"'*|,;.:{}()\[\]<>]*")


def _norm_name(name: str) -> str:
    return re.sub(r"[ _]+", " ", name.strip()).lower()


@dataclass(frozen=True)
class _Patterns:
    """The compiled expressions of one schema (built once per schema, :func:`_patterns`)."""

    score: re.Pattern
    strict: re.Pattern
    block: re.Pattern
    line: re.Pattern
    key_of: dict
    words: bool
    word_range: re.Pattern | None


@lru_cache(maxsize=32)
def _patterns(schema: RatingSchema) -> _Patterns:
    name_alts = sorted([re.escape(n).replace(r"\ ", r"[ _]+") for n in schema.names]
                       + [re.escape(k) for k in schema.keys], key=len, reverse=True)
    words = _is_word_schema(schema)
    if words:
        word_alts = "|".join(re.escape(s).replace(r"\ ", r"[ \t]+")
                             for s in sorted(schema.strings, key=len, reverse=True))
        value = r"(?:(?P<word>(?:" + word_alts + r"))" + _WORD_END + r"|(?P<num>[+-]?" + _NUM + r"))?"
        word_range = re.compile(r"[ \t]*(?:[-–—~/]|to\b|or\b)[ \t]*(?:" + word_alts + r")(?!\w)", re.IGNORECASE)
    else:
        value = r"(?:(?P<num>[+-]?" + _NUM + r"))?"
        word_range = None
    #: name (optionally "... Score"), a closing quote (JSON), an optional label in brackets ("(1-5)"),
    #: the separator (":", "=", or a table bar "|"), a nested JSON {"score": ...} opening or a quote,
    #: then (optionally) a number or level word and what follows it (checked in :func:`_read_number`).
    score = re.compile(
        r"(?P<name>" + "|".join(name_alts) + r")(?:[ _]+(?:score|rating))?[\"']?"
        r"[ \t]*" + _MD + r"[ \t]*(?:[(\[](?P<label>[^)\]\n]{0,40})[)\]][ \t]*" + _MD + r")?[ \t]*[\"']?"
        r"[ \t]*[:=：|][ \t]*" + _MD + r"[ \t]*"
        r"(?:\{\s*[\"']?(?:score|rating|value)[\"']?\s*:\s*)?[\"']?[ \t]*" + value,
        re.IGNORECASE,
    )
    levels_alt = "|".join(re.escape(s) for s in schema.strings)
    strict = re.compile(
        r"(?:(?P<rationale>.*\S)\n\n)?" + r"\n".join(
            re.escape(n) + r": (?:" + levels_alt + r")" for n in schema.names),
        re.DOTALL,
    )
    line = re.compile(r"(?P<name>" + "|".join(re.escape(n) for n in schema.names) + r"): (?:" + levels_alt + r")")
    body = r"(?:" + "|".join(re.escape(n) for n in schema.names) + r"): (?:" + levels_alt + r")"
    block = re.compile(r"(?:(?P<rationale>.*\S)\n\n)?(?P<block>(?:" + body + r"\n)*" + body + r")", re.DOTALL)
    key_of = {}
    for d in schema.dimensions:
        key_of[_norm_name(d.key)] = d.key
        key_of[_norm_name(d.name)] = d.key
    return _Patterns(score=score, strict=strict, block=block, line=line, key_of=key_of, words=words,
                     word_range=word_range)


@dataclass
class ParseResult:
    """What :func:`parse_answer` read, per dimension key of the schema.

    ``scores[k]`` is a level value or ``None``; ``status[k]`` is ``ok``/``missing``/``unparsable``;
    ``reason[k]`` why a dimension is not ``ok`` (``None`` when it is); ``raw[k]`` the matched text
    (``"3.50/5"``) or ``None``; ``raw_value[k]`` the number as written (the level value of a word);
    ``off_grid[k]`` whether it was snapped; ``rescaled[k]`` whether it was mapped from another scale
    (``rescale=True`` only); ``as_number[k]`` whether a word schema's score was written as a number
    (always ``False`` on numeric schemas); ``spans[k]`` the character span of the number or word in
    the text (used to find the score tokens); ``n_matches[k]`` how many score matches the dimension
    had; ``rationale`` the text before the first counted score match; ``schema`` the schema read
    with (``None``: the paper's).
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
    as_number: dict[str, bool] = field(default_factory=dict)
    schema: RatingSchema | None = field(default=None, repr=False, compare=False)

    @property
    def keys(self) -> tuple[str, ...]:
        """The schema's dimension keys, in its order."""
        return rating.resolve(self.schema).keys

    @property
    def ok(self) -> bool:
        """True when every dimension of the schema parsed."""
        return all(self.status[k] == STATUS_OK for k in self.keys)

    @property
    def failed(self) -> list[str]:
        """Keys of the dimensions that did not parse, in the schema's order."""
        return [k for k in self.keys if self.status[k] != STATUS_OK]


@dataclass
class _Read:
    """One score match read: value on the schema's scale (or None), status, reason, raw text, flags."""

    value: float | None
    status: str
    reason: str | None
    raw: str
    raw_value: float | None = None
    span: tuple[int, int] | None = None
    off_grid: bool = False
    rescaled: bool = False
    as_number: bool = False
    #: the match wrote a value (a number, or a level word that ends the value): a later match without
    #: one does not undo it (module docstring)
    has_value: bool = True


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


def _is_own_scale(scale: tuple[float | None, float], schema: RatingSchema) -> bool:
    """The schema's range ``lo-hi`` (1-5 for the paper), or a bare top of ``hi`` ("out of 5",
    ``3.5/5``; ``7/10`` on a 1-10 schema); "0-5" on the paper's scale is another scale."""
    return scale in ((schema.lo, schema.hi), (None, schema.hi))


def _read_number(m: re.Match, text: str, rescale: bool, schema: RatingSchema) -> _Read:
    """Read the number of a score match and what follows it (see the module docstring's rules)."""
    num = m.group("num")
    scale_text = f"{schema.lo:g}-{schema.hi:g}"
    if num is None:
        return _Read(None, STATUS_UNPARSABLE, "no number after the dimension name", m.group(0).strip(),
                     has_value=False)
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
        return _Read(None, STATUS_UNPARSABLE, f"a percentage, not a {scale_text} score", num + "%", value, span)
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
    if scale is not None and not _is_own_scale(scale, schema):
        lo, hi = scale[0] or 0.0, scale[1]
        if not rescale or hi <= lo:
            return _Read(None, STATUS_UNPARSABLE, f"score on another scale ({raw.strip()}), not {scale_text}",
                         raw, value, span)
        if not lo <= value <= hi:
            return _Read(None, STATUS_UNPARSABLE, f"{raw.strip()} is outside [{lo:g}, {hi:g}]", raw, value, span)
        value, rescaled = schema.lo + schema.span * (value - lo) / (hi - lo), True
    if not (schema.lo <= value <= schema.hi):
        return _Read(None, STATUS_UNPARSABLE, f"{num} is outside [{schema.lo:g}, {schema.hi:g}]", raw, float(num), span)
    return _Read(schema.snap(value), STATUS_OK, None, raw, float(num), span,
                 off_grid=not schema.is_on_grid(value), rescaled=rescaled)


def _read_value(m: re.Match, text: str, rescale: bool, schema: RatingSchema, pat: _Patterns) -> _Read:
    """Read the level of a score match: a level word (word schemas) or a number."""
    word = m.group("word") if pat.words else None
    if word is not None:
        span = (m.start("word"), m.end("word"))
        value = schema.value_of_string(re.sub(r"[ \t]+", " ", word))
        rng = pat.word_range.match(text, span[1])
        if rng:
            return _Read(None, STATUS_UNPARSABLE, "a range, not one score", text[span[0]: rng.end()], value, span)
        runon = re.match(r"-\w[^\s\"'*|,;.:{}()\[\]<>]*", text[span[1]:])
        if runon:  # "good-ish"
            return _Read(None, STATUS_UNPARSABLE, f"{word + runon.group(0)!r} is not one of the levels "
                         f"{', '.join(schema.strings)}", word + runon.group(0), has_value=False)
        prose = _PROSE_RE.match(text, span[1])
        if prose:  # "poor lighting": a sentence, not a score
            return _Read(None, STATUS_UNPARSABLE, f"the level word {word!r} is followed by more words "
                         f"({word + prose.group(0)!r}); write the level alone", word + prose.group(0),
                         has_value=False)
        return _Read(value, STATUS_OK, None, word, value, span)
    if pat.words and m.group("num") is None:
        after = _WORD_AFTER_RE.match(text, m.end())
        levels_text = ", ".join(schema.strings)
        if after is None:
            return _Read(None, STATUS_UNPARSABLE, f"no level after the dimension name (one of {levels_text})",
                         m.group(0).strip(), has_value=False)
        return _Read(None, STATUS_UNPARSABLE, f"{after.group(0)!r} is not one of the levels {levels_text}",
                     m.group(0).strip() + after.group(0), has_value=False)
    r = _read_number(m, text, rescale, schema)
    r.as_number = pat.words and r.status == STATUS_OK
    return r




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


def parse_answer(text: str, rescale: bool = False, schema: RatingSchema | str | None = None) -> ParseResult:
    """Read the scores of every dimension of the schema from a model answer; see the module
    docstring for the rules (per schema kind).

    ``rescale=True`` (opt-in) maps a score written on another scale (``x/N``, ``x out of N``,
    ``x (on a lo-hi scale)``, a ``Name (lo-hi):`` label) linearly onto the schema's [lo, hi] and
    flags it in ``rescaled``; by default it is unparsable. Scores are keyed by the schema's keys.
    Spans index ``text`` as given."""
    schema = rating.resolve(schema)
    pat = _patterns(schema)
    res = ParseResult(text=text, schema=schema)
    for k in schema.keys:
        res.scores[k], res.status[k], res.raw[k], res.raw_value[k] = None, STATUS_MISSING, None, None
        res.off_grid[k], res.rescaled[k], res.spans[k], res.n_matches[k] = False, False, None, 0
        res.reason[k], res.as_number[k] = "the dimension is never named with a score", False
    thinks = _think_spans(text)
    visible = list(text)
    for a, b in thinks:  # blanked, not cut, so indices still point into ``text``
        visible[a:b] = [c if c == "\n" else " " for c in text[a:b]]
    norm, where = _normalise("".join(visible))
    counted: dict[str, int] = {}  # key -> start of the match that counts (the last one), in ``text``
    for m in pat.score.finditer(norm):
        key = pat.key_of[_norm_name(m.group("name"))]
        res.n_matches[key] += 1
        r = _read_value(m, norm, rescale, schema, pat)
        if not r.has_value and res.raw_value[key] is not None:
            continue  # "Motion Quality: smooth" after its score (a JSON "reason", a closing remark)
        counted[key] = where[m.start()]
        span = None if r.span is None else (where[r.span[0]], where[r.span[1] - 1] + 1)
        res.scores[key], res.status[key], res.reason[key], res.raw[key] = r.value, r.status, r.reason, r.raw
        res.raw_value[key], res.spans[key], res.off_grid[key], res.rescaled[key] = r.raw_value, span, r.off_grid, r.rescaled
        res.as_number[key] = r.as_number
    for a, b in thinks:
        inner = _normalise(text[a:b])[0]
        for m in pat.score.finditer(inner):
            key = pat.key_of[_norm_name(m.group("name"))]
            if res.status[key] == STATUS_MISSING and _read_value(m, inner, rescale, schema, pat).has_value:
                res.reason[key] = ("scored only inside a <think> block (the model's reasoning), "
                                   "not in the answer after it")
    before = "".join(c for i, c in enumerate(text[:min(counted.values()) if counted else len(text)])
                     if not any(a <= i < b for a, b in thinks))
    res.rationale = _rationale_of(before) if counted else before.strip()
    return res


def check_format(text: str, schema: RatingSchema | str | None = None, allow_missing: bool = False) -> bool:
    """True when ``text`` is exactly the strict format of :func:`format_answer` (the format reward):
    an optional rationale, a blank line, then ``Name: <level string>`` for every dimension in the
    schema's order, each level exactly one of the schema's strings (case as in the schema).

    ``allow_missing=True`` also accepts answers that leave out some dimensions' lines (at least one
    line, the rest in order), as :func:`format_answer` writes them for clips without those labels."""
    pat = _patterns(rating.resolve(schema))
    if not allow_missing:
        return pat.strict.fullmatch(text) is not None
    m = pat.block.fullmatch(text)
    if m is None:
        return False
    names = rating.resolve(schema).names
    order = [names.index(pat.line.fullmatch(x).group("name")) for x in m.group("block").split("\n")]
    return all(b > a for a, b in zip(order, order[1:]))


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
Human score: {score_text}. The score scale is {scale}.
Sub-attributes the raters marked: {tags}.
{comment}
Write two or three sentences in English that:
1. describe what in the video leads to this score, mentioning each marked sub-attribute;
2. do not mention sub-attributes that were not marked, and do not invent details you were not given;
3. end with the sentence "Overall, the {name_lower} is {keyword_lower}."
Output only the rationale text, with no heading, list or score line."""


def _verdict(schema: RatingSchema, value: float) -> str:
    """What the closing sentence says of a level: its keyword in lower case (``excellent``), or
    ``rated 7 out of 10`` when the keyword is the level's number."""
    kw = schema.keyword(value)
    if rating._is_number_text(kw):
        return f"rated {kw} out of {schema.strings[-1]}"
    return kw.lower()


def _tag_text(tag: str) -> str:
    return TAG_TEXT.get(tag, tag.replace("_", " "))


def rationale_prompt(dimension: str, score: float, tags: list[str] | tuple[str, ...] = (),
                     comment: str | None = None, schema: RatingSchema | str | None = None) -> str:
    """A prompt to send to any LLM to expand a human score + tags into a rationale.

    Follows the structure of the paper's rationale-synthesis prompts (Figs. 3-6): a role, the
    dimension's definition, the human score with its evaluation keyword, the ticked sub-attribute
    tags, and fixed output rules ending in the keyword sentence. Unknown tags raise (the
    dimension's own tags on another schema), and so does a score off the schema's grid.

    On another schema the definition is the dimension's description (else the paper's definition of
    a dimension with that key, else "the <name> of the video"), the score is written
    ``7 out of 10`` (``good`` on a word schema) with its keyword when it says more than the string,
    and the scale lists the levels.
    """
    schema = rating.resolve(schema)
    if schema.is_paper:
        return _paper_rationale_prompt(dimension, score, tags, comment)
    key = schema.key_of(dimension)
    dim = schema.dimension(key)
    bad = [t for t in tags if t not in dim.tags]
    if bad:
        raise ValueError(f"tags {bad} are not valid for {key}; valid: {list(dim.tags)}")
    value = float(score)
    if not schema.is_on_grid(value):
        raise ValueError(f"score {score} is not on the grid {list(schema.strings)} of the {schema.name!r} "
                         "rating schema; snap() it first")
    i = schema.index(value)
    string, kw = schema.strings[i], schema.keywords[i]
    same = kw.strip().lower() == string.lower()
    score_text = string if _is_word_schema(schema) else f"{string} out of {schema.strings[-1]}"
    if not same:
        score_text += f" ({kw})"
    name = dim.name
    return _RATIONALE_TEMPLATE.format(
        name=name, name_lower=name.lower(),
        definition=dim.description or DIMENSION_DEFINITIONS.get(key) or f"the {name.lower()} of the video",
        score_text=score_text, keyword_lower=_verdict(schema, value),
        scale=", ".join(s if w.strip().lower() == s.lower() else f"{s} {w}"
                        for s, w in zip(schema.strings, schema.keywords)),
        tags=", ".join(_tag_text(t) for t in tags) if tags else "none",
        comment=f"Rater comment: {comment.strip()}\n" if comment and comment.strip() else "",
    )


def _paper_rationale_prompt(dimension: str, score: float, tags: list[str] | tuple[str, ...] = (),
                            comment: str | None = None) -> str:
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
        score_text=f"{levels.level_string(score)} out of 5.0 ({kw})", keyword_lower=kw.lower(),
        scale=", ".join(f"{levels.level_string(v)} {w}" for v, w in KEYWORDS.items()),
        tags=", ".join(TAG_TEXT[t] for t in tags) if tags else "none",
        comment=f"Rater comment: {comment.strip()}\n" if comment and comment.strip() else "",
    )


def template_rationale(dimension: str, score: float, tags: list[str] | tuple[str, ...] = (),
                       schema: RatingSchema | str | None = None) -> str:
    """A deterministic, LLM-free rationale in the same shape (for the embedded sample data and tests).

    ``score`` may be off the grid (the keyword of the nearest level is used); on another schema the
    closing sentence uses the schema's keyword (``rated 7 out of 10`` when the keyword is a number)."""
    schema = rating.resolve(schema)
    problems = ", ".join(TAG_TEXT[t] if schema.is_paper else _tag_text(t) for t in tags)
    first = f"The video shows {problems}." if problems else "No specific problems were noted."
    if schema.is_paper:
        key = levels.dimension_key(dimension)
        name = NAME_OF[key]
        verdict = KEYWORDS[levels.snap_to_grid(score)].lower()
    else:
        name = schema.name_of(dimension)
        verdict = _verdict(schema, float(score))
    return f"{first} Overall, the {name.lower()} is {verdict}."
