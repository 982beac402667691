"""Which videos to score: a folder, a glob pattern, a text list or a CSV list -> ``video_id, path``.

- a **folder**: every file with a video extension (:data:`VIDEO_EXTENSIONS`) below it, recursively,
  in sorted order;
- a **glob** (``"clips/*.mp4"``, ``"data/**/*.mkv"``): the matching files, sorted;
- a **.txt / .lst** file: one path per line (blank lines and ``#`` comments skipped), relative
  paths taken from the list file's folder;
- a **.csv** file: a ``path`` column (relative to the CSV's folder) and an optional ``video_id``.

``video_id`` is the file stem, or the path relative to the common folder without its extension
when stems repeat (``a/clip.mp4`` and ``b/clip.mp4``). A listed path that does not exist is kept:
the scorer reports it as a failure naming the file (nothing is dropped); a list file with a bad
line raises naming the file and line.
"""

from __future__ import annotations

import glob
import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from vqalib.mos import VIDEO_EXTENSIONS
from vqalib.runs import relative_note, resolve_path


class VideoListError(ValueError):
    """A video list is malformed; the message names the file, the line and the fix."""


def _list_text(path: Path) -> str:
    """A video list's text: UTF-8 with or without the byte-order mark (Notepad, Excel), or UTF-16 with
    its mark (Notepad's "Unicode"); any other encoding raises naming the file and the fix."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise VideoListError(f"{path} line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the list "
                             "as UTF-8 (in Notepad or Excel: Save As, encoding UTF-8) and run again") from None


def _from_txt(path: Path) -> list[Path]:
    out = []
    for n, line in enumerate(_list_text(path).splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if "," in s and not Path(s).exists() and not (path.parent / s).exists():
            raise VideoListError(f"{path} line {n}: {s!r} is not a path (a comma-separated row?); give one video "
                                 "path per line, or a .csv with a 'path' column")
        p = Path(os.path.expanduser(s))
        out.append(p if p.is_absolute() else path.parent / p)
    return out


def _from_csv(path: Path) -> tuple[list[Path], list[str] | None]:
    df = pd.read_csv(io.StringIO(_list_text(path)), dtype=str, keep_default_na=False)
    if "path" not in df.columns:
        raise VideoListError(f"{path}: no 'path' column (columns: {list(df.columns)}); add a 'path' column with "
                             "one video file per row (optional 'video_id')")
    paths = []
    for i, s in enumerate(df["path"], start=2):
        if not s.strip():
            raise VideoListError(f"{path} line {i}: empty path")
        p = Path(os.path.expanduser(s.strip()))
        paths.append(p if p.is_absolute() else path.parent / p)
    ids = None
    if "video_id" in df.columns:
        ids = [s.strip() for s in df["video_id"]]
        bad = [i + 2 for i, s in enumerate(ids) if not s]
        if bad:
            raise VideoListError(f"{path} line {bad[0]}: empty video_id")
    return paths, ids


def _ids_for(paths: Sequence[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    try:
        common = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    except ValueError:  # different drives
        common = Path("/")
    return [str(p.resolve().relative_to(common).with_suffix("")) for p in paths]


def list_videos(spec: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """``video_id, path`` (absolute path strings) for a folder, glob, .txt/.csv list or a list of paths.

    Relative paths and patterns are taken from the project root (:func:`vqalib.runs.resolve_path`);
    relative entries of a list file from the list file's folder. Raises :class:`VideoListError` when nothing matches (naming what was looked for) or a list
    file is malformed, and ``ValueError`` when two entries share a video_id or a path.
    """
    ids: list[str] | None = None
    if isinstance(spec, (str, os.PathLike)):
        p = resolve_path(spec)
        s = str(p)
        if p.is_dir():
            paths = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_EXTENSIONS)
            if not paths:
                raise VideoListError(f"{p}: no video files below this folder (extensions {', '.join(VIDEO_EXTENSIONS)})")
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst"):
            paths = _from_txt(p)
        elif p.is_file() and p.suffix.lower() == ".csv":
            paths, ids = _from_csv(p)
        elif p.is_file():
            paths = [p]
        elif glob.has_magic(s):
            paths = sorted(Path(q) for q in glob.glob(s, recursive=True) if Path(q).is_file())
            if not paths:
                raise VideoListError(f"no file matches the pattern {s!r}{relative_note(spec)}")
        else:
            raise VideoListError(f"{s}: no such folder, file or glob pattern{relative_note(spec)}; give a folder of "
                                 "videos, a pattern "
                                 "like 'clips/*.mp4', a .txt list (one path per line) or a .csv with a 'path' column")
    else:
        paths = [resolve_path(q) for q in spec]
    if not paths:
        raise VideoListError(f"{spec}: the list holds no videos")
    abs_paths = [str(q.absolute()) for q in paths]
    dup = pd.Series(abs_paths)[pd.Series(abs_paths).duplicated()]
    if len(dup):
        raise ValueError(f"{spec}: video {dup.iloc[0]} is listed twice")
    ids = ids or _ids_for([Path(q) for q in abs_paths])
    dup_ids = pd.Series(ids)[pd.Series(ids).duplicated()]
    if len(dup_ids):
        raise ValueError(f"{spec}: video_id {dup_ids.iloc[0]!r} is used twice; give unique ids")
    return pd.DataFrame({"video_id": ids, "path": abs_paths})
