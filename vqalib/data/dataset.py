"""UltraVQA-style dataset: schema, JSONL/Parquet IO, validation, aggregation, splits, CSV adapter.

A dataset is a folder with three tables (each as ``NAME.jsonl`` or ``NAME.parquet``)::

    videos      video_id, path, duration, fps, width, height, category, source, split
    ratings     video_id, rater, phase ('pilot' | 'final'), dimension, score, tags (list[str]), comment
    rationales  video_id, dimension, rationale                    (optional table)

``path`` is relative to the folder (or absolute). ``dimension`` holds the keys of
:data:`vqalib.schema.levels.DIMENSION_KEYS` (display names such as "Motion Quality" are accepted on
input and converted). ``score`` must lie on the 9-level grid 1.0..5.0 (steps of 0.5).

Validation (``load_dataset`` / ``validate``) checks every row and names file, line, field and the
fix. ``strict=True`` raises :class:`DataValidationError` listing all problems; ``strict=False``
returns the clean data and a :class:`ValidationReport` of every rejected row. Nothing is silently
dropped: a row removed because its video was rejected is reported too.

Labels (``aggregate``): per video and dimension the mean of the valid ratings of one phase,
snapped to the grid (round half up), with the spread and a high-variance flag.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from vqalib.schema import levels as L
from vqalib.core.runs import jsonable, relative_note, resolve_path
from vqalib.data.validation import (  # noqa: F401 - the table schema and the report are re-exported here
    PHASES, RATING_COLUMNS, RATIONALE_COLUMNS, SPLITS, VIDEO_COLUMNS, DataValidationError, Issue, ValidationReport,
    check_tables, is_blank,
)

TABLES = ("videos", "ratings", "rationales")

#: A (video, dimension) label is high-variance when the sample std (ddof=1) of its ratings exceeds this.
HIGH_VARIANCE_STD = 1.0


# ----------------------------------------------------------------------------------------------
# the dataset object


@dataclass
class VQADataset:
    """Videos, ratings and rationales of one dataset; ``root`` is the folder paths are relative to."""

    root: Path
    videos: pd.DataFrame
    ratings: pd.DataFrame
    rationales: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(RATIONALE_COLUMNS)))
    info: dict[str, Any] = field(default_factory=dict)  # dataset.json when present

    def video_path(self, video_id: str) -> Path:
        """Absolute path of a video's file."""
        rows = self.videos.loc[self.videos["video_id"] == video_id, "path"]
        if rows.empty:
            raise KeyError(f"video_id {video_id!r} is not in this dataset ({len(self.videos)} videos under {self.root})")
        p = Path(str(rows.iloc[0]))
        return p if p.is_absolute() else (Path(self.root) / p).resolve()

    def split_ids(self, split: str) -> list[str]:
        """Video ids of one split (``'train'``, ``'test'``), in file order."""
        return self.videos.loc[self.videos["split"] == split, "video_id"].tolist()

    def subset(self, video_ids: Iterable[str]) -> "VQADataset":
        """A dataset restricted to some videos (all three tables filtered)."""
        keep = set(video_ids)
        return VQADataset(self.root, self.videos[self.videos.video_id.isin(keep)].reset_index(drop=True),
                          self.ratings[self.ratings.video_id.isin(keep)].reset_index(drop=True),
                          self.rationales[self.rationales.video_id.isin(keep)].reset_index(drop=True), dict(self.info))

    def __repr__(self) -> str:
        return (f"VQADataset(root={str(self.root)!r}, videos={len(self.videos)}, ratings={len(self.ratings)}, "
                f"rationales={len(self.rationales)})")


# ----------------------------------------------------------------------------------------------
# reading tables


