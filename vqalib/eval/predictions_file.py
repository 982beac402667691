"""Predictions files: one row per (video, dimension), written as JSONL with a manifest beside it.

Any table or plot of notebook 07 is rebuilt from these files without re-running the model.

``RUN_DIR/predictions/<name>.jsonl`` holds one JSON object per line::

    {"video_id": "v0001", "dimension": "motion_quality", "target": 3.5,
     "parsed_score": 3.0, "expected_score": 3.21, "argmax_score": 3.0,
     "dist": [0.01, ..., 0.02], "outside_mass": 0.03,
     "raw_text": "Motion Quality: 3.0\\n...", "parse_status": "ok"}

- ``dimension``: a key of the file's rating schema (:mod:`vqalib.schema.rating`; the paper's five
  ``vqalib.schema.levels.DIMENSION_KEYS`` by default).
- ``target``: the human score on the schema's scale (1-5 for the paper; may be off its grid for mapped
  MOS) or null (unlabelled).
- ``parsed_score``: the score read from the generated text, null unless ``parse_status == "ok"``.
- ``parse_status``: ``ok`` | ``missing`` (the dimension's line is absent) | ``unparsable``
  (present but not a level of the schema).  Failures are kept as rows, never filled with a default.
- ``dist``: ``pi(s|x)`` over the schema's K levels (9 for the paper; sums to 1), or null when not
  computed; then ``expected_score = sum_s s pi(s)`` and ``argmax_score`` must agree with it (checked).
- ``outside_mass``: probability mass on continuations that are none of the K level strings.
Extra fields (e.g. ``split``, ``mos``) are kept as columns.

``RUN_DIR/predictions/<name>.manifest.json``: ``model``, ``parameters``, ``sampling``
(``SamplingConfig.to_dict()``), ``environment`` (versions, git commit: ``runs.environment_info()``),
``created``, ``n_rows``, ``parse_status_counts``, ``schema_version``, ``rating_schema`` (the rating
schema's :meth:`~vqalib.schema.rating.RatingSchema.to_dict`; a file without it is the paper's; rows are
checked against it and :func:`read_predictions` rebuilds it: :func:`schema_of_manifest`, and the
frame's ``attrs["rating_schema"]``); files written by
:func:`vqalib.eval.predict.predict_to_file` add ``generation``: every decoding parameter used
(:func:`vqalib.model.generation.describe`: greedy, no repetition penalty, the suppressed and stop tokens)
and the checkpoint's ``generation_config`` entries that were not used.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema
from vqalib.core.runs import environment_info, jsonable, relative_note, resolve_path, write_json

SCHEMA_VERSION = 1
COLUMNS: tuple[str, ...] = (
    "video_id", "dimension", "target", "parsed_score", "expected_score", "argmax_score",
    "dist", "outside_mass", "raw_text", "parse_status",
)
PARSE_STATUSES: tuple[str, ...] = ("ok", "missing", "unparsable")
#: Order in which notebook 07 lists models when these file names exist.
MODEL_ORDER: tuple[str, ...] = ("base", "sft", "grpo", "aso")


class PredictionsError(ValueError):
    """A predictions file or frame is malformed; the message names the file, line and field."""


#: Key of the rating schema in a predictions manifest (and in ``DataFrame.attrs`` of a frame read back).
SCHEMA_KEY = "rating_schema"


def schema_of_manifest(manifest: dict[str, Any] | None, where: str = "manifest") -> RatingSchema:
    """The rating schema a predictions (or scores) manifest records; the paper's when it records none
    (files written before schemas were saved). Raises :class:`PredictionsError` naming ``where``."""
    data = (manifest or {}).get(SCHEMA_KEY)
    if data is None:
        return rating.PAPER
    try:
        return rating.schema_from_dict(data, where=f"{where}: {SCHEMA_KEY}")
    except ValueError as e:
        raise PredictionsError(str(e)) from None


def schema_of_frame(df: pd.DataFrame, schema: RatingSchema | str | None = None) -> RatingSchema:
    """``schema`` when given, else the one :func:`read_predictions` put in ``df.attrs``, else the paper's."""
    if schema is not None:
        return rating.resolve(schema)
    got = getattr(df, "attrs", {}).get(SCHEMA_KEY)
    return got if isinstance(got, RatingSchema) else rating.PAPER


