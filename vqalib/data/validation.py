"""Validation of a dataset's tables: one checker per table, one function per rule.

:func:`check_tables` is what :func:`vqalib.data.dataset.validate` (and so ``load_dataset`` and
``from_ratings_csv``) runs. Each checker walks its table in file order and applies its rules in a
fixed order; the first rule a row breaks rejects it with one :class:`Issue` naming the file, the
line, the field and the fix, and the later rules are not asked. A rule is a function
``rule(row, table) -> Problem | None``.

=============  =================================================================================
table          rules, in order (error class)
=============  =================================================================================
videos         id given (``missing_field``), id unique (``duplicate_video``), path given
               (``missing_field``), duration/fps/width/height positive (``bad_value``), split
               known (``bad_value``), file exists (``missing_video_file``)
ratings        video listed (``unknown_video``), video accepted (``video_rejected``), rater given
               (``missing_field``), phase known (``bad_phase``), dimension known
               (``unknown_dimension``), score a number (``bad_value``), in the schema's
               ``[lo, hi]`` (``out_of_range``), a level of the schema (``off_grid``; for a MOS
               row instead: ``std`` empty or a number >= 0, ``bad_value``), tags of the dimension
               (``unknown_tag``), not a MOS row beside per-rater rows of the same (video, phase,
               dimension) (``mixed_mos``), one rating per (video, rater, phase, dimension)
               (``duplicate``)
min raters     per accepted video and rated dimension, at least ``min_raters`` raters in the
               chosen phase (``too_few_raters`` on the video, ``video_rejected`` on each rating);
               a MOS row counts as enough; with ``allow_missing`` a dimension a video has no
               rating for at all is a missing label (counted by
               :func:`vqalib.data.dataset.label_coverage`), not an error
rationales     video listed, video accepted, dimension known, text given (``empty_rationale``),
               one per (video, dimension) (``duplicate_rationale``)
=============  =================================================================================

The dimensions, the levels, the range and the tags come from the dataset's rating schema
(:class:`vqalib.schema.rating.RatingSchema`; ``None`` is the paper's five dimensions x nine levels,
whose messages are those of before schemas existed).

Two kinds of rating rows:

* **per-rater** rows (any ``rater`` but ``mos``): the score must be one of the schema's K levels;
* **MOS** rows (``rater`` = :data:`MOS_RATER`, phase ``final``): one per (video, dimension), the mean
  opinion score on the schema's scale (in ``[lo, hi]``, not snapped), with an optional ``std`` column
  (the raters' standard deviation on the schema's scale). This is how a public MOS label file
  becomes a training dataset (:func:`vqalib.data.dataset.dataset_from_label_file`).

A table without its required columns raises :class:`DataValidationError` at once (nothing else
can be checked). ``bad_json`` issues come from :func:`vqalib.data.dataset.read_table`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from vqalib.schema import rating as RS
from vqalib.schema.rating import RatingSchema

VIDEO_COLUMNS = ("video_id", "path", "duration", "fps", "width", "height", "category", "source", "split")
RATING_COLUMNS = ("video_id", "rater", "phase", "dimension", "score", "tags", "comment")
RATIONALE_COLUMNS = ("video_id", "dimension", "rationale")
PHASES = ("pilot", "final")
SPLITS = ("train", "test", "val")
#: The rater id of a MOS row (one mean opinion score per video and dimension, not snapped; see the module docstring).
MOS_RATER = "mos"

_NUMBER_COLUMNS = ("duration", "fps", "width", "height")


# ----------------------------------------------------------------------------------------------
# the report


@dataclass
class Issue:
    """One rejected row (or video) and why."""

    kind: str  # error class, e.g. 'off_grid', 'duplicate'
    file: str
    line: int | None  # 1-based line (JSONL) or row (Parquet / CSV data row)
    field: str
    message: str
    fix: str
    video_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line is not None else self.file
        return f"{where}: field '{self.field}': {self.message}. Fix: {self.fix}"


@dataclass
class ValidationReport:
    """Everything validation rejected. ``report.ok`` is True when nothing was rejected."""

    issues: list[Issue] = field(default_factory=list)
    n_rows: dict[str, int] = field(default_factory=dict)  # rows read per table
    n_kept: dict[str, int] = field(default_factory=dict)  # rows kept per table

    @property
    def ok(self) -> bool:
        return not self.issues

    def counts(self) -> dict[str, int]:
        """Number of issues per error class."""
        return dict(Counter(i.kind for i in self.issues))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([i.__dict__ for i in self.issues],
                            columns=["kind", "file", "line", "field", "message", "fix", "video_id"])

    def summary(self, max_lines: int = 20) -> str:
        head = (f"{len(self.issues)} problem(s): " + ", ".join(f"{k}={v}" for k, v in sorted(self.counts().items()))
                if self.issues else "no problems")
        rows = "; ".join(f"{t}: kept {self.n_kept.get(t, 0)} of {n}" for t, n in self.n_rows.items())
        lines = [head + (f" ({rows})" if rows else "")]
        lines += [f"  {i}" for i in self.issues[:max_lines]]
        if len(self.issues) > max_lines:
            lines.append(f"  ... and {len(self.issues) - max_lines} more (report.to_frame() lists all)")
        return "\n".join(lines)

    __str__ = summary


class DataValidationError(ValueError):
    """Raised in strict mode; ``.report`` holds every problem found."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__("dataset failed validation: " + report.summary())


