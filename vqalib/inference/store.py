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
instruction and (generate mode) every decoding parameter (``generation``, :mod:`vqalib.generation`). Resuming with different settings raises (the rows would not be comparable);
use a new output file, or ``overwrite=True``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from vqalib.runs import jsonable, resolve_path, write_json

#: Manifest keys that must agree between the run that wrote an output and the one resuming it.
RESUME_KEYS = ("model", "mode", "sampling", "instruction", "max_new_tokens", "generation")


class ResumeMismatch(ValueError):
    """The output file was written with other settings than the current run."""


def manifest_path(path: str | os.PathLike) -> Path:
    p = resolve_path(path)
    return p.with_name(p.name + ".manifest.json")


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".partial.jsonl")


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


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (killed mid-write) is cut off, a bad line elsewhere raises."""
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
                _truncate(path, pos, f"torn last row ({e})")
                break
            raise ValueError(f"{path} line {i + 1}: not valid JSON ({e}); the file is damaged, remove that line") from e
        pos += len(line) + 1
    return rows


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Rows of a CSV file written by :class:`RowStore`; a torn last row is cut off."""
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns))
    text = path.read_bytes().decode()
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
    if not ends:
        return pd.DataFrame(columns=list(columns))
    header = ends[0][1]
    if list(header) != list(columns):
        raise ResumeMismatch(f"{path}: its columns differ from this scorer's ({len(header)} vs {len(columns)} columns); "
                             "it was written by another version or mode: use a new output file")
    last_end, last = ends[-1]
    if len(ends) > 1 and (not text.endswith("\n") or len(last) != len(header)):
        keep = ends[-2][0]
        _truncate(path, len(text[:keep].encode()), "torn last row")
        text = text[:keep]
    return pd.read_csv(io.StringIO(text), keep_default_na=True)


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
        if suffix not in (".csv", ".jsonl", ".parquet"):
            raise ValueError(f"{self.path}: output must end in .csv, .jsonl or .parquet")
        self.format = suffix[1:]
        self._target = _journal(self.path) if self.format == "parquet" else self.path
        self._header_written = False

    def _check_manifest(self) -> None:
        mp = manifest_path(self.path)
        if not mp.is_file():
            return
        old = json.loads(mp.read_text())
        new = jsonable(self.manifest)
        diff = [k for k in RESUME_KEYS if jsonable(old.get(k)) != new.get(k)]
        if diff:
            k = diff[0]
            raise ResumeMismatch(f"{self.path} was written with {k}={old.get(k)!r}, this run has {k}={new.get(k)!r}; "
                                 "use a new output file, or pass overwrite (--overwrite) to start again")

    def open(self) -> pd.DataFrame:
        """Prepare the file and return the rows already in it (the videos a resumed run skips)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            for p in (self.path, _journal(self.path), manifest_path(self.path)):
                p.unlink(missing_ok=True)
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


def last_row_per_video(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per ``path``, the last one: a video that failed and was tried again by a resumed run
    has its old row earlier in the file."""
    if "path" not in rows.columns:
        return rows
    return rows.drop_duplicates("path", keep="last").reset_index(drop=True)


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Read a scorer output (CSV, JSONL or Parquet, plus an unfinished Parquet journal): one row per
    video. A video that failed and was tried again by a resumed run has several rows in the file; the
    last one is returned. A relative ``path`` is taken from the project root."""
    p = resolve_path(path)
    if p.suffix.lower() == ".csv":
        df = pd.read_csv(p)
    elif p.suffix.lower() == ".jsonl":
        df = pd.DataFrame(_read_jsonl(p))
    else:
        parts = [pd.read_parquet(p)] if p.is_file() else []
        rows = _read_jsonl(_journal(p))
        if rows:
            parts.append(pd.DataFrame(rows))
        if not parts:
            raise FileNotFoundError(f"{p}: no scores (neither the file nor its journal exists)")
        df = pd.concat(parts, ignore_index=True)
    return last_row_per_video(df)