def schema_of_frames(frames, schema: RatingSchema | str | None = None) -> RatingSchema:
    """One schema for several predictions frames (:func:`schema_of_frame` of each); raises
    ``ValueError`` naming both when they were written with different schemas."""
    if schema is not None:
        return rating.resolve(schema)
    found = [schema_of_frame(df) for df in frames]
    for s in found[1:]:
        if s != found[0]:
            raise ValueError(f"predictions written with different rating schemas ({found[0]!r} and {s!r}) cannot "
                             "share one table; compare models trained on the same schema")
    return found[0] if found else rating.PAPER


def _schema_text(schema: RatingSchema) -> str:
    return f"the {schema.name!r} rating schema (K={schema.n_levels} levels {list(schema.strings)})"


def manifest_path(path: str | os.PathLike) -> Path:
    """``x/name.jsonl`` -> ``x/name.manifest.json``."""
    p = resolve_path(path)
    return p.with_name(p.name[: -len(".jsonl")] + ".manifest.json" if p.name.endswith(".jsonl") else p.name + ".manifest.json")


def make_manifest(model: str, sampling: dict[str, Any] | Any, parameters: dict[str, Any] | None = None,
                  **extra: Any) -> dict[str, Any]:
    """A manifest dict: model id/path, sampling settings (a ``SamplingConfig`` or its dict), parameters."""
    if hasattr(sampling, "to_dict"):
        sampling = sampling.to_dict()
    return {"model": str(model), "parameters": dict(parameters or {}), "sampling": dict(sampling), **extra}