def is_blank(v: Any) -> bool:
    """True for a cell with no value: ``None``, NaN or text of only whitespace."""
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


# ----------------------------------------------------------------------------------------------
# rows, tables and rules


@dataclass
class Problem:
    """What a rule found wrong with a row: the :class:`Issue` without its file, line and video."""

    kind: str
    field: str
    message: str
    fix: str


@dataclass
class Row:
    """One record under check; rules that parse a value (dimension, score, tags) store it here."""

    rec: dict[str, Any]
    vid: str | None  # the video id as text (None: the videos table's empty id)
    dim: str = ""
    score: float = math.nan
    tags: list[str] = field(default_factory=list)

    @property
    def line(self) -> Any:
        return self.rec["_line"]


@dataclass
class Table:
    """What the rules of one table need: its file name, the videos file, settings and what was seen."""

    name: str  # 'videos', 'ratings' or 'rationales'
    file: str
    videos_file: str
    root: Path = Path(".")
    check_files: bool = True
    known_ids: set[str] = field(default_factory=set)  # every id in the videos table (as text)
    good_videos: dict[str, int] = field(default_factory=dict)  # accepted video id -> its line
    seen: dict[tuple, int] = field(default_factory=dict)  # key of a kept row -> its line (duplicates)
    schema: RatingSchema = RS.PAPER
    #: (video, phase, dimension) -> (is a MOS row, line) of the first kept rating (MOS and per-rater rows never mix)
    kinds: dict[tuple, tuple[bool, int]] = field(default_factory=dict)


Rule = Callable[[Row, Table], "Problem | None"]


def _first_problem(rules: Sequence[Rule], row: Row, table: Table) -> Problem | None:
    for rule in rules:
        problem = rule(row, table)
        if problem is not None:
            return problem
    return None


def _rows_passing(df: pd.DataFrame, rules: Sequence[Rule], t: Table, out: _Issues) -> Iterator[Row]:
    """Each record of ``df`` as a :class:`Row`, in file order; a row that breaks a rule is reported and skipped.

    Lazy: what the caller records about a kept row (``t.seen``, ``t.good_videos``) is there for the next row's rules.
    """
    for rec in df.to_dict(orient="records"):
        vid = rec.get("video_id")
        row = Row(rec, None if t.name == "videos" and is_blank(vid) else str(vid))
        problem = _first_problem(rules, row, t)
        if problem is None:
            yield row
        else:
            out.reject(problem, t, row)


