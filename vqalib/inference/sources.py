"""Which videos to score: a folder, a glob pattern, a text list or a CSV list -> ``video_id, path``.

- a **folder**: every file with a video extension (:data:`vqalib.video.frames.VIDEO_EXTENSIONS`: what
  PyAV/FFmpeg decode, ``.mp4 .mkv .mov .webm .avi .ts .mts .m2ts .mpg .ogv .gif .flv .wmv .3gp`` ...)
  below it, recursively, in sorted order (a symlinked file under its own name). Files skipped (no or another
  extension, broken symlinks) are counted and named: ``df.attrs["skipped"]``, a warning, and a line
  printed by ``python -m vqalib score`` (:func:`skipped_summary`);
- a **glob** (``"clips/*.mp4"``, ``"data/**/*.mkv"``): the matching files, sorted;
- a **.txt / .lst** file: one path per line (blank lines and ``#`` comments skipped), relative
  paths taken from the list file's folder;
- a **.csv** file: a ``path`` column (relative to the CSV's folder) and an optional ``video_id``.

``video_id`` is the file stem of the name the user gave (a symlink's own name, not its target's), or,
when stems repeat, the path relative to the folder (or the entries' common folder) without its
extension (``a/clip.mp4`` and ``b/clip.mp4`` -> ``a/clip``, ``b/clip``), with the extension kept where
that still repeats (``x.mkv`` and ``x.mp4`` -> ``x.mkv``, ``x.mp4``). Ids are decided here, before any
model loads. A listed path that does not exist is kept:
the scorer reports it as a failure naming the file (nothing is dropped); a list file with a bad
line raises naming the file and line.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from vqalib.core.runs import relative_note, resolve_path
from vqalib.video.frames import VIDEO_EXTENSIONS


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


def _ids_for(paths: Sequence[Path], root: Path | None = None) -> list[str]:
    """Ids from the names as given (never resolved through symlinks): the stems when unique, else the
    paths relative to ``root`` (default: the entries' common folder) without the extension, keeping
    the extension for the entries where that still repeats."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    if root is None:
        try:
            root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        except ValueError:  # different drives
            root = Path("/")
    rel = [Path(os.path.relpath(p, root)) for p in paths]
    bare = [r.with_suffix("").as_posix() for r in rel]
    ids = [b if bare.count(b) == 1 else r.as_posix() for b, r in zip(bare, rel)]
    return ids if len(set(ids)) == len(ids) else [r.as_posix() for r in rel]


def _scan_folder(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Video files below ``folder`` (sorted) and the files skipped, ``(path, reason)``."""
    paths, skipped = [], []
    for q in sorted(folder.rglob("*")):
        if q.is_symlink() and not q.exists():
            skipped.append((str(q), f"broken symlink (its target {os.readlink(q)} does not exist)"))
        elif not q.is_file():
            continue
        elif q.suffix.lower() in VIDEO_EXTENSIONS:
            paths.append(q)
        elif not q.suffix:
            skipped.append((str(q), "no file extension (give it its video extension, e.g. .mp4, or list it in a "
                                    ".txt file)"))
        else:
            skipped.append((str(q), f"extension {q.suffix} is not a video extension"))
    return paths, skipped


def skipped_summary(skipped: pd.DataFrame | Sequence[tuple[str, str]], show: int = 10) -> str:
    """One line per file :func:`list_videos` skipped (``df.attrs["skipped"]`` or that list), headed by
    their count; ``""`` when none were skipped."""
    if isinstance(skipped, pd.DataFrame):
        skipped = skipped.attrs.get("skipped", [])
    if not skipped:
        return ""
    lines = [f"{len(skipped)} file(s) skipped, not scored:"]
    lines += [f"  SKIPPED {p}: {why}" for p, why in skipped[:show]]
    if len(skipped) > show:
        lines.append(f"  ... and {len(skipped) - show} more (df.attrs['skipped'] of vqalib.inference.sources.list_videos)")
    return "\n".join(lines)


def list_videos(spec: str | os.PathLike | Iterable[str | os.PathLike], *, warn: bool = True) -> pd.DataFrame:
    """``video_id, path`` (absolute path strings) for a folder, glob, .txt/.csv list or a list of paths.

    Relative paths and patterns are taken from the project root (:func:`vqalib.core.runs.resolve_path`);
    relative entries of a list file from the list file's folder. Paths are made absolute without
    resolving symlinks (a link keeps its own name and id). Files of a folder (or glob) that are not
    listed (no or another extension, broken symlinks) are in ``df.attrs["skipped"]`` as
    ``(path, reason)`` and, with ``warn=True``, said in a ``UserWarning`` (:func:`skipped_summary`).
    Raises :class:`VideoListError` (a ``ValueError``) when nothing matches (naming what was looked
    for and what was skipped), a list file is malformed, or two entries share a path or a video_id.
    """
    ids: list[str] | None = None
    root: Path | None = None
    skipped: list[tuple[str, str]] = []
    if isinstance(spec, (str, os.PathLike)):
        p = resolve_path(spec)
        s = str(p)
        if p.is_dir():
            paths, skipped = _scan_folder(p)
            root = Path(os.path.abspath(p))
            if not paths:
                raise VideoListError(f"{p}: no video files below this folder (extensions {', '.join(VIDEO_EXTENSIONS)})"
                                     + (f"; {skipped_summary(skipped)}" if skipped else ""))
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst"):
            paths = _from_txt(p)
        elif p.is_file() and p.suffix.lower() == ".csv":
            paths, ids = _from_csv(p)
        elif p.is_file():
            paths = [p]
        elif glob.has_magic(s):
            hits = sorted(Path(q) for q in glob.glob(s, recursive=True))
            paths = [q for q in hits if q.is_file()]
            skipped = [(str(q), "broken symlink (its target does not exist)") for q in hits
                       if q.is_symlink() and not q.exists()]
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
    abs_paths = [os.path.abspath(q) for q in paths]
    dup = pd.Series(abs_paths)[pd.Series(abs_paths).duplicated()]
    if len(dup):
        raise VideoListError(f"{spec}: video {dup.iloc[0]} is listed twice; list every video once")
    ids = ids or _ids_for([Path(q) for q in abs_paths], root)
    dup_ids = pd.Series(ids)[pd.Series(ids).duplicated()]
    if len(dup_ids):
        raise VideoListError(f"{spec}: video_id {dup_ids.iloc[0]!r} is used twice; give unique ids")
    df = pd.DataFrame({"video_id": ids, "path": abs_paths})
    df.attrs["skipped"] = skipped
    if skipped and warn:
        warnings.warn(f"{spec}: {skipped_summary(skipped)}", stacklevel=2)
    return df