def _num(v: Any) -> float | None:
    """JSON value -> float or None (null / NaN -> None); raises TypeError for non-numbers."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"expected a number or null, got {type(v).__name__} {v!r}")
    f = float(v)
    return None if math.isnan(f) else f


def _check_row(row: dict[str, Any], where: str, schema: RatingSchema | None = None) -> dict[str, Any]:
    """Validate and normalise one row against ``schema`` (None: the paper's); ``where`` (e.g.
    ``"base.jsonl line 12"``) prefixes errors."""
    schema = rating.resolve(schema)
    keys, levels, k = schema.keys, schema.levels, schema.n_levels
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise PredictionsError(f"{where}: missing field(s) {missing}; every row needs {list(COLUMNS)}")
    out = dict(row)
    if out["video_id"] is None or str(out["video_id"]) == "":
        raise PredictionsError(f"{where}: field 'video_id' is empty")
    out["video_id"] = str(out["video_id"])
    if out["dimension"] not in keys:
        raise PredictionsError(f"{where}: field 'dimension' = {out['dimension']!r} is not one of {list(keys)} "
                               f"of {_schema_text(schema)} (use the schema's key_of to convert display names)")
    for f in ("target", "parsed_score", "expected_score", "argmax_score", "outside_mass"):
        try:
            out[f] = _num(out[f])
        except TypeError as e:
            raise PredictionsError(f"{where}: field {f!r}: {e}") from None
    for f in ("target", "parsed_score", "expected_score", "argmax_score"):
        v = out[f]
        if v is not None and not (schema.lo - 1e-6 <= v <= schema.hi + 1e-6):
            raise PredictionsError(f"{where}: field {f!r} = {v} is outside [{schema.lo}, {schema.hi}]" +
                                   ("" if schema.is_paper else f" of {_schema_text(schema)}"))
    if out["outside_mass"] is not None and not (-1e-6 <= out["outside_mass"] <= 1 + 1e-6):
        raise PredictionsError(f"{where}: field 'outside_mass' = {out['outside_mass']} is not a probability in [0, 1]")
    st = out["parse_status"]
    if st not in PARSE_STATUSES:
        raise PredictionsError(f"{where}: field 'parse_status' = {st!r} is not one of {list(PARSE_STATUSES)}")
    if st == "ok" and out["parsed_score"] is None:
        raise PredictionsError(f"{where}: parse_status 'ok' but 'parsed_score' is null")
    if st != "ok" and out["parsed_score"] is not None:
        raise PredictionsError(f"{where}: parse_status {st!r} but 'parsed_score' = {out['parsed_score']} "
                               "(a failed parse must not carry a score)")
    if out["raw_text"] is not None and not isinstance(out["raw_text"], str):
        raise PredictionsError(f"{where}: field 'raw_text' must be a string or null, got {type(out['raw_text']).__name__}")
    d = out["dist"]
    if d is not None:
        if isinstance(d, np.ndarray):
            d = d.tolist()
        if not isinstance(d, (list, tuple)) or len(d) != k:
            got = f" (got {len(d)})" if isinstance(d, (list, tuple)) else ""
            raise PredictionsError(f"{where}: field 'dist' must be a list of K={k} probabilities or null{got}"
                                   + ("" if schema.is_paper else f": {_schema_text(schema)}"))
        try:
            arr = np.array([_num(x) if x is not None else np.nan for x in d], dtype=float)
        except TypeError as e:
            raise PredictionsError(f"{where}: field 'dist': {e}") from None
        if not np.all(np.isfinite(arr)) or (arr < -1e-9).any() or abs(arr.sum() - 1) > 1e-4:
            raise PredictionsError(f"{where}: field 'dist' is not a distribution over the {k} levels "
                                   f"(sum {np.nansum(arr):.6f}); renormalise over the levels before writing")
        es = float(arr @ levels)
        if out["expected_score"] is None or abs(out["expected_score"] - es) > 1e-3:
            raise PredictionsError(f"{where}: 'expected_score' = {out['expected_score']} but the dist gives {es:.4f}")
        am = out["argmax_score"]
        # Ties are allowed: argmax_score must be one of the levels holding the maximum probability.
        if am is None or not schema.is_on_grid(am) or arr[schema.index(am)] < arr.max() - 1e-9:
            raise PredictionsError(f"{where}: 'argmax_score' = {am} but the dist's argmax is "
                                   f"{float(levels[int(arr.argmax())])}")
        out["dist"] = arr.tolist()
    return out


def validate_predictions(df: pd.DataFrame, where: str = "predictions", *,
                         schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Check every row (fields, ranges, dist consistency, no duplicate (video_id, dimension)) against the
    rating ``schema`` (None: the one in ``df.attrs``, else the paper's); return a clean copy that carries
    the schema in ``attrs["rating_schema"]``."""
    if not isinstance(df, pd.DataFrame):
        raise PredictionsError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise PredictionsError(f"{where}: missing column(s) {missing}; every row needs {list(COLUMNS)}")
    schema = schema_of_frame(df, schema)
    rows = [_check_row(r, f"{where} row {i}", schema) for i, r in enumerate(df.to_dict("records"))]
    out = _frame(rows, df.columns)
    _check_duplicates(out, lambda i: f"{where} row {i}")
    out.attrs[SCHEMA_KEY] = schema
    return out


def _frame(rows: list[dict[str, Any]], columns) -> pd.DataFrame:
    cols = list(COLUMNS) + [c for c in columns if c not in COLUMNS]
    out = pd.DataFrame(rows, columns=cols)
    for c in ("target", "parsed_score", "expected_score", "argmax_score", "outside_mass"):
        out[c] = pd.to_numeric(out[c], errors="raise").astype(float)
    return out