class _Issues:
    """Appends :class:`Issue` objects to the caller's list (the report's list: issues already read stay first)."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues

    def add(self, kind: str, file: str, line: Any, fld: str, msg: str, fix: str, vid: Any = None) -> None:
        self.issues.append(Issue(kind, file, None if line is None else int(line), fld, msg, fix,
                                 None if vid is None else str(vid)))

    def reject(self, problem: Problem, table: Table, row: Row) -> None:
        self.add(problem.kind, table.file, row.line, problem.field, problem.message, problem.fix, row.vid)


def _require_columns(df: pd.DataFrame, required: Sequence[str], file: str, table: str, schema: Sequence[str]) -> None:
    for col in required:
        if col not in df.columns:
            raise DataValidationError(ValidationReport([Issue(
                "missing_field", file, None, col, f"the {table} table has no '{col}' column",
                f"add a '{col}' column (columns: {', '.join(schema)})")]))


def _with_schema(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """An empty table gets the schema's columns (so the checks report what is missing); every table a ``_line``."""
    if len(df) == 0:
        df = pd.DataFrame(columns=[*columns, "_line"])
    if "_line" not in df.columns:
        df["_line"] = np.arange(1, len(df) + 1)
    return df


# ---- videos ----


def _video_id_given(row: Row, t: Table) -> Problem | None:
    if row.vid is None:
        return Problem("missing_field", "video_id", "empty video_id", "give every video a unique id")
    return None


def _video_id_unique(row: Row, t: Table) -> Problem | None:
    if row.vid in t.good_videos:
        return Problem("duplicate_video", "video_id",
                       f"video_id {row.vid!r} already used on line {t.good_videos[row.vid]}", "give every video a unique id")
    return None


def _path_given(row: Row, t: Table) -> Problem | None:
    if is_blank(row.rec.get("path")):
        return Problem("missing_field", "path", f"video {row.vid!r} has no path",
                       "set path (relative to the dataset folder)")
    return None


def _numbers_positive(row: Row, t: Table) -> Problem | None:
    for col in _NUMBER_COLUMNS:
        v = row.rec.get(col)
        if is_blank(v):
            continue
        try:
            if float(v) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            return Problem("bad_value", col, f"{col}={v!r} is not a positive number",
                           f"write {col} as a positive number or leave it empty")
    return None


def _split_known(row: Row, t: Table) -> Problem | None:
    split = row.rec.get("split")
    if not is_blank(split) and str(split) not in SPLITS:
        return Problem("bad_value", "split", f"split {split!r} is not one of {SPLITS}",
                       "use 'train', 'val' or 'test' (or leave empty and call assign_splits)")
    return None


def _file_exists(row: Row, t: Table) -> Problem | None:
    p = Path(str(row.rec["path"]))
    full = p if p.is_absolute() else t.root / p
    if t.check_files and not full.is_file():
        return Problem("missing_video_file", "path", f"video file {full} does not exist",
                       "fix the path (relative to the dataset folder) or remove the video")
    return None


VIDEO_RULES: tuple[Rule, ...] = (_video_id_given, _video_id_unique, _path_given, _numbers_positive, _split_known,
                                 _file_exists)


def check_videos(videos: pd.DataFrame, t: Table, out: _Issues) -> list[dict]:
    """The accepted rows of the videos table (``t.good_videos`` gets their id -> line); optional columns filled."""
    _require_columns(videos, ("video_id", "path"), t.file, "videos", VIDEO_COLUMNS)
    for col in VIDEO_COLUMNS:
        if col not in videos.columns:
            videos[col] = np.nan if col in _NUMBER_COLUMNS else ""
    kept = []
    for row in _rows_passing(videos, VIDEO_RULES, t, out):
        t.good_videos[row.vid] = row.line
        kept.append(row.rec)
    return kept


# ---- ratings and rationales: the video, the dimension ----


def _video_listed(row: Row, t: Table) -> Problem | None:
    # ratings: an empty id is never listed; rationales compare the id as text (both as they always were)
    blank = t.name == "ratings" and is_blank(row.rec.get("video_id"))
    if blank or row.vid not in t.known_ids:
        return Problem("unknown_video", "video_id", f"video_id {row.rec.get('video_id')!r} is not in {t.videos_file}",
                       f"add the video to {t.videos_file} or fix the id")
    return None


