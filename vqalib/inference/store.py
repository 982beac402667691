"""The scorer's output table: one row per video, appended batch by batch, resumable.

Formats by file suffix:

- ``.csv`` and ``.jsonl``: each batch's rows are appended with **one** ``write`` on a file opened
  in append mode, then ``fsync``; a run killed mid-write can leave at most one torn row at the
  end, which :meth:`RowStore.open` detects (no final newline, a wrong field count, invalid JSON)
  and cuts off with a warning, so that video is scored again. Nothing written before is lost.
- ``.parquet`` (cannot be appended to): rows go to a JSONL journal ``<name>.parquet.partial.jsonl``
  as above; :meth:`RowStore.close` writes the Parquet file atomically (temporary file, then
  ``os.replace``) and removes the journal. A killed run resumes from the Parquet file plus the journal.

A manifest ``<name>.manifest.json`` beside the output records the model, mode, sampling settings,
instruction and (generate mode) every decoding parameter (``generation``, :mod:`vqalib.model.generation`). Resuming with different settings raises (the rows would not be comparable);
use a new output file, or ``overwrite=True``.

One run at a time: a scorer run (:meth:`vqalib.inference.scorer.Scorer.score`) takes an exclusive
lock (:func:`acquire_lock`, ``fcntl.flock``) on ``<name>.lock`` beside the output before it reads
the output and holds it to the end of the run (or of the process, however it ends: the kernel
drops the lock). A second run on the same output is refused with
:class:`OutputLocked`, naming the other run (its pid, command line and start time) from the lock
file. The lock file stays (removing it could let two runs lock two different files); it is empty
of meaning when no process holds the lock.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from vqalib.core.runs import jsonable, relative_note, resolve_path, write_json

#: Manifest keys that must agree between the run that wrote an output and the one resuming it
#: (``rating_schema``: an output written before schemas were saved is the paper's).
RESUME_KEYS = ("model", "mode", "sampling", "instruction", "max_new_tokens", "generation", "rating_schema")


def _written(old: dict[str, Any], key: str) -> Any:
    """``old[key]`` as written; a manifest without ``rating_schema`` recorded the paper's schema."""
    if key == "rating_schema" and old.get(key) is None:
        from vqalib.schema.rating import PAPER

        return PAPER.to_dict()
    return old.get(key)


class ResumeMismatch(ValueError):
    """The output file was written with other settings than the current run."""


class OutputLocked(RuntimeError):
    """Another run is writing into the same output (its lock is held)."""


def lock_path(path: str | os.PathLike) -> Path:
    """``<output>.lock``: the file a run locks while it writes ``path``."""
    p = resolve_path(path)
    return p.with_name(p.name + ".lock")


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another run"
    return (f"another run (pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: "
            f"{info.get('command')})")


def acquire_lock(path: str | os.PathLike) -> int:
    """Take the output's lock (non-blocking) and write who holds it; returns the open descriptor.

    Raises :class:`OutputLocked` naming the holder when another process holds it. Release with
    :func:`release_lock` (or let the process end)."""
    import fcntl
    import socket
    import sys
    import time

    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputLocked(f"{resolve_path(path)} is being written by {_holder(lock)}; wait for it to finish (then "
                           "rerun to resume), stop it, or write to another output file") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    return fd


def release_lock(fd: int | None) -> None:
    """Drop a lock taken with :func:`acquire_lock` (the lock file stays)."""
    if fd is None:
        return
    import fcntl

    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def check_not_locked(path: str | os.PathLike) -> None:
    """Raise :class:`OutputLocked` when another run holds the output's lock (a check before loading
    a model; :meth:`RowStore.open` takes the lock for real)."""
    if lock_path(path).is_file():
        release_lock(acquire_lock(path))


def manifest_path(path: str | os.PathLike) -> Path:
    p = resolve_path(path)
    return p.with_name(p.name + ".manifest.json")


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".partial.jsonl")


def remove_output(path: str | os.PathLike) -> None:
    """Delete an output, its Parquet journal and its manifest (what ``overwrite`` starts again from)."""
    p = resolve_path(path)
    for f in (p, _journal(p), manifest_path(p)):
        f.unlink(missing_ok=True)