def _table_file(folder: Path, name: str) -> Path | None:
    for ext in (".jsonl", ".parquet"):
        p = folder / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def read_table(path: str | os.PathLike, issues: list[Issue] | None = None) -> pd.DataFrame:
    """Read a JSONL or Parquet table; adds a ``_line`` column (1-based line/row number).

    A JSONL line that is not valid JSON (or not an object) is an issue of kind ``bad_json``
    (raised at once when ``issues`` is None).
    """
    path = Path(path)
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        df["_line"] = np.arange(1, len(df) + 1)
        return df
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                issue = Issue("bad_json", path.name, n, "(line)", f"not a JSON object ({exc})",
                              "write one JSON object per line")
                if issues is None:
                    raise DataValidationError(ValidationReport([issue])) from exc
                issues.append(issue)
                continue
            obj["_line"] = n
            rows.append(obj)
    return pd.DataFrame(rows)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as JSONL (one object per line) or Parquet, by the file's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = df.drop(columns=[c for c in df.columns if c == "_line"])
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            for rec in df.to_dict(orient="records"):
                fh.write(json.dumps(jsonable(rec)) + "\n")
    return path


def save_dataset(ds: VQADataset, folder: str | os.PathLike, fmt: str = "jsonl") -> Path:
    """Write a dataset's tables into ``folder`` as ``jsonl`` or ``parquet``.

    Video paths are rewritten relative to ``folder`` (so the saved dataset finds its videos from
    its new place); the video files themselves are not copied. A non-empty ``ds.info`` (for a
    :func:`from_ratings_csv` dataset: the source file, its ``scale`` and read options) is written to
    ``dataset.json``, which :func:`load_dataset` reads back. A relative ``folder`` is taken from the
    project root, as in :func:`load_dataset`.
    """
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"fmt must be 'jsonl' or 'parquet', not {fmt!r}")
    folder = resolve_path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    videos = ds.videos.copy()
    videos["path"] = [os.path.relpath(ds.video_path(v), folder.resolve()) for v in videos["video_id"]]
    for name, df in (("videos", videos), ("ratings", ds.ratings), ("rationales", ds.rationales)):
        write_table(df, folder / f"{name}.{fmt}")
    if ds.info:  # e.g. the CSV adapter's source scale, which raw-scale agreement needs (notebook 02)
        (folder / "dataset.json").write_text(json.dumps(jsonable(ds.info), indent=2) + "\n")
    return folder


# ----------------------------------------------------------------------------------------------
# loading + validation


def load_dataset(path: str | os.PathLike, strict: bool = True, min_raters: int | None = None,
                 check_files: bool | None = None, min_raters_phase: str = "final"):
    """Load and validate a dataset folder (tables as JSONL or Parquet).

    Returns the :class:`VQADataset` (``strict=True``; raises :class:`DataValidationError` on any
    problem) or ``(dataset, ValidationReport)`` with the rejected rows removed (``strict=False``).
    ``min_raters`` applies per (video, dimension) in phase ``min_raters_phase``; ``None`` takes the
    value the dataset was converted with (``min_raters`` in ``dataset.json``, written by
    :func:`save_dataset` for a :func:`from_ratings_csv` dataset), else 3. So a folder converted with
    ``min_raters=2`` loads the same way in every notebook and trainer. ``check_files`` (whether every
    video file must exist) likewise: ``None`` takes the saved choice (``check_files`` in
    ``dataset.json``; a ratings-only study converted with ``check_files=False`` stays so), else True.
    """
    root = resolve_path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist{relative_note(path)}; give the folder with videos.jsonl and "
                                "ratings.jsonl (in a notebook: DATA_DIR, empty for the sample dataset)")
    issues: list[Issue] = []
    tables: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    for name in TABLES:
        f = _table_file(root, name)
        if f is None:
            if name == "rationales":
                tables[name] = pd.DataFrame(columns=[*RATIONALE_COLUMNS, "_line"])
                files[name] = "rationales.jsonl"
                continue
            raise FileNotFoundError(f"{root} has no {name}.jsonl or {name}.parquet; every dataset needs "
                                    f"videos and ratings tables (see data_cards/ultravqa_format.md)")
        tables[name] = read_table(f, issues)
        files[name] = f.name
    info = {}
    if (root / "dataset.json").is_file():
        info = json.loads((root / "dataset.json").read_text())
    if min_raters is None:
        min_raters = int(info.get("min_raters", 3))
    if check_files is None:
        check_files = bool(info.get("check_files", True))
    ds, report = validate(root, tables["videos"], tables["ratings"], tables["rationales"], files=files,
                          min_raters=min_raters, check_files=check_files, min_raters_phase=min_raters_phase,
                          issues=issues)
    ds.info = info
    if strict:
        if not report.ok:
            raise DataValidationError(report)
        return ds
    return ds, report