def _video_accepted(row: Row, t: Table) -> Problem | None:
    if row.vid not in t.good_videos:
        see = " (see its issue)" if t.name == "ratings" else ""
        return Problem("video_rejected", "video_id", f"video {row.vid!r} was rejected in {t.videos_file}{see}",
                       f"fix the video's row in {t.videos_file}")
    return None


def _dimension_known(row: Row, t: Table) -> Problem | None:
    """Sets ``row.dim`` to the dimension's key (display names are accepted)."""
    try:
        row.dim = t.schema.key_of(row.rec.get("dimension"))
    except ValueError:
        extra = "" if t.schema.is_paper else f" (or the display names {list(t.schema.names)}) of the {t.schema.name!r} rating schema"
        return Problem("unknown_dimension", "dimension", f"unknown dimension {row.rec.get('dimension')!r}",
                       f"use one of {list(t.schema.keys)}{extra}")
    return None


def _is_mos(row: Row) -> bool:
    return str(row.rec.get("rater")).strip() == MOS_RATER


def _scale_text(s: RatingSchema) -> tuple[str, str]:
    """The ends of the schema's scale as messages write them (``1.0``, ``5.0`` for the paper's)."""
    if s.numeric_strings:
        return s.strings[0], s.strings[-1]
    return f"{s.lo:g}", f"{s.hi:g}"


def _grid_text(s: RatingSchema) -> str:
    """``the 0.5 grid (1.0-5.0)`` (the paper's), ``the 1 grid (1-10)``, or the list of levels."""
    lo, hi = _scale_text(s)
    return f"the {s.step:g} grid ({lo}-{hi})" if s.step is not None else f"one of the levels {[f'{v:g}' for v in s.values]}"


# ---- ratings ----


def _rater_given(row: Row, t: Table) -> Problem | None:
    if is_blank(row.rec.get("rater")):
        return Problem("missing_field", "rater", "empty rater id", "give every rating a rater id")
    return None


def _phase_known(row: Row, t: Table) -> Problem | None:
    phase = row.rec.get("phase")
    if phase not in PHASES:
        return Problem("bad_phase", "phase", f"phase {phase!r} is not 'pilot' or 'final'",
                       "set phase to 'pilot' or 'final'")
    if _is_mos(row) and phase != "final":
        return Problem("bad_phase", "phase", f"a MOS row (rater {MOS_RATER!r}) has phase {phase!r}",
                       "set phase to 'final' (a mean opinion score is the final label)")
    return None


def _score_is_number(row: Row, t: Table) -> Problem | None:
    """Sets ``row.score``."""
    try:
        row.score = float(row.rec.get("score"))
        if math.isnan(row.score):
            raise ValueError
    except (TypeError, ValueError):
        s = t.schema
        lo, hi = _scale_text(s)
        grid = f"on the grid {lo}-{hi} (steps of {s.step:g})" if s.step is not None else f"one of {list(s.strings)}"
        return Problem("bad_value", "score", f"score {row.rec.get('score')!r} is not a number",
                       f"write the score as a number {grid}")
    return None


def _score_in_range(row: Row, t: Table) -> Problem | None:
    s = t.schema
    if not (s.lo <= row.score <= s.hi):
        lo, hi = _scale_text(s)
        return Problem("out_of_range", "score", f"score {row.score:g} is outside {lo}-{hi}",
                       f"map the scale to {s.lo:g}-{s.hi:g} first (from_ratings_csv(scale=...) does this)")
    return None


def _score_on_grid(row: Row, t: Table) -> Problem | None:
    """A per-rater score is one of the schema's levels; a MOS row is not snapped, its ``std`` is checked instead."""
    s = t.schema
    if _is_mos(row) or "std" in row.rec:
        problem = _std_valid(row, t)
        if problem is not None or _is_mos(row):
            return problem
    if s.is_on_grid(row.score):
        return None
    snapped = s.snap(row.score)
    how = (f"levels.snap_to_grid({row.score:g}) = {snapped:.1f}" if s.is_paper
           else f"schema.snap({row.score:g}) = {snapped:g}")
    mos = "" if s.is_paper else f", or, for a mean opinion score, write it as a MOS row (rater {MOS_RATER!r})"
    return Problem("off_grid", "score", f"score {row.score:g} is not on {_grid_text(s)}",
                   f"snap it ({how}) or fix the value{mos}")