def manifest_mismatch(path: str | os.PathLike, manifest: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """``(key, written, now)`` for the first of :data:`RESUME_KEYS` on which ``path``'s manifest differs from
    ``manifest``; None when they agree or ``path`` has no manifest yet."""
    mp = manifest_path(path)
    if not mp.is_file():
        return None
    old, new = json.loads(mp.read_text()), jsonable(manifest)
    if new.get("rating_schema") is None:  # a caller that records no schema writes the paper's
        new = {**new, "rating_schema": _written(new, "rating_schema")}
    k = next((k for k in RESUME_KEYS if jsonable(_written(old, k)) != new.get(k)), None)
    return None if k is None else (k, _written(old, k), new.get(k))


def show(key: str, value: Any) -> str:
    """A manifest value for a message: a rating schema by its name, K and dimensions, anything else as repr."""
    if key == "rating_schema" and isinstance(value, dict):
        dims = [d.get("key") for d in value.get("dimensions", [])]
        return f"the {value.get('name')!r} rating schema (K={len(value.get('levels', []))}, dimensions {dims})"
    return repr(value)


def _append(path: Path, text: str) -> None:
    """Append ``text`` with a single write, then flush it to disk."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def _truncate(path: Path, n_bytes: int, why: str) -> None:
    warnings.warn(f"{path}: {why}; cut the file to its last complete row (that video is scored again)", stacklevel=3)
    with open(path, "r+b") as f:
        f.truncate(n_bytes)


def _read_jsonl(path: Path, cut: bool = True) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (killed mid-write) is cut off (``cut=False``: left out
    with a warning, the file unchanged), a bad line elsewhere raises."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    rows, pos = [], 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if last and not line:
            break
        try:
            if last:  # no newline after it: an interrupted write
                raise ValueError("no final newline")
            rows.append(json.loads(line))
        except ValueError as e:
            if i >= len(lines) - 2:
                if cut:
                    _truncate(path, pos, f"torn last row ({e})")
                else:
                    warnings.warn(f"{path}: left out a torn last row ({e})", stacklevel=3)
                break
            raise ValueError(f"{path} line {i + 1}: not valid JSON ({e}); the file is damaged, remove that line") from e
        pos += len(line) + 1
    return rows


#: Output columns that hold text (ids, paths, status, messages, answers): read as strings, never as
#: numbers, so ids like ``0001``, ``007.5``, ``1e5``, ``NA`` and ``null`` come back exactly as written.
TEXT_COLUMNS = ("video_id", "path", "status", "error", "mode", "rationale", "raw_text", "dist_prefix", "hdr")


def is_text_column(name: str) -> bool:
    """True for the text columns of a scorer output (:data:`TEXT_COLUMNS` and ``<dim>_parse_status``)."""
    return name in TEXT_COLUMNS or name.endswith("_parse_status")


def _csv_records(text: str) -> list[tuple[int, list[str]]]:
    """``(end offset in characters, fields)`` per CSV record; an unterminated quoted field ends the
    list with an empty record (a torn last row)."""
    consumed = 0
    # split on "\n" alone: str.splitlines also splits on \x1c-\x1e, \x85 and \u2028, which a model's
    # generated text can hold and the CSV writer leaves unquoted (a row was read as two, and a torn
    # row as complete)
    parts = text.split("\n")
    lines = iter([line + "\n" for line in parts[:-1]] + ([parts[-1]] if parts[-1] else []))

    def feed():
        nonlocal consumed
        for line in lines:
            consumed += len(line)
            yield line

    ends: list[tuple[int, list[str]]] = []
    try:
        for row in csv.reader(feed(), strict=True):
            ends.append((consumed, row))
    except csv.Error:
        ends.append((consumed, []))  # an unterminated quoted field: the last row is torn
    return ends


def _typed_frame(path: Path, header: list[str], records: list[list[str]]) -> pd.DataFrame:
    """A scorer output frame from CSV records (the header excluded): text columns as strings (an
    empty cell is None), the others numeric (an empty cell is NaN). Header lines repeated inside the
    data (two runs that wrote into one file before the lock) are skipped with a warning that counts them."""
    body = [r for r in records if r != header]
    if len(body) < len(records):
        warnings.warn(f"{path}: skipped {len(records) - len(body)} repeated header line(s) inside the data "
                      "(two runs wrote into this file at once)", stacklevel=3)
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(f"{path}: a row has {len(r)} fields where the header has {len(header)} (row {i + 1} of "
                             "the data); the file is damaged: remove that row")
    df = pd.DataFrame(body, columns=header, dtype=object) if body else pd.DataFrame(columns=header)
    for c in header:
        col = df[c]
        if is_text_column(c):
            df[c] = col.where(col != "", None).astype(object)
        else:
            try:
                df[c] = pd.to_numeric(col.replace("", np.nan))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}: column {c!r} holds a value that is not a number ({e}); the file is damaged "
                                 "or not a scorer output") from e
    return df


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of a CSV file written by :class:`RowStore`; a torn last row (or a torn header, the whole
    file) is cut off, repeated header lines are skipped."""
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns))
    text = path.read_bytes().decode()
    ends = _csv_records(text)
    if not ends:
        return pd.DataFrame(columns=list(columns))
    header = ends[0][1]
    if len(ends) == 1 and not text.endswith("\n") and ",".join(columns).startswith(text):
        _truncate(path, 0, "torn header (killed while writing its first line)")
        return pd.DataFrame(columns=list(columns))
    if list(header) != list(columns):
        raise ResumeMismatch(f"{path}: its columns differ from this scorer's ({len(header)} vs {len(columns)} columns); "
                             "it was written by another version or mode: use a new output file")
    last_end, last = ends[-1]
    if len(ends) > 1 and (not text.endswith("\n") or len(last) != len(header)):
        keep = ends[-2][0]
        _truncate(path, len(text[:keep].encode()), "torn last row")
        ends = ends[:-1]
    return _typed_frame(path, header, [r for _, r in ends[1:]])