def validate(root: str | os.PathLike, videos: pd.DataFrame, ratings: pd.DataFrame,
             rationales: pd.DataFrame | None = None, files: Mapping[str, str] | None = None, min_raters: int = 3,
             check_files: bool = True, min_raters_phase: str = "final",
             issues: list[Issue] | None = None) -> tuple[VQADataset, ValidationReport]:
    """Check every row; return the clean dataset and the report of every rejected row.

    The rules, one function each and in the order they run, are in :mod:`vqalib.data.validation`
    (one checker per table). ``files`` names each table's file in the messages; ``issues`` (e.g.
    the ``bad_json`` lines :func:`read_table` found) come first in the report, which appends to
    that list. A table without a required column raises :class:`DataValidationError` at once.

    Error classes: ``missing_field``, ``bad_value``, ``duplicate_video``, ``missing_video_file``,
    ``unknown_video``, ``bad_phase``, ``unknown_dimension``, ``out_of_range``, ``off_grid``,
    ``unknown_tag``, ``duplicate``, ``too_few_raters``, ``video_rejected`` (a row removed because
    its video was rejected), ``empty_rationale``, ``duplicate_rationale``, ``bad_json``.
    """
    root = Path(root)
    checked = check_tables(root, videos, ratings, rationales, dict(files or {}), min_raters, check_files,
                           min_raters_phase, issues if issues is not None else [])
    return VQADataset(root, checked.videos, checked.ratings, checked.rationales), checked.report


# ----------------------------------------------------------------------------------------------
# aggregation and splits