def _std_valid(row: Row, t: Table) -> Problem | None:
    """A MOS row's ``std`` (optional): a number >= 0 on the schema's scale; a per-rater row has none."""
    v = row.rec.get("std")
    if v is None or (not isinstance(v, str) and is_blank(v)):
        return None
    if not _is_mos(row):
        return Problem("bad_value", "std", f"std={v!r} on a per-rater rating (rater {row.rec.get('rater')!r})",
                       f"leave std empty: only a MOS row (rater {MOS_RATER!r}) carries the raters' standard deviation")
    try:
        x = float(v)
        if not (x >= 0 and math.isfinite(x)):
            raise ValueError
    except (TypeError, ValueError):
        return Problem("bad_value", "std", f"std={v!r} is not a number >= 0",
                       f"write the raters' standard deviation on the schema's scale ({t.schema.lo:g}-{t.schema.hi:g}) "
                       "or leave it empty")
    return None


def _tag_list(tags: Any) -> list[str]:
    """A tags cell as a list of text: a list as it is, ``"blur, noise"`` split on commas, empty -> ``[]``."""
    if not isinstance(tags, (list, tuple, np.ndarray)) and is_blank(tags):
        return []
    if isinstance(tags, str):
        return [s.strip() for s in tags.split(",") if s.strip()] if tags.strip() else []
    return [str(s) for s in tags]


def _tags_known(row: Row, t: Table) -> Problem | None:
    """Sets ``row.tags``."""
    row.tags = _tag_list(row.rec.get("tags"))
    valid = t.schema.dimension(row.dim).tags
    bad_tags = [x for x in row.tags if x not in set(valid)]
    if bad_tags:
        fix = (f"use tags from {list(valid)}" if valid else
               f"leave tags empty: {row.dim} has no tags in the {t.schema.name!r} rating schema (add them to the "
               "schema's dimension to use them)")
        return Problem("unknown_tag", "tags", f"tag(s) {bad_tags} are not tags of {row.dim}", fix)
    return None


def _rating_unique(row: Row, t: Table) -> Problem | None:
    """One rating per (video, rater, phase, dimension), and never a MOS row beside per-rater rows of one
    (video, phase, dimension)."""
    mixed = _mos_not_mixed(row, t)
    if mixed is not None:
        return mixed
    rater, phase = row.rec["rater"], row.rec.get("phase")
    key = (row.vid, str(rater), phase, row.dim)
    if key in t.seen:
        return Problem("duplicate", "rater", f"rater {rater!r} already rated {row.vid!r} / {row.dim} in the "
                       f"{phase} phase on line {t.seen[key]}", "keep one rating per (video, rater, phase, dimension)")
    return None


def _mos_not_mixed(row: Row, t: Table) -> Problem | None:
    first = t.kinds.get((row.vid, row.rec.get("phase"), row.dim))
    if first is not None and first[0] != _is_mos(row):
        what = "a MOS row" if first[0] else "per-rater ratings"
        return Problem("mixed_mos", "rater", f"{row.vid!r} / {row.dim} already has {what} (line {first[1]}); MOS "
                       "rows and per-rater ratings of one video and dimension cannot be combined",
                       f"keep either the per-rater ratings or one MOS row (rater {MOS_RATER!r})")
    return None


RATING_RULES: tuple[Rule, ...] = (_video_listed, _video_accepted, _rater_given, _phase_known, _dimension_known,
                                  _score_is_number, _score_in_range, _score_on_grid, _tags_known, _rating_unique)


