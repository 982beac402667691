"""UltraVQA-style dataset: schema, JSONL/Parquet IO, validation, aggregation, splits, CSV adapter.

A dataset is a folder with three tables (each as ``NAME.jsonl`` or ``NAME.parquet``)::

    videos      video_id, path, duration, fps, width, height, category, source, split
    ratings     video_id, rater, phase ('pilot' | 'final'), dimension, score, tags (list[str]), comment
    rationales  video_id, dimension, rationale                    (optional table)

``path`` is relative to the folder (or absolute). The folder's rating schema
(``rating_schema.json``, :mod:`vqalib.schema.rating`; absent: the paper's five dimensions x nine
levels) says which dimensions and levels there are: ``dimension`` holds the schema's keys (display
names such as "Motion Quality" are accepted on input and converted); a per-rater ``score`` must be one
of the schema's K levels (the paper's: the 9-level grid 1.0..5.0, steps of 0.5). A **MOS row**
(``rater`` = ``"mos"``, phase ``final``) holds one mean opinion score per (video, dimension) on the
schema's scale, not snapped, with an optional ``std`` column: how a public MOS label file becomes a
training dataset (:func:`dataset_from_label_file`). A video may lack some dimensions
(:func:`label_coverage` counts them; nothing is filled in).

Validation (``load_dataset`` / ``validate``; the rules are in :mod:`vqalib.data.validation`) checks
every row and names file, line, field and the fix. ``strict=True`` raises :class:`DataValidationError`
listing all problems; ``strict=False`` returns the clean data, with the :class:`ValidationReport` of
every rejected row on ``ds.report``. Nothing is silently dropped: a row removed because its video was
rejected is reported too.

Labels (``aggregate``): per video and dimension the mean of the valid ratings of one phase,
snapped to the grid (round half up), with the spread and a high-variance flag; training targets over
the K levels (one-hot, Gaussian soft labels from mean and std, the raters' histogram):
:func:`label_targets`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from vqalib.schema import levels as L
from vqalib.schema import rating as RS
from vqalib.schema.rating import SCHEMA_FILE, RatingSchema
from vqalib.core.runs import jsonable, relative_note, resolve_path
from vqalib.data.validation import (  # noqa: F401 - the table schema and the report are re-exported here
    MOS_RATER, PHASES, RATING_COLUMNS, RATIONALE_COLUMNS, SPLITS, VIDEO_COLUMNS, DataValidationError, Issue,
    ValidationReport, check_tables, is_blank,
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
    #: What validation rejected when the dataset was loaded or converted (``report.ok``: nothing);
    #: None for a dataset built in memory (e.g. :meth:`subset`), which was not validated as such.
    report: ValidationReport | None = field(default=None, repr=False, compare=False)
    #: The rating schema (dimensions, K levels, target rule): ``rating_schema.json`` in the folder, else the paper's.
    schema: RatingSchema = field(default_factory=lambda: RS.PAPER)

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
                          self.rationales[self.rationales.video_id.isin(keep)].reset_index(drop=True), dict(self.info),
                          schema=self.schema)

    def __repr__(self) -> str:
        schema = "" if self.schema.is_paper else f", schema={self.schema.name!r}"
        return (f"VQADataset(root={str(self.root)!r}, videos={len(self.videos)}, ratings={len(self.ratings)}, "
                f"rationales={len(self.rationales)}{schema})")

    def __iter__(self):
        # code written for 0.1 unpacked ``ds, report = load_dataset(..., strict=False)``: say what changed
        raise TypeError("a VQADataset is not a (dataset, report) pair: load_dataset and from_ratings_csv return the "
                        "dataset, and the validation report is ds.report (write ds = load_dataset(...); ds.report)")


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
    ``dataset.json``, which :func:`load_dataset` reads back. The rating schema ``ds.schema`` is written
    to ``rating_schema.json`` (also the paper's, so the folder says what it holds). A relative
    ``folder`` is taken from the project root, as in :func:`load_dataset`.
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
    ds.schema.save(folder)
    return folder


# ----------------------------------------------------------------------------------------------
# loading + validation


def load_dataset(path: str | os.PathLike, strict: bool = True, min_raters: int | None = None,
                 check_files: bool | None = None, min_raters_phase: str = "final",
                 schema: "RatingSchema | str | None" = None, allow_missing: bool | None = None):
    """Load and validate a dataset folder (tables as JSONL or Parquet).

    Returns the :class:`VQADataset`, its :class:`ValidationReport` on ``ds.report``. ``strict=True``
    raises :class:`DataValidationError` on any problem; ``strict=False`` removes the rejected rows
    and lists them in ``ds.report``.
    ``min_raters`` applies per (video, dimension) in phase ``min_raters_phase``; ``None`` takes the
    value the dataset was converted with (``min_raters`` in ``dataset.json``, written by
    :func:`save_dataset` for a :func:`from_ratings_csv` dataset), else 3. So a folder converted with
    ``min_raters=2`` loads the same way in every notebook and trainer. ``check_files`` (whether every
    video file must exist) likewise: ``None`` takes the saved choice (``check_files`` in
    ``dataset.json``; a ratings-only study converted with ``check_files=False`` stays so), else True.

    The rating schema is the folder's ``rating_schema.json`` (absent: the paper's, so every dataset
    written before schemas existed loads unchanged). ``schema`` (a schema, preset name or file) states
    it for a folder that has none; given beside a saved one that differs it raises ``ValueError``
    naming both (the data were validated against the saved one). ``allow_missing`` (None: as saved in
    ``dataset.json``, else True unless the schema is the paper's): a video may lack some dimensions.
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
    if allow_missing is None and "allow_missing" in info:
        allow_missing = bool(info["allow_missing"])
    ds, report = validate(root, tables["videos"], tables["ratings"], tables["rationales"], files=files,
                          min_raters=min_raters, check_files=check_files, min_raters_phase=min_raters_phase,
                          issues=issues, schema=folder_schema(root, schema), allow_missing=allow_missing)
    ds.info = info
    return _checked(ds, strict)


def folder_schema(root: str | os.PathLike, schema: "RatingSchema | str | None" = None) -> RatingSchema:
    """The rating schema of a dataset folder: its ``rating_schema.json``, else ``schema`` (a schema,
    preset name or file), else the paper's. Raises ``ValueError`` when ``schema`` contradicts the saved one."""
    saved_file = Path(root) / SCHEMA_FILE
    if not saved_file.is_file():
        return RS.resolve(schema)
    saved = RS.load_schema(saved_file)
    if schema is not None:
        asked = RS.get_schema(schema)
        if not asked.same_as(saved):
            raise ValueError(f"{saved_file} holds the rating schema {saved.name!r}, but schema={asked.name!r} was given "
                             f"({'; '.join(saved.differences(asked, 'saved', 'given'))}); the "
                             f"data were written for the saved one: drop schema= (or pass the saved one), or convert "
                             f"the data and save them with the new schema")
    return saved


def _checked(ds: VQADataset, strict: bool) -> VQADataset:
    """``ds``, or in strict mode the :class:`DataValidationError` of its report when anything was rejected."""
    if strict and not ds.report.ok:
        raise DataValidationError(ds.report)
    return ds


def validate(root: str | os.PathLike, videos: pd.DataFrame, ratings: pd.DataFrame,
             rationales: pd.DataFrame | None = None, files: Mapping[str, str] | None = None, min_raters: int = 3,
             check_files: bool = True, min_raters_phase: str = "final",
             issues: list[Issue] | None = None, schema: "RatingSchema | str | None" = None,
             allow_missing: bool | None = None) -> tuple[VQADataset, ValidationReport]:
    """Check every row; return the clean dataset and the report of every rejected row.

    The rules, one function each and in the order they run, are in :mod:`vqalib.data.validation`
    (one checker per table). ``files`` names each table's file in the messages; ``issues`` (e.g.
    the ``bad_json`` lines :func:`read_table` found) come first in the report, which appends to
    that list. A table without a required column raises :class:`DataValidationError` at once.

    Error classes: ``missing_field``, ``bad_value``, ``duplicate_video``, ``missing_video_file``,
    ``unknown_video``, ``bad_phase``, ``unknown_dimension``, ``out_of_range``, ``off_grid``,
    ``unknown_tag``, ``duplicate``, ``mixed_mos``, ``too_few_raters``, ``video_rejected`` (a row removed
    because its video was rejected), ``empty_rationale``, ``duplicate_rationale``, ``bad_json``.

    ``schema`` (None: the paper's) gives the dimensions, levels, range and tags the rows are checked
    against and becomes ``ds.schema``; ``allow_missing`` (None: True unless the schema is the
    paper's): a video may lack some dimensions.
    """
    root = Path(root)
    schema = RS.resolve(schema)
    checked = check_tables(root, videos, ratings, rationales, dict(files or {}), min_raters, check_files,
                           min_raters_phase, issues if issues is not None else [], schema=schema,
                           allow_missing=allow_missing)
    return (VQADataset(root, checked.videos, checked.ratings, checked.rationales, report=checked.report, schema=schema),
            checked.report)


# ----------------------------------------------------------------------------------------------
# aggregation and splits


def _schema_for(ds: Any, schema: "RatingSchema | str | None") -> RatingSchema:
    """``schema`` when given, else the dataset's own (a bare frame: the paper's)."""
    if schema is not None:
        return RS.get_schema(schema)
    return ds.schema if isinstance(ds, VQADataset) else RS.PAPER


def high_variance_threshold(schema: "RatingSchema | str | None" = None) -> float:
    """:data:`HIGH_VARIANCE_STD` (1.0 on the paper's 1-5) scaled to the schema's span (2.25 on 1-10)."""
    s = RS.resolve(schema)
    return HIGH_VARIANCE_STD * s.span / (L.SCORE_MAX - L.SCORE_MIN)


def aggregate(ds: VQADataset | pd.DataFrame, phase: str = "final", high_variance_std: float | None = None,
              exclude_high_variance: bool = False, schema: "RatingSchema | str | None" = None) -> pd.DataFrame:
    """Labels per (video, dimension): ``score`` = mean of the phase's ratings snapped to the grid.

    Columns ``video_id, dimension, score, mean, std, n_raters, high_variance``. ``std`` is the
    sample std (ddof=1; 0 for a single rating); ``high_variance`` is ``std > high_variance_std``
    (paper: items with large rater disagreement are flagged; None: :func:`high_variance_threshold`,
    1.0 on the paper's scale). With ``exclude_high_variance`` the
    flagged rows are left out (the flag column stays, all False). Accepts a dataset or a ratings frame.

    ``schema`` (default: the dataset's; for a bare ratings frame the paper's) gives the levels
    ``score`` is snapped to (:meth:`RatingSchema.snap`) and the order of the dimensions. A MOS row
    (rater ``"mos"``) is its own mean; its ``std`` is the row's ``std`` column (NaN when not given)
    and ``n_raters`` 1. A (video, dimension) nobody rated has no row (nothing is filled in).
    """
    ratings = ds.ratings if isinstance(ds, VQADataset) else ds
    schema = _schema_for(ds, schema)
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    r = ratings[ratings["phase"] == phase]
    cols = ["video_id", "dimension", "score", "mean", "std", "n_raters", "high_variance"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    g = r.groupby(["video_id", "dimension"], sort=False)["score"]
    out = g.agg(mean="mean", std=lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else 0.0, n_raters="count")
    out = out.reset_index()
    is_mos = r["rater"].astype(str) == MOS_RATER
    if is_mos.any():
        m = r[is_mos]
        sd = pd.to_numeric(m["std"], errors="coerce") if "std" in m.columns else pd.Series(np.nan, index=m.index)
        mos_std = dict(zip(zip(m["video_id"], m["dimension"]), sd.to_numpy(dtype=float)))
        keys = list(zip(out["video_id"], out["dimension"]))
        out["std"] = [mos_std[k] if k in mos_std else v for k, v in zip(keys, out["std"])]
    out["score"] = schema.snap(out["mean"].to_numpy())
    if high_variance_std is None:
        high_variance_std = high_variance_threshold(schema)
    out["high_variance"] = out["std"] > high_variance_std
    order = {k: i for i, k in enumerate(schema.keys)}
    out = out.sort_values(["video_id", "dimension"], key=lambda s: s.map(order) if s.name == "dimension" else s)
    if exclude_high_variance:
        out = out[~out["high_variance"]]
    return out[cols].reset_index(drop=True)


def labels_wide(labels: pd.DataFrame, value: str = "score", schema: "RatingSchema | str | None" = None) -> pd.DataFrame:
    """One row per video (index ``video_id``), one column per dimension key, holding ``value``.

    Columns in the order of ``schema``'s dimensions (default the paper's), then any other dimension
    of ``labels`` in order of appearance; only dimensions ``labels`` has. A video without a label of a
    dimension holds NaN there (never filled in)."""
    order = RS.resolve(schema).keys
    wide = labels.pivot(index="video_id", columns="dimension", values=value)
    present = list(dict.fromkeys(labels["dimension"]))
    return wide.reindex(columns=[k for k in order if k in wide.columns] + [k for k in present if k not in order])


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


def labelled_items(ds: VQADataset, split: str | None = None, phase: str = "final",
                   schema: "RatingSchema | str | None" = None) -> pd.DataFrame:
    """One row per video with its absolute path, split and its labels (wide): what trainers read.

    A video is kept when it has at least one label; a dimension it lacks is NaN (never filled in).
    ``out.attrs["label_coverage"]`` holds :func:`label_coverage`'s counts for these rows.
    ``schema``: default the dataset's."""
    schema = _schema_for(ds, schema)
    wide = labels_wide(aggregate(ds, phase, schema=schema), schema=schema).reset_index()
    v = ds.videos[["video_id", "split"]].copy()
    root = Path(ds.root)
    v["path"] = [str(q if q.is_absolute() else (root / q).resolve()) for q in map(Path, ds.videos["path"].astype(str))]
    out = v.merge(wide, on="video_id", how="inner")
    out = out if split is None else out[out["split"] == split].reset_index(drop=True)
    out.attrs["label_coverage"] = _coverage(out, [c for c in wide.columns if c != "video_id"],
                                            [x for x in (ds.videos["video_id"] if split is None else ds.split_ids(split))
                                             if x not in set(out["video_id"])])
    return out


def _coverage(wide: pd.DataFrame, dims: Sequence[str], unlabelled: Sequence[str]) -> dict[str, Any]:
    missing = {d: int(wide[d].isna().sum()) for d in dims}
    return {"n_videos": int(len(wide)), "dimensions": list(dims), "n_labels": int(wide[list(dims)].notna().sum().sum()),
            "n_missing": int(sum(missing.values())), "missing_by_dimension": missing,
            "n_videos_without_labels": len(unlabelled), "videos_without_labels": [str(x) for x in unlabelled]}


def label_coverage(ds: VQADataset, split: str | None = None, phase: str = "final",
                   schema: "RatingSchema | str | None" = None) -> dict[str, Any]:
    """How many (video, dimension) labels a dataset has and lacks (missing labels are never filled in).

    Returns ``{"n_videos", "dimensions", "n_labels", "n_missing", "missing_by_dimension",
    "n_videos_without_labels", "videos_without_labels"}``: ``n_videos`` with at least one label (the
    rows of :func:`labelled_items`), the dimensions labelled in the dataset, the labels present, the
    (video, dimension) pairs missing in total and per dimension, and the videos of the split with no
    label at all (left out of :func:`labelled_items`)."""
    return labelled_items(ds, split, phase, schema=schema).attrs["label_coverage"]


def label_targets(ds: VQADataset, split: str | None = None, phase: str = "final", rule: str | None = None,
                  schema: "RatingSchema | str | None" = None) -> pd.DataFrame:
    """The training target over the K levels of every labelled (video, dimension).

    Columns ``video_id, dimension, mean, std, n_raters, score, target``: one row per label that exists
    (a missing label has no row), in :func:`aggregate`'s order; ``target`` is a float array ``[K]``
    summing to 1 from :meth:`RatingSchema.target` (``mean``, ``std``, the raters' scores, ``rule``).
    ``rule`` defaults to the schema's ``target_rule``: ``nearest`` (one-hot at ``score``, the
    paper), ``gaussian`` (DeQA-Score's soft labels from the mean and the std: the raters' sample std,
    or a MOS row's ``std`` column; no std gives the one-hot), ``histogram`` (the raters' own scores;
    raises ``ValueError`` for a MOS row, which has none). ``split`` keeps one split's videos.
    ``schema``: default the dataset's.

    A trainer's lookup: ``{(v, d): t for v, d, t in label_targets(ds)[["video_id", "dimension",
    "target"]].itertuples(index=False)}``."""
    schema = _schema_for(ds, schema)
    rule = rule or schema.target_rule
    labels = aggregate(ds, phase, schema=schema)
    if split is not None:
        labels = labels[labels["video_id"].isin(set(ds.split_ids(split)))].reset_index(drop=True)
    scores: dict[tuple[str, str], list[float]] = {}
    if rule == "histogram":
        r = ds.ratings[ds.ratings["phase"] == phase]
        for vid, dim, rater, sc in zip(r["video_id"], r["dimension"], r["rater"].astype(str), r["score"]):
            if rater == MOS_RATER:
                raise ValueError(f"label_targets(rule='histogram'): {vid!r} / {dim} has a MOS row, not the raters' "
                                 "ratings; use rule='gaussian' (mean and std) or 'nearest'")
            scores.setdefault((vid, dim), []).append(float(sc))
    targets = [schema.target(float(m), None if not np.isfinite(sd) else float(sd), scores.get((v, d)), rule)
               for v, d, m, sd in zip(labels["video_id"], labels["dimension"], labels["mean"],
                                      labels["std"].astype(float))]
    out = labels[["video_id", "dimension", "mean", "std", "n_raters", "score"]].copy()
    out["target"] = targets
    return out


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


def map_scale(x: float | np.ndarray, lo: float, hi: float, schema: "RatingSchema | str | None" = None):
    """Linear map of a score on the scale ``[lo, hi]`` to the schema's ``[lo, hi]`` (the paper's 1-5:
    ``1 + 4 (x - lo) / (hi - lo)``).

    ``lo`` may be larger than ``hi`` for scales where smaller is better (e.g. rank 1 = best, DMOS)."""
    s = RS.resolve(schema)
    return s.lo + s.span * (np.asarray(x, dtype=float) - lo) / (hi - lo)


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


@dataclass
class RatingsCsvOptions:
    """How :func:`from_ratings_csv` reads a table of per-rater scores. Every field is also a keyword
    of :func:`from_ratings_csv` (``from_ratings_csv(path, scale=(0, 100))``); an options object is
    handy to reuse one study's settings (``from_ratings_csv(path, options=opts, sheet="day 2")``)."""

    # where the scores are: give one layout (see from_ratings_csv)
    video_col: str = "video"
    score_columns: Mapping[str, tuple[str, str]] | None = None  # wide, explicit: column -> (dimension, rater)
    column_pattern: str | None = None  # wide, by pattern, with groups (?P<rater>...) and (?P<dimension>...)
    rater_col: str | None = None  # long (one row per rating): rater_col, dimension_col and score_col
    dimension_col: str | None = None
    score_col: str | None = None
    dimension_map: Mapping[str, str] | None = None  # dimension name in the table -> key or display name
    phase: str = "final"  # the phase of every rating, unless phase_col names a column holding it
    phase_col: str | None = None
    category_col: str | None = None  # a column copied to the videos' category
    #: MOS tables (rater "mos", snap=False): the raters' standard deviation, on the table's scale, beside each
    #: score: std_col (long layout) or std_columns (wide: score column -> its std column)
    std_col: str | None = None
    std_columns: Mapping[str, str] | None = None
    # the scores
    #: (lowest, highest) of the table's scale, mapped to the schema's (the paper's 1-5); None: each dimension's
    #: raw_range in the schema, else the schema's own scale (the paper's: 1-5)
    scale: tuple[float, float] | None = None
    snap: bool = True  # put mapped scores on the schema's levels (else a score off them is an error)
    #: the rating schema (dimensions, levels, raw ranges); a RatingSchema, preset name or file; None: the paper's
    schema: Any = None
    na_values: Iterable[Any] = ()  # cell values that mean "not rated"
    # reading the file
    sep: str | None = None  # column separator; None sniffs it
    decimal: str = "."
    encoding: str = "utf-8-sig"
    sheet: str | int | None = None  # the sheet of an .xlsx workbook
    # the videos
    video_dir: str | os.PathLike | None = None  # default: the table's folder
    path_template: str = "{video}"
    test_fraction: float = 0.2  # share of videos in the test split (split_of)
    check_files: bool = True  # every video file must exist
    # validation
    min_raters: int = 3
    strict: bool = True  # raise DataValidationError on any problem (else: rejected rows listed in ds.report)


def _options(options: RatingsCsvOptions | None, keywords: Mapping[str, Any]) -> RatingsCsvOptions:
    known = [f.name for f in fields(RatingsCsvOptions)]
    unknown = sorted(set(keywords) - set(known))
    if unknown:
        raise TypeError(f"from_ratings_csv() got unexpected keyword argument(s) {unknown}; its options are {known}")
    return replace(options if options is not None else RatingsCsvOptions(), **keywords)


def from_ratings_csv(csv_path: str | os.PathLike, *, options: RatingsCsvOptions | None = None,
                     **keywords: Any) -> VQADataset:
    """Load a CSV (or .xlsx workbook) of per-rater scores (any subset of dimensions, any numeric scale) as a dataset.

    The keywords are the fields of :class:`RatingsCsvOptions` (``options=`` gives them as one object;
    keywords given beside it win). Three ways to say where the scores are (pick one):

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

    ``schema`` (a :class:`~vqalib.schema.rating.RatingSchema`, preset name or file; default the
    paper's) replaces "the five dimensions, 1-5 and the 9-level grid" above with its dimensions,
    ``[lo, hi]`` and K levels, and is saved with the dataset. Without ``scale`` each dimension's
    ratings are read on its ``raw_range`` and mapped with :meth:`RatingSchema.from_raw` (flipped for a
    dimension with ``higher_is_better: false``, e.g. DMOS); a dimension without ``raw_range`` is
    rated on the schema's own scale. An explicit ``scale=(lo, hi)`` applies to every dimension
    (``lo > hi`` flips it). ``ds.info['scale']`` records the scale used (per dimension when they differ).
    Empty cells are not ratings and are skipped (their number is in ``ds.info['empty_cells']``).

    Per-clip MOS tables (DIVIDE-3k, FineVD, MaxWell, ...): name the rater ``mos`` (``score_columns=
    {"aesthetic": ("aesthetic", "mos"), ...}`` or a rater column holding ``mos``) and pass ``snap=False``:
    the rows become MOS rows (one mean opinion score per video and dimension, not snapped; no minimum
    number of raters). ``std_col`` (long) or ``std_columns`` (wide: score column -> std column) give
    the raters' standard deviation on the table's scale; it is scaled onto the schema's scale into the
    ``std`` column (Gaussian soft labels, :func:`label_targets`).

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
    file and the option that fixes it; an unknown keyword is a ``TypeError`` listing the options.

    Relative ``csv_path`` and ``video_dir`` are taken from the project root, as in :func:`load_dataset`
    (:func:`vqalib.core.runs.resolve_path`).

    Videos: ``video_dir / path_template.format(video=<id>)``; duration, fps and size are read from
    the file when it exists (:func:`probe_video`, the sampler's probe: the displayed size of a rotated
    clip; ``check_files=False`` allows absent files, leaving them empty). Splits come from
    :func:`split_of`.

    Returns the :class:`VQADataset`, as :func:`load_dataset` does: the import report (rejected
    rows and cells) is ``ds.report``, the conversion's settings and counts are ``ds.info``.
    ``strict=True`` (default) raises :class:`DataValidationError` on any problem.
    """
    opts = _options(options, keywords)
    # 1. read the table
    df, sep = read_ratings_csv(csv_path, video_col=opts.video_col, sep=opts.sep, decimal=opts.decimal,
                               encoding=opts.encoding, sheet=opts.sheet,
                               id_cols=[c for c in (opts.rater_col, opts.dimension_col, opts.phase_col) if c])
    csv_path = resolve_path(csv_path)  # after reading: read_ratings_csv's error names a relative path's rule
    fname = csv_path.name
    # 2. map columns: where the videos and the scores are
    _check_layout(df, opts, fname)
    issues = _empty_video_cells(df, opts, fname)
    cells = _score_cells(df, opts, fname)
    # 3. map scale: each score cell to a rating on 1-5, or an issue
    schema = RS.resolve(opts.schema)
    rows, empty, not_rated = _map_scores(cells, opts, fname, issues, schema)
    # 4. build the tables (videos probed) and validate them
    root = resolve_path(opts.video_dir) if opts.video_dir is not None else csv_path.parent
    videos = _video_rows(df, opts, root, fname, issues)
    has_std = any("std" in r for r in rows)
    ratings = pd.DataFrame(rows, columns=[*RATING_COLUMNS, "raw_score", *(["std"] if has_std else []), "_line"])
    ds, report = validate(root, videos, ratings, None, files={"videos": f"{fname} (videos)", "ratings": fname},
                          min_raters=opts.min_raters, check_files=opts.check_files, issues=issues, schema=schema)
    # 5. report: rows read are the ratings built plus the cells rejected before validation
    rejected = sum(1 for i in issues if i.file == fname and i.kind in ("bad_value", "out_of_range"))
    report.n_rows["ratings"] = len(rows) + rejected
    scales = {d.key: [float(a), float(b)] for d in schema.dimensions for a, b in [_scale_of(opts, schema, d.key)]}
    one = list(scales.values())[0] if len({tuple(v) for v in scales.values()}) == 1 else scales
    ds.info = {"source": str(csv_path), "scale": one, "snap": opts.snap,
               "empty_cells": empty, "not_rated": not_rated, "na_values": [str(v) for v in opts.na_values], "sep": sep,
               "decimal": opts.decimal, "encoding": opts.encoding, "min_raters": opts.min_raters,
               "check_files": opts.check_files}
    return _checked(ds, opts.strict)


# ---- the steps of from_ratings_csv ----


class _Cell(NamedTuple):
    """One score cell of a ratings table, as written (``line``: the file's line, header = 1)."""

    line: int
    video: Any
    rater: Any
    dimension: Any
    value: Any
    phase: str
    std: Any = None  # the raters' standard deviation beside a MOS cell (std_col / std_columns), as written


def _check_layout(df: pd.DataFrame, opts: RatingsCsvOptions, fname: str) -> None:
    """The video column exists, exactly one layout is given, the scale has a width (else ``ValueError``)."""
    if opts.video_col not in df.columns:
        raise ValueError(f"{fname}: no column {opts.video_col!r} (columns: {list(df.columns)}); pass video_col=")
    layouts = [opts.score_columns is not None, opts.column_pattern is not None, opts.score_col is not None]
    if sum(layouts) != 1:
        raise ValueError("give exactly one of score_columns=, column_pattern= or "
                         "(rater_col=, dimension_col=, score_col=)")
    if opts.scale is not None and float(opts.scale[0]) == float(opts.scale[1]):
        raise ValueError(f"{fname}: scale={opts.scale} has zero width; pass the rating scale's "
                         "(lowest, highest) values")


def _empty_video_cells(df: pd.DataFrame, opts: RatingsCsvOptions, fname: str) -> list[Issue]:
    """A ``missing_field`` issue per row whose video cell is empty (its scores are skipped, not reported again)."""
    return [Issue("missing_field", fname, i + 2, opts.video_col, f"the {opts.video_col!r} cell is empty",
                  "fill in the video id or remove the row")
            for i, v in enumerate(df[opts.video_col]) if is_blank(v)]


def _wide_columns(df: pd.DataFrame, opts: RatingsCsvOptions, fname: str) -> dict[Any, tuple[Any, Any]]:
    """Score column -> (dimension, rater) of a wide table: ``score_columns``, or the columns that
    ``column_pattern`` matches."""
    score_columns = opts.score_columns
    if opts.column_pattern is not None:
        try:
            pat = re.compile(opts.column_pattern)
        except re.error as exc:
            raise ValueError(f"column_pattern {opts.column_pattern!r} is not a regular expression ({exc})") from None
        absent = [g for g in ("rater", "dimension") if g not in pat.groupindex]
        if absent:
            raise ValueError(f"column_pattern {opts.column_pattern!r} has no named group {' or '.join(absent)}: write "
                             "(?P<rater>...) and (?P<dimension>...) around the parts of the column name that "
                             r"give them, e.g. r'(?P<rater>r\d+)_(?P<dimension>\w+)'")
        score_columns = {}
        for c in df.columns:
            m = pat.fullmatch(str(c))
            if m:
                score_columns[c] = (m.group("dimension"), m.group("rater"))
        if not score_columns:
            raise ValueError(f"{fname}: no column matches column_pattern {opts.column_pattern!r} "
                             f"(columns: {list(df.columns)})")
    missing = [c for c in score_columns if c not in df.columns]
    if missing:
        raise ValueError(f"{fname}: score_columns {missing} are not columns of the CSV ({list(df.columns)})")
    return dict(score_columns)


def _score_cells(df: pd.DataFrame, opts: RatingsCsvOptions, fname: str) -> list[_Cell]:
    """Step "map columns": every score cell of the table, row by row (in a wide row, column by column)."""
    records = df.to_dict(orient="records")

    def phase_of(rec: dict) -> str:
        return str(rec[opts.phase_col]) if opts.phase_col else opts.phase

    if opts.score_col is not None:
        for col in (opts.rater_col, opts.dimension_col, opts.score_col):
            if col is None or col not in df.columns:
                raise ValueError(f"{fname}: long format needs rater_col, dimension_col and score_col that exist "
                                 f"(columns: {list(df.columns)})")
        if opts.std_col is not None and opts.std_col not in df.columns:
            raise ValueError(f"{fname}: std_col {opts.std_col!r} is not a column (columns: {list(df.columns)})")
        return [_Cell(i + 2, rec[opts.video_col], rec[opts.rater_col], rec[opts.dimension_col], rec[opts.score_col],
                      phase_of(rec), rec[opts.std_col] if opts.std_col else None) for i, rec in enumerate(records)]
    columns = _wide_columns(df, opts, fname)
    stds = dict(opts.std_columns or {})
    bad = sorted(str(c) for c in [*(k for k in stds if k not in columns), *(v for v in stds.values() if v not in df.columns)])
    if bad:
        raise ValueError(f"{fname}: std_columns {bad} are not score columns / columns of the table; std_columns maps a "
                         "score column to the column of its raters' standard deviation")
    return [_Cell(i + 2, rec[opts.video_col], rater, dim, rec[col], phase_of(rec),
                  rec[stds[col]] if col in stds else None)
            for i, rec in enumerate(records) for col, (dim, rater) in columns.items()]


def _scale_of(opts: RatingsCsvOptions, schema: RatingSchema, key: str | None) -> tuple[float, float]:
    """The scale a dimension's cells are read on: ``scale=`` when given, else the dimension's
    ``raw_range``, else the schema's own ``(lo, hi)``."""
    if opts.scale is not None:
        return (float(opts.scale[0]), float(opts.scale[1]))
    rr = schema.dimension(key).raw_range if key is not None else None
    return (float(rr[0]), float(rr[1])) if rr is not None else (schema.lo, schema.hi)


def _key_or_none(schema: RatingSchema, name: str) -> str | None:
    try:
        return schema.key_of(name)
    except ValueError:
        return None  # validation reports the unknown dimension


def _map_scores(cells: Iterable[_Cell], opts: RatingsCsvOptions, fname: str,
                issues: list[Issue], schema: RatingSchema | None = None) -> tuple[list[dict], int, int]:
    """Step "map scale": ``(rating rows, empty cells, 'not rated' cells)``; a bad cell's issue is
    appended to ``issues``.

    A cell of an empty video is skipped (reported once per row), an empty one or a ``na_values``
    marker counted; the rest must be a number within ``scale`` with a rater, mapped to 1-5 (and
    snapped to the grid with ``snap``), the value as written kept as ``raw_score``.
    """
    schema = RS.resolve(schema)
    na_text, na_num = _na_matchers(opts.na_values)
    dimension_map = dict(opts.dimension_map or {})
    rows: list[dict] = []
    empty = not_rated = 0
    for c in cells:
        if is_blank(c.video):
            continue
        if is_blank(c.value):
            empty += 1
            continue
        if _is_na_marker(c.value, na_text, na_num, opts.decimal):
            not_rated += 1
            continue
        dim = dimension_map.get(str(c.dimension), str(c.dimension))
        key = _key_or_none(schema, dim)
        scale = opts.scale if opts.scale is not None else _scale_of(opts, schema, key)
        x, issue = _score_in_scale(c, opts, fname, scale)
        if issue is None and is_blank(c.rater):
            issue = Issue("missing_field", fname, c.line, opts.rater_col or "rater",
                          f"the rater cell is empty (score {c.value!r} for video {c.video!r})",
                          "fill in the rater id or remove the row", str(c.video))
        if issue is not None:
            issues.append(issue)
            continue
        if opts.scale is None and key is not None and schema.dimension(key).raw_range is not None:
            mapped = float(schema.from_raw(x, key))
        else:
            mapped = float(map_scale(x, float(scale[0]), float(scale[1]), schema))
        row = {"video_id": str(c.video), "rater": str(c.rater), "phase": c.phase, "dimension": dim,
               "score": float(schema.snap(mapped)) if opts.snap else mapped, "tags": [], "comment": "",
               "raw_score": x, "_line": c.line}
        if c.std is not None and not is_blank(c.std):  # onto the schema's scale; validation checks the number
            try:
                row["std"] = _number(c.std, opts.decimal) * schema.span / abs(float(scale[1]) - float(scale[0]))
            except (TypeError, ValueError):
                row["std"] = c.std
        rows.append(row)
    return rows, empty, not_rated


def _score_in_scale(c: _Cell, opts: RatingsCsvOptions, fname: str,
                    scale: tuple[float, float] = (1.0, 5.0)) -> tuple[float, Issue | None]:
    """``(value, None)`` for a number within ``scale``, else ``(nan, the bad_value / out_of_range issue)``."""
    try:
        x = _number(c.value, opts.decimal)
    except (TypeError, ValueError):
        comma = opts.decimal == "." and _DECIMAL_COMMA.fullmatch(str(c.value).strip())
        hint = ("it has a decimal comma: pass decimal=','" if comma
                else "write scores as numbers, or list the marker in na_values= if it means 'not rated'")
        return math.nan, Issue("bad_value", fname, c.line, "score", f"score {c.value!r} is not a number", hint,
                               str(c.video))
    lo, hi = float(scale[0]), float(scale[1])
    if not (min(lo, hi) <= x <= max(lo, hi)):
        return math.nan, Issue("out_of_range", fname, c.line, "score",
                               f"score {x:g} ({c.rater}, {c.dimension}) is outside the declared scale {scale}",
                               "fix the value, pass the right scale=(lo, hi), or list a 'not rated' marker "
                               "in na_values=", str(c.video))
    return x, None


def _video_rows(df: pd.DataFrame, opts: RatingsCsvOptions, root: Path, fname: str, issues: list[Issue]) -> pd.DataFrame:
    """Step "build tables" (videos): one row per video in order of first appearance, probed when its file exists.

    A file that does not probe is a ``bad_value`` issue on the video's first line, and the video is left out.
    """
    records = df.to_dict(orient="records")
    vids = list(dict.fromkeys(str(v) for v in df[opts.video_col] if not is_blank(v)))
    cats = {str(r[opts.video_col]): r[opts.category_col] for r in records} if opts.category_col else {}
    first_line: dict[str, int] = {}
    for i, rec in enumerate(records):
        first_line.setdefault(str(rec[opts.video_col]), i + 2)
    rows = []
    for vid in vids:
        rel = opts.path_template.format(video=vid)
        full = Path(rel) if Path(rel).is_absolute() else root / rel
        meta = {"duration": np.nan, "fps": np.nan, "width": np.nan, "height": np.nan}
        if full.is_file():
            try:
                meta = probe_video(full)
            except Exception as exc:  # noqa: BLE001 - reported, the video is rejected
                issues.append(Issue("bad_value", fname, first_line[vid], opts.video_col,
                                    f"video file {full} could not be read ({type(exc).__name__}: {exc})",
                                    "replace the file or remove the video", vid))
                continue
        rows.append({"video_id": vid, "path": rel, **meta, "category": cats.get(vid, ""), "source": fname,
                     "split": split_of(vid, opts.test_fraction), "_line": first_line[vid]})
    return pd.DataFrame(rows, columns=[*VIDEO_COLUMNS, "_line"])


# ----------------------------------------------------------------------------------------------
# bring your own data: a public MOS label file (one score per clip)


def label_file_schema(benchmark: str, scale: Sequence[float], dmos: bool = False, levels: "RatingSchema | str" = "mos9",
                      target_rule: str = "nearest") -> RatingSchema:
    """The rating schema of a one-MOS-per-clip label file: one dimension ``overall_quality`` whose
    ``raw_range`` is the file's rating ``scale`` (``higher_is_better=False`` with ``dmos``), on the levels
    of ``levels`` (a schema or preset with one dimension or more; default ``mos9``, the nine-level grid
    1.0..5.0; ``qalign5`` for Q-Align's five words), benchmark answered by that dimension."""
    base = RS.get_schema(levels)
    lo, hi = float(scale[0]), float(scale[1])
    dim = RS.Dimension("overall_quality", "Overall Quality", description="the overall perceptual quality of the video",
                       raw_range=(min(lo, hi), max(lo, hi)), higher_is_better=not dmos)
    name = "".join(ch if ch.isalnum() else "_" for ch in str(benchmark).lower()).strip("_") or "mos"
    return RS.make_schema(f"{name}-{'dmos' if dmos else 'mos'}-{base.name}", [dim], base.values, base.strings,
                          base.keywords, target_rule=target_rule, benchmark_dimension="overall_quality",
                          min_std=base.min_std)


def dataset_from_label_file(benchmark: str, video_root: str | os.PathLike, out: str | os.PathLike | None = None, *,
                            labels: str | os.PathLike | None = None, split: str | None = None,
                            schema: "RatingSchema | str | None" = None, levels: "RatingSchema | str" = "mos9",
                            std_column: str | bool | None = None, dmos: bool = False,
                            dimension: str | None = None, test_fraction: float = 0.2, probe: bool = True,
                            fmt: str = "jsonl", labels_root: str | os.PathLike | None = None) -> VQADataset:
    """A training dataset from a public MOS label file (KoNViD-1k, LIVE-VQC, YouTube-UGC, LSVQ) and the
    videos a user has: one MOS row (rater ``"mos"``, phase ``final``) per clip found.

    ``benchmark``: ``KoNViD``, ``LIVE_VQC``, ``YouTubeUGC`` or ``LSVQ`` (:data:`vqalib.data.mos.BENCHMARKS`,
    which gives the nominal rating scale: 1-5 or 0-100). ``labels``: the label file (any format
    :func:`vqalib.data.mos.read_label_file` reads: the authors' files, FAST-VQA lists, VIDEVAL
    metadata CSVs); without it :func:`vqalib.data.mos.find_label_file` looks beside the videos, then
    under ``labels_root``. Videos are matched as :func:`vqalib.data.mos.load_benchmark` does; label
    rows with no video are counted (``ds.info['n_unmatched']``), listed in ``ds.info['unmatched']``
    (with ``out``: the first 20, and all of them in ``out/unmatched_labels.csv``): never dropped
    silently. No video found at all raises ``FileNotFoundError``.

    The schema: ``schema`` when given (it must have one dimension, or name it with ``dimension``; a
    dimension without ``raw_range`` gets the benchmark's scale), else :func:`label_file_schema`
    (``overall_quality`` on the levels of ``levels``, raw range the benchmark's scale). The MOS is
    mapped with :meth:`RatingSchema.from_raw` (not snapped); ``dmos=True`` says the column is a DMOS
    (higher = worse) and flips it. ``std_column``: the column of the raters' standard deviation on the
    raw scale (None: ``mos_std`` when the file has it, as YouTube-UGC's does; False: none); it is
    scaled onto the schema's scale into the ``std`` column, and the target rule becomes ``gaussian``
    (DeQA-Score's soft labels, :func:`label_targets`) unless a given ``schema`` says otherwise.

    With ``out`` the dataset is saved there (:func:`save_dataset`: tables, ``dataset.json`` with the
    provenance and counts, ``rating_schema.json``) and reloaded from it. Returns the dataset
    (``ds.report``: validation; ``ds.info``: label file, sha256, scale, counts).
    """
    import dataclasses

    from vqalib.data import mos as M

    bench = M.load_benchmark(benchmark, video_root, split=split, labels_root=labels_root, label_file=labels)
    key = M.benchmark_key(benchmark)
    if bench.available.empty:
        raise FileNotFoundError(f"none of the {bench.n_listed} videos of {bench.label_file} was found under "
                                f"{bench.video_root} (first listed: {bench.missing['relative_path'].head(3).tolist()}); "
                                f"pass the folder holding the {bench.name} videos (any subset, files named as listed)")
    scale = tuple(float(x) for x in bench.scale)
    table = pd.concat([bench.available, bench.missing], ignore_index=True)
    if std_column is None:
        std_column = "mos_std" if "mos_std" in table.columns else False
    elif std_column is not False and std_column not in table.columns:
        raise ValueError(f"{bench.label_file}: no column {std_column!r} for std_column (columns read: "
                         f"{[c for c in table.columns if c not in ('path', 'mos_1to5')]}); pass std_column=False "
                         "for none")
    if schema is None:
        s = label_file_schema(key, scale, dmos=dmos, levels=levels, target_rule="gaussian" if std_column else "nearest")
    else:
        s = RS.get_schema(schema)
        if dimension is None and s.n_dims != 1:
            raise ValueError(f"the rating schema {s!r} has {s.n_dims} dimensions; pass dimension= (the one the MOS "
                             "rates)")
        dkey = s.key_of(dimension) if dimension is not None else s.keys[0]
        d = s.dimension(dkey)
        fixed = dataclasses.replace(d, raw_range=d.raw_range if d.raw_range is not None else scale,
                                    higher_is_better=False if dmos else d.higher_is_better)
        if fixed != d:
            s = dataclasses.replace(s, dimensions=tuple(fixed if x.key == dkey else x for x in s.dimensions))
    dkey = s.key_of(dimension) if dimension is not None else s.keys[0]
    dim = s.dimension(dkey)
    raw_lo, raw_hi = dim.raw_range if dim.raw_range is not None else (s.lo, s.hi)
    std_factor = s.span / (raw_hi - raw_lo)
    avail = bench.available
    videos, ratings = [], []
    issues: list[Issue] = []
    fname = bench.label_file.name
    for i, rec in enumerate(avail.to_dict(orient="records")):
        vid = str(rec["video_id"])
        meta = {"duration": rec.get("duration_s", np.nan), "fps": rec.get("fps", np.nan),
                "width": rec.get("width", np.nan), "height": rec.get("height", np.nan)}
        if probe:
            try:
                meta = probe_video(rec["path"])
            except Exception as exc:  # noqa: BLE001 - reported, the video is rejected
                issues.append(Issue("bad_value", fname, None, "path", f"video file {rec['path']} could not be read "
                                    f"({type(exc).__name__}: {exc})", "replace the file or remove it", vid))
                continue
        videos.append({"video_id": vid, "path": str(rec["path"]), **meta, "category": str(rec.get("category") or ""),
                       "source": f"{bench.name}:{fname}", "split": split_of(vid, test_fraction), "_line": i + 1})
        row = {"video_id": vid, "rater": MOS_RATER, "phase": "final", "dimension": dkey,
               "score": float(s.from_raw(float(rec["mos"]), dkey)), "tags": [], "comment": "",
               "raw_score": float(rec["mos"]), "_line": i + 1}
        if std_column:
            sd = pd.to_numeric(pd.Series([rec.get(std_column)]), errors="coerce").iloc[0]
            row["std"] = float(sd) * std_factor if np.isfinite(sd) else np.nan
        ratings.append(row)
    vdf = pd.DataFrame(videos, columns=[*VIDEO_COLUMNS, "_line"])
    rdf = pd.DataFrame(ratings, columns=[*RATING_COLUMNS, "raw_score", *(["std"] if std_column else []), "_line"])
    ds, report = validate(Path(bench.video_root), vdf, rdf, None,
                          files={"videos": f"{fname} (videos)", "ratings": fname}, min_raters=1, schema=s,
                          issues=issues)
    unmatched = bench.missing["video_id"].astype(str).tolist()
    ds.info = {"source": str(bench.label_file), "label_sha256": bench.label_sha256, "benchmark": bench.name,
               "split": bench.split, "scale": list(scale), "dmos": bool(dmos), "std_column": std_column or None,
               "rows": int(bench.n_listed), "n_matched": int(len(avail)), "n_unmatched": len(unmatched),
               "unmatched": unmatched, "min_raters": 1, "check_files": True}
    if out is None:
        return ds
    if unmatched:  # the full list goes to a file beside the tables, dataset.json keeps the first 20
        ds.info.update(unmatched=unmatched[:20], unmatched_file="unmatched_labels.csv")
    folder = save_dataset(ds, out, fmt=fmt)
    if unmatched:
        bench.missing[["video_id", "relative_path", "mos"]].to_csv(folder / "unmatched_labels.csv", index=False)
    back = load_dataset(folder, strict=False)
    back.report = ds.report
    return back