class OutputError(ValueError):
    """The output path cannot be written (unsupported suffix, a folder, a path under a file)."""


OUTPUT_SUFFIXES = (".csv", ".jsonl", ".parquet")


def check_output(path: str | os.PathLike, settings: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Everything about an output that can be checked before a model is loaded; returns the resolved path.

    Raises :class:`OutputError` for a suffix other than .csv/.jsonl/.parquet, an output that is a
    folder, or a path below an existing file; :class:`ResumeMismatch` when the output's manifest was
    written with other ``settings`` (a subset of :data:`RESUME_KEYS`, e.g. ``{"mode": "fast"}``)
    and ``overwrite`` is false; :class:`OutputLocked` when another run writes into it."""
    p = resolve_path(path)
    if p.is_dir():
        raise OutputError(f"{p} is a folder; give a file name inside it, e.g. {p / 'scores.csv'}")
    if p.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(f"{p}: output must end in .csv, .jsonl or .parquet (the suffix picks the format), "
                          f"not {p.suffix or 'no suffix'!r}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{p}: {parent} is a file, not a folder, so nothing can be written below it; "
                                  "choose another output path")
            break
    mp = manifest_path(p)
    if settings and not overwrite and mp.is_file():
        try:
            old = json.loads(mp.read_text())
        except ValueError:
            old = {}
        for k, v in settings.items():
            if (k in old or k == "rating_schema") and jsonable(_written(old, k)) != jsonable(v):
                raise ResumeMismatch(f"{p} was written with {k}={show(k, _written(old, k))}, this run has "
                                     f"{k}={show(k, v)}; use a new output file, or pass overwrite (--overwrite) to "
                                     "start again")
    check_not_locked(p)
    return p


class RowStore:
    """Append-only, resumable table of scored videos (see the module docstring).

    ``RowStore(path, columns, manifest)``; :meth:`open` returns the rows already present (a
    DataFrame, possibly empty); :meth:`append` adds rows (dicts with the ``columns`` keys);
    :meth:`close` finishes the file (Parquet: writes it).
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], manifest: dict[str, Any],
                 overwrite: bool = False):
        self.path = resolve_path(path)
        self.columns = list(columns)
        self.manifest = dict(manifest)
        self.overwrite = overwrite
        suffix = self.path.suffix.lower()
        if suffix not in OUTPUT_SUFFIXES:
            raise OutputError(f"{self.path}: output must end in .csv, .jsonl or .parquet")
        self.format = suffix[1:]
        self._target = _journal(self.path) if self.format == "parquet" else self.path
        self._header_written = False

    def _check_manifest(self) -> None:
        diff = manifest_mismatch(self.path, self.manifest)
        if diff:
            k, old, new = diff
            raise ResumeMismatch(f"{self.path} was written with {k}={show(k, old)}, this run has {k}={show(k, new)}; "
                                 "use a new output file, or pass overwrite (--overwrite) to start again")

    def open(self) -> pd.DataFrame:
        """Prepare the file and return the rows already in it (the videos a resumed run skips)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            remove_output(self.path)
        self._check_manifest()
        if self.format == "csv":
            done = _read_csv(self.path, self.columns)
            self._header_written = self.path.is_file() and self.path.stat().st_size > 0
        else:
            parts = []
            if self.format == "parquet" and self.path.is_file():
                parts.append(pd.read_parquet(self.path))
            rows = _read_jsonl(self._target)
            if rows:
                parts.append(pd.DataFrame(rows))
            done = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=self.columns)
        write_json(manifest_path(self.path), self.manifest)
        return done

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append rows in one write (see the module docstring)."""
        if not rows:
            return
        if self.format == "csv":
            buf = io.StringIO()
            pd.DataFrame(rows, columns=self.columns).to_csv(buf, header=not self._header_written, index=False,
                                                             lineterminator="\n")
            _append(self.path, buf.getvalue())
            self._header_written = True
        else:
            text = "".join(json.dumps(jsonable({c: r.get(c) for c in self.columns}), allow_nan=False) + "\n"
                           for r in rows)
            _append(self._target, text)

    def close(self) -> None:
        """Parquet: write the whole table atomically and drop the journal. CSV/JSONL: nothing to do."""
        if self.format != "parquet":
            return
        parts = []
        if self.path.is_file():
            parts.append(pd.read_parquet(self.path))
        rows = _read_jsonl(self._target)
        if rows:
            parts.append(pd.DataFrame(rows, columns=self.columns))
        if not parts:
            return
        df = pd.concat(parts, ignore_index=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, self.path)
        self._target.unlink(missing_ok=True)