def check_ratings(ratings: pd.DataFrame, t: Table, out: _Issues) -> pd.DataFrame:
    """The accepted ratings: dimension keys, float scores, tag lists, text comments; extra columns and ``_line`` kept."""
    _require_columns(ratings, ("video_id", "rater", "phase", "dimension", "score"), t.file, "ratings", RATING_COLUMNS)
    kept = []
    for row in _rows_passing(ratings, RATING_RULES, t, out):
        rec = row.rec
        t.seen[(row.vid, str(rec["rater"]), rec["phase"], row.dim)] = row.line
        t.kinds.setdefault((row.vid, rec["phase"], row.dim), (_is_mos(row), row.line))
        comment = rec.get("comment")
        kept.append({"video_id": row.vid, "rater": str(rec["rater"]), "phase": rec["phase"], "dimension": row.dim,
                     "score": row.score, "tags": row.tags, "comment": "" if is_blank(comment) else str(comment),
                     "_line": row.line, **{k: v for k, v in rec.items() if k not in RATING_COLUMNS and k != "_line"}})
    return pd.DataFrame(kept, columns=None if kept else [*RATING_COLUMNS, "_line"])


# ---- minimum raters per (video, dimension) ----


def check_min_raters(rat: pd.DataFrame, t: Table, out: _Issues, min_raters: int, phase: str,
                     ratings_file: str, schema: RatingSchema | None = None, allow_missing: bool = False) -> pd.DataFrame:
    """``rat`` without the (video, dimension) pairs that have fewer than ``min_raters`` raters in ``phase``.

    Only the dimensions some kept rating has count (a dataset may rate a subset of them); with no
    kept rating at all, every accepted video lacks raters on every dimension. Each pair is a
    ``too_few_raters`` issue on the video's line, each removed rating (both phases) a ``video_rejected``.
    A (video, dimension) with a MOS row has enough raters (the MOS is their mean). With
    ``allow_missing`` a dimension the video has no rating for is a missing label, not an issue,
    unless the video has no rating in ``phase`` at all.
    """
    schema = RS.resolve(schema)
    if min_raters <= 0:
        return rat
    ph = rat[rat["phase"] == phase] if len(rat) else rat
    counts = ph.groupby(["video_id", "dimension"])["rater"].nunique().to_dict() if len(ph) else {}
    m = ph[ph["rater"].astype(str) == MOS_RATER] if len(ph) else ph
    mos_pairs = set(zip(m["video_id"], m["dimension"])) if len(m) else set()
    rated_videos = set(ph["video_id"]) if len(ph) else set()
    present_dims = [d for d in schema.keys if d in set(rat["dimension"])] if len(rat) else list(schema.keys)
    rejected: set[tuple[str, str]] = set()
    for vid, vline in t.good_videos.items():
        for dim in present_dims:
            n = counts.get((vid, dim), 0)
            if (vid, dim) in mos_pairs or (allow_missing and n == 0 and vid in rated_videos):
                continue
            if n < min_raters:
                rejected.add((vid, dim))
                out.add("too_few_raters", t.videos_file, vline, "video_id",
                        f"video {vid!r} has {n} valid {phase}-phase rater(s) for {dim}, fewer than "
                        f"min_raters={min_raters}", "collect more ratings or lower min_raters", vid)
    if not (rejected and len(rat)):
        return rat
    drop = rat.apply(lambda r: (r["video_id"], r["dimension"]) in rejected, axis=1)
    for rec in rat[drop].to_dict(orient="records"):
        out.add("video_rejected", ratings_file, rec["_line"], "video_id",
                f"rating of {rec['video_id']!r} / {rec['dimension']} removed: too few raters for this video and "
                "dimension",
                "collect more ratings or lower min_raters", rec["video_id"])
    return rat[~drop]


# ---- rationales ----


def _rationale_given(row: Row, t: Table) -> Problem | None:
    if is_blank(row.rec.get("rationale")):
        return Problem("empty_rationale", "rationale", "empty rationale", "write the rationale text or drop the row")
    return None


def _rationale_unique(row: Row, t: Table) -> Problem | None:
    if (row.vid, row.dim) in t.seen:
        return Problem("duplicate_rationale", "dimension",
                       f"a rationale for {row.vid!r} / {row.dim} is already on line {t.seen[(row.vid, row.dim)]}",
                       "keep one rationale per (video, dimension)")
    return None