def aggregate(ds: VQADataset | pd.DataFrame, phase: str = "final", high_variance_std: float = HIGH_VARIANCE_STD,
              exclude_high_variance: bool = False) -> pd.DataFrame:
    """Labels per (video, dimension): ``score`` = mean of the phase's ratings snapped to the grid.

    Columns ``video_id, dimension, score, mean, std, n_raters, high_variance``. ``std`` is the
    sample std (ddof=1; 0 for a single rating); ``high_variance`` is ``std > high_variance_std``
    (paper: items with large rater disagreement are flagged). With ``exclude_high_variance`` the
    flagged rows are left out (the flag column stays, all False). Accepts a dataset or a ratings frame.
    """
    ratings = ds.ratings if isinstance(ds, VQADataset) else ds
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    r = ratings[ratings["phase"] == phase]
    cols = ["video_id", "dimension", "score", "mean", "std", "n_raters", "high_variance"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    g = r.groupby(["video_id", "dimension"], sort=False)["score"]
    out = g.agg(mean="mean", std=lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else 0.0, n_raters="count")
    out = out.reset_index()
    out["score"] = L.snap_to_grid(out["mean"].to_numpy())
    out["high_variance"] = out["std"] > high_variance_std
    order = {k: i for i, k in enumerate(L.DIMENSION_KEYS)}
    out = out.sort_values(["video_id", "dimension"], key=lambda s: s.map(order) if s.name == "dimension" else s)
    if exclude_high_variance:
        out = out[~out["high_variance"]]
    return out[cols].reset_index(drop=True)


def labels_wide(labels: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """One row per video (index ``video_id``), one column per dimension key, holding ``value``."""
    wide = labels.pivot(index="video_id", columns="dimension", values=value)
    return wide.reindex(columns=[k for k in L.DIMENSION_KEYS if k in wide.columns])


def split_of(video_id: str, test_fraction: float = 0.2, salt: str = "vqalib-split") -> str:
    """Deterministic hash split: ``'test'`` when ``sha256(salt + ':' + id)`` as a fraction of 2^64
    is below ``test_fraction``. Stable across machines and when videos are added or removed."""
    h = int.from_bytes(hashlib.sha256(f"{salt}:{video_id}".encode()).digest()[:8], "big")
    return "test" if h / 2**64 < test_fraction else "train"


def assign_splits(videos: pd.DataFrame, test_fraction: float = 0.2, overwrite: bool = False) -> pd.DataFrame:
    """Fill the ``split`` column with :func:`split_of` (only empty cells unless ``overwrite``)."""
    out = videos.copy()
    if "split" not in out.columns:
        out["split"] = ""
    empty = out["split"].isna() | (out["split"].astype(str).str.strip() == "")
    sel = slice(None) if overwrite else empty
    out.loc[sel, "split"] = [split_of(v, test_fraction) for v in out.loc[sel, "video_id"].astype(str)]
    return out


def labelled_items(ds: VQADataset, split: str | None = None, phase: str = "final") -> pd.DataFrame:
    """One row per video with its absolute path, split and the five labels (wide): what trainers read."""
    wide = labels_wide(aggregate(ds, phase)).reset_index()
    v = ds.videos[["video_id", "split"]].copy()
    root = Path(ds.root)
    v["path"] = [str(q if q.is_absolute() else (root / q).resolve()) for q in map(Path, ds.videos["path"].astype(str))]
    out = v.merge(wide, on="video_id", how="inner")
    return out if split is None else out[out["split"] == split].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# bring your own data: a CSV of per-rater scores


def probe_video(path: str | os.PathLike) -> dict[str, Any]:
    """``duration`` (s), ``fps``, ``width``, ``height``, ``hdr`` of a video file: the one probe the
    sampler uses (:func:`vqalib.video.frames.probe`), so the dataset's metadata is what the model sees.

    ``width``/``height`` are the displayed size (display-matrix rotation and sample aspect ratio
    applied: a phone clip stored 128x96 and turned 90 degrees is 96x128); ``fps`` is the header rate
    on a constant-rate clip and frames / presentation time on a variable-rate one, and
    ``duration = n_frames / fps`` is the presentation time the frames cover. ``hdr`` is ``"pq"``,
    ``"hlg"`` or ``None``. Raises :class:`vqalib.video.frames.VideoDecodeError` naming the file and the fix.
    """
    from vqalib.video.frames import probe

    info = probe(path)
    return {"duration": float(info.duration), "fps": float(info.fps), "width": int(info.width),
            "height": int(info.height), "hdr": info.hdr}


def map_scale(x: float | np.ndarray, lo: float, hi: float):
    """Linear map of a score on the scale ``[lo, hi]`` to 1-5: ``1 + 4 (x - lo) / (hi - lo)``.

    ``lo`` may be larger than ``hi`` for scales where smaller is better (e.g. rank 1 = best)."""
    return L.SCORE_MIN + (L.SCORE_MAX - L.SCORE_MIN) * (np.asarray(x, dtype=float) - lo) / (hi - lo)


_SNIFF_DELIMITERS = ",;\t|"
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


_EXCEL_SUFFIXES = (".xlsx", ".xlsm")
_ZIP_MAGIC, _OLE2_MAGIC = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"


def _read_workbook(path: Path, sheet: str | int | None, id_cols: Sequence[str]) -> pd.DataFrame:
    """The ratings sheet of an .xlsx/.xlsm workbook (openpyxl): ``sheet`` or the only sheet; id columns as text."""
    try:
        sheets = pd.ExcelFile(path, engine="openpyxl")
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise ValueError(f"{path}: reading an Excel workbook needs openpyxl (pip install openpyxl), or save the sheet "
                         "as CSV (File > Save As > CSV UTF-8)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged or mislabelled workbook
        raise ValueError(f"{path}: cannot be read as an Excel workbook ({type(exc).__name__}: {exc}); open it in a "
                         "spreadsheet program and save it again as .xlsx or as CSV UTF-8") from None
    with sheets:
        names = sheets.sheet_names
        if sheet is None:
            if len(names) != 1:
                raise ValueError(f"{path}: the workbook has {len(names)} sheets {names}; pass sheet= (a name or a "
                                 "0-based number) to say which holds the ratings")
            sheet = names[0]
        elif isinstance(sheet, str) and sheet not in names:
            raise ValueError(f"{path}: no sheet {sheet!r} (sheets: {names}); pass sheet= one of them")
        df = pd.read_excel(sheets, sheet_name=sheet)
        ids = [c for c in dict.fromkeys(id_cols) if c in df.columns]
        if ids:  # ids exactly as written: 01 stays 01, an empty cell stays empty (never NaN -> 'nan')
            text = pd.read_excel(sheets, sheet_name=sheet, usecols=ids, dtype=str, keep_default_na=False)
            for c in ids:
                df[c] = text[c].to_numpy()
    return df


def read_ratings_csv(path: str | os.PathLike, *, video_col: str | None = None, sep: str | None = None,
                     decimal: str = ".", encoding: str = "utf-8-sig", id_cols: Sequence[str] = (),
                     sheet: str | int | None = None) -> tuple[pd.DataFrame, str]:
    """Read a ratings table with pandas; returns ``(table, separator used)``.

    ``sep=None`` sniffs the separator among ``, ; TAB |`` from the first 64 kB (:class:`csv.Sniffer`);
    a file with one column and none of them is read with ``,``. Cells are kept as text where pandas
    cannot read a number, so :func:`from_ratings_csv` reports them row by row. ``video_col`` and
    ``id_cols`` (rater, dimension, phase columns) are read as text exactly as written: ``01`` stays
    ``01`` and ``NA`` stays ``NA``; an empty id cell is ``""`` (the caller reports it).

    An Excel workbook (``.xlsx``/``.xlsm``, or any file that starts like one) is read with openpyxl,
    from ``sheet`` (a name or 0-based number; needed when it has several sheets); the separator
    returned is ``"xlsx"``. An old binary ``.xls``, or an ``.ods``, is refused with the fix (save as
    .xlsx or CSV). Every failure raises a ``ValueError`` that names the file and the option to change
    (``encoding=``, ``sep=``, ``sheet=``)."""
    import codecs
    import csv

    given, path = path, resolve_path(path)
    ids = [c for c in ([video_col] if video_col else []) + list(id_cols) if c]
    try:
        with open(path, "rb") as fh:
            raw = fh.read(65536)
    except FileNotFoundError:
        raise FileNotFoundError(f"ratings CSV {path} does not exist{relative_note(given)}") from None
    suffix = path.suffix.lower()
    kind = None
    if suffix == ".ods":
        kind = "an OpenDocument spreadsheet (.ods)"
    elif raw.startswith(_OLE2_MAGIC) or suffix == ".xls":
        kind = "an old binary Excel workbook (.xls)"
    elif raw.startswith(_ZIP_MAGIC):
        if suffix in (*_EXCEL_SUFFIXES, ".csv", ".tsv", ".txt", ""):  # a workbook, whatever its name says
            return _read_workbook(path, sheet, ids), "xlsx"
        kind = f"a zip archive ({suffix})"
    if kind:
        raise ValueError(f"{path}: is {kind}, not a CSV or .xlsx; open it in a spreadsheet program and save it as "
                         ".xlsx (Excel Workbook) or as CSV UTF-8, then pass that file")
    try:
        head = codecs.getincrementaldecoder(encoding)().decode(raw, final=len(raw) < 65536)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: cannot be decoded as {encoding} ({exc.reason} at byte {exc.start}); "
                         f"pass encoding='cp1252' or 'latin-1' (or the file's encoding)") from None
    except LookupError:
        raise ValueError(f"{path}: unknown encoding {encoding!r}; use e.g. 'utf-8-sig', 'cp1252', 'latin-1'") from None
    if not head.strip():
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per video or rating")
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(head, delimiters=_SNIFF_DELIMITERS).delimiter
        except csv.Error:
            sep = ","
    try:
        df = pd.read_csv(path, sep=sep, decimal=decimal, encoding=encoding)
        present = [c for c in dict.fromkeys(ids) if c in df.columns]
        if present:  # ids exactly as written: 01 stays 01, NA stays NA, an empty cell stays "" (never 'nan')
            text = pd.read_csv(path, sep=sep, encoding=encoding, usecols=present, dtype=str, keep_default_na=False)
            for c in present:
                df[c] = text[c].to_numpy()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: cannot be decoded as {encoding} ({exc.reason} at byte {exc.start}); "
                         f"pass encoding='cp1252' or 'latin-1' (or the file's encoding)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be read as a CSV with sep={sep!r}, decimal={decimal!r} "
                         f"({type(exc).__name__}: {str(exc).strip()}); check the separator (sep=) and quoting") from None
    return df, sep


def _number(value: Any, decimal: str) -> float:
    """A cell as a float: numbers as they are, text with the file's decimal mark (``"3,5"`` with ``","``)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if decimal != "." and decimal in text:
        text = text.replace(decimal, ".")
    return float(text)


def _na_matchers(na_values: Iterable[Any]) -> tuple[set[str], list[float]]:
    """The ``na_values`` markers as stripped texts and, where they are numbers, as values."""
    texts, nums = set(), []
    for v in na_values:
        texts.add(str(v).strip())
        try:
            nums.append(float(str(v).strip().replace(",", ".")))
        except ValueError:
            pass
    return texts, nums


def _is_na_marker(value: Any, texts: set[str], nums: list[float], decimal: str) -> bool:
    if not texts:
        return False
    if str(value).strip() in texts:
        return True
    try:
        x = _number(value, decimal)
    except (TypeError, ValueError):
        return False
    return any(x == n for n in nums)


def from_ratings_csv(csv_path: str | os.PathLike, *, video_col: str = "video",
                     score_columns: Mapping[str, tuple[str, str]] | None = None,
                     column_pattern: str | None = None,
                     rater_col: str | None = None, dimension_col: str | None = None, score_col: str | None = None,
                     dimension_map: Mapping[str, str] | None = None,
                     scale: tuple[float, float] = (1.0, 5.0), snap: bool = True,
                     phase: str = "final", phase_col: str | None = None,
                     video_dir: str | os.PathLike | None = None, path_template: str = "{video}",
                     category_col: str | None = None, test_fraction: float = 0.2,
                     min_raters: int = 3, check_files: bool = True, strict: bool = True,
                     na_values: Iterable[Any] = (), sep: str | None = None, decimal: str = ".",
                     encoding: str = "utf-8-sig", sheet: str | int | None = None):
    """Load a CSV (or .xlsx workbook) of per-rater scores (any subset of dimensions, any numeric scale) as a dataset.

    Three ways to say where the scores are (pick one):

    * **long** (one row per rating): ``rater_col``, ``dimension_col``, ``score_col``.
    * **wide, explicit**: ``score_columns={"r1_sharpness": ("clarity_quality", "r1"), ...}``
      (column -> (dimension, rater)).
    * **wide, by pattern**: ``column_pattern=r"(?P<rater>r\\d+)_(?P<dimension>\\w+)"``: every column
      whose full name matches is a score column (the pattern must have both named groups).

    Ids are text exactly as written: raters ``1`` and ``01`` are two raters, a video named ``NA``
    or ``0001`` keeps that id. A row with an empty video cell, or (long format) an empty rater cell,
    is a ``missing_field`` error naming the row (``strict=False``: rejected and counted in the
    report), never a video or rater called ``nan``.

    Dimension names pass through ``dimension_map`` first (e.g. ``{"sharpness": "clarity_quality"}``),
    then :func:`vqalib.schema.levels.dimension_key` (keys or display names). Scores are mapped linearly from
    ``scale=(lo, hi)`` to 1-5 (:func:`map_scale`); a value outside ``[lo, hi]`` is an ``out_of_range``
    error, never clipped. With ``snap=True`` (default) the mapped score is put on the 9-level grid
    with :func:`vqalib.schema.levels.snap_to_grid` (round half up), and the original value is kept in the
    ``raw_score`` column, so nothing is lost; with ``snap=False`` a mapped value off the grid is an
    ``off_grid`` error (use this when the data is already meant to be on the half-step grid).
    Empty cells are not ratings and are skipped (their number is in ``ds.info['empty_cells']``).

    Table options (public subjective studies come in many layouts):

    * ``na_values``: cell values that mean "not rated" (e.g. ``[-1]`` or ``["-1", "n/a"]``); matched
      as text and, for numbers, by value (``-1`` matches ``-1``, ``-1.0``, ``-1,0`` with
      ``decimal=","``). They are skipped like empty cells and counted in ``ds.info['not_rated']``;
      without this option a ``-1`` on a 0-100 scale is an ``out_of_range`` error, never dropped.
    * ``sep``: the column separator; ``None`` (default) sniffs it from the first 64 kB among
      ``, ; TAB |`` (:class:`csv.Sniffer`), and the one used is recorded in ``ds.info['sep']``.
    * ``decimal``: ``","`` for decimal commas (``3,5``); a score like ``3,5`` read with ``"."`` is a
      ``bad_value`` error that says so.
    * ``encoding``: default ``utf-8-sig`` (UTF-8, with or without the byte-order mark spreadsheet
      programs write); e.g. ``cp1252`` or ``latin-1`` for older exports.
    * ``sheet``: for an Excel workbook (``.xlsx``, read with openpyxl), the sheet holding the ratings
      (a name or 0-based number; needed only when the workbook has several sheets). An old ``.xls``
      or an ``.ods`` is refused with the fix (save it as .xlsx or CSV UTF-8).

    Every read error (undecodable bytes, a malformed row, an empty file) is a ``ValueError`` naming the
    file and the option that fixes it.

    Relative ``csv_path`` and ``video_dir`` are taken from the project root, as in :func:`load_dataset`
    (:func:`vqalib.core.runs.resolve_path`).

    Videos: ``video_dir / path_template.format(video=<id>)``; duration, fps and size are read from
    the file when it exists (``check_files=False`` allows absent files, leaving them empty). Splits
    come from :func:`split_of`. Returns like :func:`load_dataset`.
    """

    df, sep = read_ratings_csv(csv_path, video_col=video_col, sep=sep, decimal=decimal, encoding=encoding,
                               id_cols=[c for c in (rater_col, dimension_col, phase_col) if c], sheet=sheet)
    csv_path = resolve_path(csv_path)  # after reading: read_ratings_csv's error names a relative path's rule
    fname = csv_path.name
    na_text, na_num = _na_matchers(na_values)
    if video_col not in df.columns:
        raise ValueError(f"{fname}: no column {video_col!r} (columns: {list(df.columns)}); pass video_col=")
    dimension_map = dict(dimension_map or {})
    modes = [score_columns is not None, column_pattern is not None, score_col is not None]
    if sum(modes) != 1:
        raise ValueError("give exactly one of score_columns=, column_pattern= or (rater_col=, dimension_col=, score_col=)")
    lo, hi = float(scale[0]), float(scale[1])
    if lo == hi:
        raise ValueError(f"{fname}: scale={scale} has zero width; pass the rating scale's (lowest, highest) values")
    issues: list[Issue] = []
    rows: list[dict] = []
    empty = not_rated = 0

    def add_rating(line: int, vid: Any, rater: Any, dim_raw: Any, value: Any, ph: str) -> None:
        nonlocal empty, not_rated
        if is_blank(vid):  # reported once per row below
            return
        if is_blank(value):
            empty += 1
            return
        if _is_na_marker(value, na_text, na_num, decimal):
            not_rated += 1
            return
        dim = dimension_map.get(str(dim_raw), str(dim_raw))
        try:
            x = _number(value, decimal)
        except (TypeError, ValueError):
            hint = ("it has a decimal comma: pass decimal=','" if decimal == "." and _DECIMAL_COMMA.fullmatch(str(value).strip())
                    else "write scores as numbers, or list the marker in na_values= if it means 'not rated'")
            issues.append(Issue("bad_value", fname, line, "score", f"score {value!r} is not a number",
                                hint, str(vid)))
            return
        if not (min(lo, hi) <= x <= max(lo, hi)):
            issues.append(Issue("out_of_range", fname, line, "score",
                                f"score {x:g} ({rater}, {dim_raw}) is outside the declared scale {scale}",
                                "fix the value, pass the right scale=(lo, hi), or list a 'not rated' marker "
                                "in na_values=", str(vid)))
            return
        if is_blank(rater):
            issues.append(Issue("missing_field", fname, line, rater_col or "rater",
                                f"the rater cell is empty (score {value!r} for video {vid!r})",
                                "fill in the rater id or remove the row", str(vid)))
            return
        mapped = float(map_scale(x, lo, hi))
        score = float(L.snap_to_grid(mapped)) if snap else mapped
        rows.append({"video_id": str(vid), "rater": str(rater), "phase": ph, "dimension": dim, "score": score,
                     "tags": [], "comment": "", "raw_score": x, "_line": line})

    records = df.to_dict(orient="records")
    for i, rec in enumerate(records):
        if is_blank(rec[video_col]):
            issues.append(Issue("missing_field", fname, i + 2, video_col, f"the {video_col!r} cell is empty",
                                "fill in the video id or remove the row"))
    if score_col is not None:
        for col in (rater_col, dimension_col, score_col):
            if col is None or col not in df.columns:
                raise ValueError(f"{fname}: long format needs rater_col, dimension_col and score_col that exist "
                                 f"(columns: {list(df.columns)})")
        for i, rec in enumerate(records):
            add_rating(i + 2, rec[video_col], rec[rater_col], rec[dimension_col], rec[score_col],
                       str(rec[phase_col]) if phase_col else phase)
    else:
        if column_pattern is not None:
            try:
                pat = re.compile(column_pattern)
            except re.error as exc:
                raise ValueError(f"column_pattern {column_pattern!r} is not a regular expression ({exc})") from None
            absent = [g for g in ("rater", "dimension") if g not in pat.groupindex]
            if absent:
                raise ValueError(f"column_pattern {column_pattern!r} has no named group {' or '.join(absent)}: write "
                                 "(?P<rater>...) and (?P<dimension>...) around the parts of the column name that "
                                 r"give them, e.g. r'(?P<rater>r\d+)_(?P<dimension>\w+)'")
            score_columns = {}
            for c in df.columns:
                m = pat.fullmatch(str(c))
                if m:
                    score_columns[c] = (m.group("dimension"), m.group("rater"))
            if not score_columns:
                raise ValueError(f"{fname}: no column matches column_pattern {column_pattern!r} (columns: {list(df.columns)})")
        missing = [c for c in score_columns if c not in df.columns]
        if missing:
            raise ValueError(f"{fname}: score_columns {missing} are not columns of the CSV ({list(df.columns)})")
        for i, rec in enumerate(records):
            for col, (dim_raw, rater) in score_columns.items():
                add_rating(i + 2, rec[video_col], rater, dim_raw, rec[col], str(rec[phase_col]) if phase_col else phase)

    root = resolve_path(video_dir) if video_dir is not None else csv_path.parent
    vids = list(dict.fromkeys(str(v) for v in df[video_col] if not is_blank(v)))
    cats = {}
    if category_col:
        cats = {str(r[video_col]): r[category_col] for r in records}
    first_line = {}
    for i, rec in enumerate(records):
        first_line.setdefault(str(rec[video_col]), i + 2)
    vrows = []
    for vid in vids:
        rel = path_template.format(video=vid)
        full = Path(rel) if Path(rel).is_absolute() else root / rel
        meta = {"duration": np.nan, "fps": np.nan, "width": np.nan, "height": np.nan}
        if full.is_file():
            try:
                meta = probe_video(full)
            except Exception as exc:  # noqa: BLE001 - reported, the video is rejected
                issues.append(Issue("bad_value", fname, first_line[vid], video_col,
                                    f"video file {full} could not be read ({type(exc).__name__}: {exc})",
                                    "replace the file or remove the video", vid))
                continue
        vrows.append({"video_id": vid, "path": rel, **meta, "category": cats.get(vid, ""), "source": fname,
                      "split": split_of(vid, test_fraction), "_line": first_line[vid]})
    videos = pd.DataFrame(vrows, columns=[*VIDEO_COLUMNS, "_line"])
    ratings = pd.DataFrame(rows, columns=[*RATING_COLUMNS, "raw_score", "_line"])
    ds, report = validate(root, videos, ratings, None, files={"videos": f"{fname} (videos)", "ratings": fname},
                          min_raters=min_raters, check_files=check_files, issues=issues)
    report.n_rows["ratings"] = len(rows) + sum(1 for i in issues if i.file == fname and i.kind in ("bad_value", "out_of_range"))
    ds.info = {"source": str(csv_path), "scale": [lo, hi], "snap": snap, "empty_cells": empty,
               "not_rated": not_rated, "na_values": [str(v) for v in na_values], "sep": sep, "decimal": decimal,
               "encoding": encoding, "min_raters": min_raters, "check_files": check_files}
    if strict:
        if not report.ok:
            raise DataValidationError(report)
        return ds
    return ds, report