def _read_csv_readonly(path: Path) -> pd.DataFrame:
    """:func:`_read_csv` for a reader: the header is the file's own and nothing is cut off."""
    text = path.read_bytes().decode()
    ends = _csv_records(text)
    if not ends:
        return pd.DataFrame()
    header = ends[0][1]
    if len(ends) > 1 and (not text.endswith("\n") or len(ends[-1][1]) != len(header)):
        warnings.warn(f"{path}: left out a torn last row (a run was killed while writing it, or is still writing)",
                      stacklevel=3)
        ends = ends[:-1]
    return _typed_frame(path, header, [r for _, r in ends[1:]])


def last_row_per_video(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per ``path``, the last one: a video that failed and was tried again by a resumed run
    has its old row earlier in the file."""
    if "path" not in rows.columns:
        return rows
    return rows.drop_duplicates("path", keep="last").reset_index(drop=True)


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Read a scorer output (CSV, JSONL or Parquet, plus an unfinished Parquet journal): one row per
    video. A video that failed and was tried again by a resumed run has several rows in the file; the
    last one is returned. A relative ``path`` is taken from the project root.

    Text columns (:data:`TEXT_COLUMNS`: ``video_id``, ``path``, ``error`` ...) are strings exactly as
    written, in every format (a video named ``0001`` or ``NA`` keeps its id); numeric columns are
    numbers. A missing file raises ``FileNotFoundError``. The file is not changed: a torn last row
    (a run killed mid-write, or still writing) is left out with a warning, repeated header lines are
    skipped with a warning that counts them."""
    p = resolve_path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".jsonl") and not p.is_file():
        raise FileNotFoundError(f"{p}: no scores file{relative_note(path)}")
    if suffix == ".csv":
        df = _read_csv_readonly(p)
    elif suffix == ".jsonl":
        df = pd.DataFrame(_read_jsonl(p, cut=False))
    else:
        parts = [pd.read_parquet(p)] if p.is_file() else []
        rows = _read_jsonl(_journal(p), cut=False)
        if rows:
            parts.append(pd.DataFrame(rows))
        if not parts:
            raise FileNotFoundError(f"{p}: no scores (neither the file nor its journal exists)")
        df = pd.concat(parts, ignore_index=True)
    out = last_row_per_video(df)
    out.attrs["rating_schema"] = scores_schema(p)
    return out


def scores_schema(path: str | os.PathLike):
    """The rating schema a scorer output was written with (its manifest's ``rating_schema``); the paper's
    for an output without a manifest or written before schemas were saved."""
    from vqalib.schema import rating

    mp = manifest_path(path)
    try:
        saved = json.loads(mp.read_text()).get("rating_schema") if mp.is_file() else None
    except ValueError:
        saved = None
    return rating.schema_from_dict(saved, where=f"{mp}: rating_schema") if saved else rating.PAPER