def _check_duplicates(df: pd.DataFrame, name_of) -> None:
    dup = df.duplicated(["video_id", "dimension"], keep=False)
    if dup.any():
        idx = np.flatnonzero(dup.to_numpy())
        first = df.iloc[idx[0]]
        same = [int(i) for i in idx if df.iloc[i]["video_id"] == first["video_id"] and df.iloc[i]["dimension"] == first["dimension"]]
        raise PredictionsError(f"{name_of(same[0])} and {name_of(same[1])}: duplicate prediction for video "
                               f"{first['video_id']!r}, dimension {first['dimension']!r}; keep one row per pair")


def write_predictions(path: str | os.PathLike, df: pd.DataFrame, manifest: dict[str, Any], *,
                      schema: RatingSchema | str | None = None) -> Path:
    """Validate ``df`` against the rating ``schema`` and write it as JSONL plus ``<name>.manifest.json``;
    returns the JSONL path.

    ``manifest`` needs at least ``model`` and ``sampling`` (see :func:`make_manifest`); the
    environment (versions, git commit), creation time, row count, parse-status counts and
    ``rating_schema`` (``schema.to_dict()``) are added. ``schema`` None: the manifest's
    ``rating_schema``, else ``df.attrs``', else the paper's; a manifest recording another schema than
    ``schema`` raises. A relative ``path`` is taken from the project root (:func:`vqalib.core.runs.resolve_path`).
    """
    path = resolve_path(path)
    if not path.name.endswith(".jsonl"):
        raise PredictionsError(f"{path}: predictions files end in .jsonl")
    for key in ("model", "sampling"):
        if key not in manifest:
            raise PredictionsError(f"{path}: manifest lacks {key!r}; build it with predictions.make_manifest(model, sampling, parameters)")
    if manifest.get(SCHEMA_KEY) is not None:
        recorded = schema_of_manifest(manifest, str(path))
        if schema is not None and rating.resolve(schema) != recorded:
            raise PredictionsError(f"{path}: the manifest records {recorded!r} but schema={rating.resolve(schema)!r}; "
                                   "give one")
        schema = recorded
    schema = schema_of_frame(df, schema)
    clean = validate_predictions(df, where=str(path), schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        for row in clean.to_dict("records"):
            fh.write(json.dumps(jsonable(row), allow_nan=False) + "\n")
    os.replace(tmp, path)
    counts = {s: int((clean["parse_status"] == s).sum()) for s in PARSE_STATUSES}
    full = {"schema_version": SCHEMA_VERSION, **manifest, "environment": manifest.get("environment") or environment_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "n_rows": len(clean), "parse_status_counts": counts,
            SCHEMA_KEY: schema.to_dict()}
    write_json(manifest_path(path), full)
    return path


def read_predictions(path: str | os.PathLike, require_manifest: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read and validate a predictions JSONL and its manifest: ``(df, manifest)``.

    Rows are checked against the rating schema the manifest records (``rating_schema``; none: the
    paper's), which is rebuilt into ``df.attrs["rating_schema"]`` (also :func:`schema_of_manifest`).
    Errors name the file, the line, the field and (for a K or dimension mismatch) the schema. A missing
    manifest raises unless ``require_manifest=False`` (then the manifest is ``{}`` and the schema the
    paper's). A relative ``path`` is taken from the project root.
    """
    given, path = path, resolve_path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: predictions file not found{relative_note(given)}")
    mpath = manifest_path(path)
    manifest, bad_manifest = {}, None
    if mpath.is_file():  # read first for the rating schema the rows are checked against; errors after the rows'
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as e:
            bad_manifest = PredictionsError(f"{mpath}: invalid JSON ({e.msg} at line {e.lineno})")
    schema = schema_of_manifest(manifest if isinstance(manifest, dict) else {}, str(mpath))
    rows = []
    with path.open() as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise PredictionsError(f"{path} line {n}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise PredictionsError(f"{path} line {n}: expected a JSON object, got {type(obj).__name__}")
            obj = _check_row(obj, f"{path} line {n}", schema)
            obj["_line"] = n
            rows.append(obj)
    if not rows:
        raise PredictionsError(f"{path}: no prediction rows")
    cols = list(dict.fromkeys(c for r in rows for c in r))
    df = _frame(rows, cols)
    lines = df.pop("_line").tolist()
    _check_duplicates(df, lambda i: f"{path} line {lines[i]}")
    if bad_manifest is not None:
        raise bad_manifest
    if not mpath.is_file() and require_manifest:
        raise PredictionsError(f"{path}: manifest {mpath.name} not found beside it; write files with "
                               "predictions.write_predictions, or pass require_manifest=False")
    df.attrs[SCHEMA_KEY] = schema
    return df, manifest


def prediction_files(run_dir: str | os.PathLike) -> dict[str, Path]:
    """``{name: path}`` of ``RUN_DIR/predictions/*.jsonl``: base, sft, grpo, aso first, others sorted."""
    from vqalib.core.runs import resolve_path

    folder = resolve_path(run_dir) / "predictions"
    files = {p.name[: -len(".jsonl")]: p for p in sorted(folder.glob("*.jsonl"))} if folder.is_dir() else {}
    order = [n for n in MODEL_ORDER if n in files] + [n for n in files if n not in MODEL_ORDER]
    return {n: files[n] for n in order}


def parse_failure_counts(df: pd.DataFrame, *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Per dimension of the schema (:func:`schema_of_frame`), in its order: rows, ``ok``, ``missing``,
    ``unparsable`` counts and the parsed share."""
    keys = schema_of_frame(df, schema).keys
    tab = (df.groupby("dimension")["parse_status"].value_counts().unstack(fill_value=0)
           .reindex(index=[d for d in keys if d in set(df["dimension"])], columns=list(PARSE_STATUSES), fill_value=0))
    tab.insert(0, "rows", tab.sum(axis=1))
    tab["parsed_share"] = tab["ok"] / tab["rows"]
    return tab


def rows_from_distributions(video_ids, dimension: str, dists, targets=None, parsed_scores=None,
                            parse_status=None, raw_texts=None, outside_mass=None, *,
                            schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Prediction rows for one dimension from level distributions ``[n, K]`` over the rating ``schema``'s
    levels (None: the paper's nine; readouts computed here).

    ``parsed_scores`` (NaN/None = not parsed) and ``parse_status`` default to "no generated text":
    ``parse_status`` is then ``"missing"`` for every row, so a table built from the parsed
    readout shows honestly that nothing was generated.
    """
    schema = rating.resolve(schema)
    levels = schema.levels
    d = np.asarray(dists, dtype=float)
    n = len(video_ids)
    if d.shape != (n, schema.n_levels):
        raise PredictionsError(f"dists has shape {d.shape}, expected ({n}, {schema.n_levels})"
                               + ("" if schema.is_paper else f": K={schema.n_levels} levels of {_schema_text(schema)}"))
    d = d / d.sum(axis=1, keepdims=True)
    def col(v, default):
        return [default] * n if v is None else list(v)
    parsed = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in col(parsed_scores, None)]
    status = col(parse_status, None)
    status = [s if s is not None else ("ok" if p is not None else "missing") for s, p in zip(status, parsed)]
    df = pd.DataFrame({
        "video_id": [str(v) for v in video_ids],
        "dimension": dimension,
        "target": col(targets, None),
        "parsed_score": parsed,
        "expected_score": d @ levels,
        "argmax_score": levels[d.argmax(axis=1)],
        "dist": [row.tolist() for row in d],
        "outside_mass": col(outside_mass, 0.0),
        "raw_text": col(raw_texts, None),
        "parse_status": status,
    })
    return validate_predictions(df, where=f"rows_from_distributions({dimension})", schema=schema)