RATIONALE_RULES: tuple[Rule, ...] = (_video_listed, _video_accepted, _dimension_known, _rationale_given,
                                     _rationale_unique)


def check_rationales(rationales: pd.DataFrame, t: Table, out: _Issues) -> pd.DataFrame:
    """The accepted rationales (``video_id, dimension, rationale``)."""
    kept = []
    for row in _rows_passing(rationales, RATIONALE_RULES, t, out):
        t.seen[(row.vid, row.dim)] = row.line
        kept.append({"video_id": row.vid, "dimension": row.dim, "rationale": str(row.rec.get("rationale"))})
    return pd.DataFrame(kept, columns=list(RATIONALE_COLUMNS))


# ----------------------------------------------------------------------------------------------
# the driver


@dataclass
class CheckedTables:
    """What :func:`check_tables` kept, and the report."""

    videos: pd.DataFrame  # VIDEO_COLUMNS first, then any extra columns; no ``_line``
    ratings: pd.DataFrame  # RATING_COLUMNS (+ extra columns such as ``raw_score``); no ``_line``
    rationales: pd.DataFrame  # RATIONALE_COLUMNS
    report: ValidationReport


def check_tables(root: Path, videos: pd.DataFrame, ratings: pd.DataFrame, rationales: pd.DataFrame | None,
                 files: dict[str, str], min_raters: int, check_files: bool, min_raters_phase: str,
                 issues: list[Issue], schema: RatingSchema | None = None,
                 allow_missing: bool | None = None) -> CheckedTables:
    """Run the checkers (videos, ratings, minimum raters, rationales) and collect their issues into ``issues``.

    ``files`` names each table's file in the messages (defaults ``videos.jsonl``, ``ratings.jsonl``,
    ``rationales.jsonl``). See :func:`vqalib.data.dataset.validate` for the arguments. ``schema``:
    the dataset's rating schema (None: the paper's); ``allow_missing`` (None: True unless the schema
    is the paper's) lets a video lack a dimension (see :func:`check_min_raters`).
    """
    schema = RS.resolve(schema)
    if allow_missing is None:
        allow_missing = not schema.is_paper
    fv, fr, fx = (files.get(n, f"{n}.jsonl") for n in ("videos", "ratings", "rationales"))
    out = _Issues(issues)
    rationales = rationales if rationales is not None else pd.DataFrame(columns=list(RATIONALE_COLUMNS))
    videos = _with_schema(videos, VIDEO_COLUMNS)
    ratings = _with_schema(ratings, RATING_COLUMNS)
    rationales = _with_schema(rationales, RATIONALE_COLUMNS)
    n_rows = {"videos": len(videos), "ratings": len(ratings), "rationales": len(rationales)}

    vt = Table("videos", fv, fv, root=root, check_files=check_files)
    kept_videos = check_videos(videos, vt, out)
    known_ids = set(videos["video_id"].astype(str))
    rt = Table("ratings", fr, fv, known_ids=known_ids, good_videos=vt.good_videos, schema=schema)
    rat = check_ratings(ratings, rt, out)
    rat = check_min_raters(rat, vt, out, min_raters, min_raters_phase, fr, schema=schema, allow_missing=allow_missing)
    xt = Table("rationales", fx, fv, known_ids=known_ids, good_videos=vt.good_videos, schema=schema)
    rx = check_rationales(rationales, xt, out)

    vdf = pd.DataFrame(kept_videos)
    if len(vdf) == 0:
        vdf = pd.DataFrame(columns=list(VIDEO_COLUMNS))
    vdf = vdf[[*VIDEO_COLUMNS, *[c for c in vdf.columns if c not in VIDEO_COLUMNS and c != "_line"]]]
    vdf["video_id"] = vdf["video_id"].astype(str)
    rat = rat.drop(columns=["_line"]) if "_line" in rat.columns else rat
    rat = rat.reset_index(drop=True)
    report = ValidationReport(issues, n_rows, {"videos": len(vdf), "ratings": len(rat), "rationales": len(rx)})
    return CheckedTables(vdf.reset_index(drop=True), rat, rx, report)
