"""Cross-benchmark adapters for public MOS datasets (the paper's Table 2 style evaluation).

Reads the label files distributed with FAST-VQA (``relative_path, duration_s, fps, MOS``, -1 =
unknown) for KoNViD-1k, LIVE-VQC, YouTube-UGC and LSVQ, the VIDEVAL metadata CSVs, and the
**official files as each dataset's authors distribute them** (:func:`read_label_file`):
KoNViD-1k's ``KoNViD_1k_mos.csv`` (``flickr_id, mos``) or ``KoNViD_1k_attributes.csv``
(``file_name, MOS``), LIVE-VQC's ``data.mat`` (``video_list``, ``mos``), YouTube-UGC's
``MOS_for_YouTube_UGC_dataset.xlsx`` (sheet ``MOS``: ``vid``, ``MOS full``; or that sheet saved as
CSV), and LSVQ's release CSVs (``name, ..., height, width, ..., mos, frame_number, ...``), given the
user's local video folder. Listed videos that are not found locally are reported (count and list),
never dropped silently. Relative paths (label files, video folders) are taken from the project
root, like every path vqalib is given (:func:`vqalib.core.runs.resolve_path`).

MOS -> 1-5: ``1 + 4 (mos - lo) / (hi - lo)`` over the dataset's **nominal** rating scale
(KoNViD-1k and YouTube-UGC 1-5, LIVE-VQC and LSVQ 0-100), not the observed min/max. Why: the
nominal scale is a property of the dataset, so the mapping is the same for every subset (a test
split, the videos a user has locally, a bootstrap resample), and MAE / Acc@0.5 stay comparable
across runs. The observed range changes with the subset and would stretch a narrow subset over
the whole 1-5 range. SRCC / KRCC / PLCC do not depend on this choice (the map is affine);
``scale="observed"`` is available for comparison.

Which prediction is compared with the MOS (one overall rating) is a choice, see
:mod:`vqalib.eval.combine` and ``data_cards/public_mos_benchmarks.md``: by default ``"mean_quality"``,
the mean of the four *quality* dimensions (Motion Amplitude measures how much motion there is,
not how good the video is, so it is left out); ``"mean5"`` or any single dimension key are options.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vqalib.schema import rating as RS
from vqalib.core.runs import relative_note, resolve_path
from vqalib.video.frames import VIDEO_EXTENSIONS


class LabelFileError(ValueError):
    """A benchmark label file is malformed; the message names the file, line and field."""


@dataclass(frozen=True)
class BenchmarkSpec:
    """A public MOS dataset: where its labels are and its nominal rating scale."""

    name: str
    label_files: dict[str, str]  # split -> FAST-VQA list, relative to the labels root
    scale: tuple[float, float]  # nominal MOS scale (lo, hi)
    note: str = ""
    #: split -> the authors' label file names holding that split, in the order they are looked for beside the
    #: videos. A name under several splits holds them all and needs an ``is_test`` column to tell them apart.
    official_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    download: str = ""  # where the official label file comes from
    #: FAST-VQA lists (tail ``<benchmark>/<file>``) that hold several splits with nothing to tell them apart.
    combined_lists: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split this benchmark has, the default first."""
        return tuple(dict.fromkeys([*self.official_files, *self.label_files]))

    def check_split(self, split: str | None) -> None:
        """Raise ``ValueError`` naming the splits when ``split`` is given and is not one of them."""
        if split is not None and split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; choose one of {list(self.splits)}")

    def splits_of(self, path: Path) -> list[str]:
        """The splits a label file holds, known from its name (an official name, or the tail
        ``<benchmark>/<file>`` of a FAST-VQA list); empty for a name this spec does not know."""
        out = [sp for sp, names in self.official_files.items() if path.name in names]
        out += [sp for sp, rel in self.label_files.items()
                if path.as_posix().endswith("/" + "/".join(Path(rel).parts[-2:])) and sp not in out]
        for tail, splits in self.combined_lists.items():
            if path.as_posix().endswith("/" + tail):
                out += [sp for sp in splits if sp not in out]
        return out


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "KoNViD": BenchmarkSpec("KoNViD-1k", {"all": "fastvqa/KoNViD/labels.txt"}, (1.0, 5.0),
                            "1,200 Flickr videos, 5-point ACR, 8 s, 540p",
                            {"all": ("KoNViD_1k_mos.csv", "KoNViD_1k_attributes.csv")},
                            "KoNViD_1k_metadata.zip from https://database.mmsp-kn.de/konvid-1k-database.html "
                            "(holds KoNViD_1k_mos.csv)"),
    "LIVE_VQC": BenchmarkSpec("LIVE-VQC", {"all": "fastvqa/LIVE_VQC/labels.txt"}, (0.0, 100.0),
                              "585 smartphone videos, continuous 0-100 slider", {"all": ("data.mat",)},
                              "the LIVE-VQC database from https://live.ece.utexas.edu/research/LIVEVQC/ "
                              "(data.mat sits beside the Video/ folder)"),
    "YouTubeUGC": BenchmarkSpec("YouTube-UGC", {"all": "fastvqa/YouTubeUGC/labels.txt"}, (1.0, 5.0),
                                "1,147 YouTube UGC clips (20 s), 1-5",
                                {"all": ("original_videos_MOS_for_YouTube_UGC_dataset.xlsx",
                                         "MOS_for_YouTube_UGC_dataset.xlsx",
                                         "original_videos_MOS_for_YouTube_UGC_dataset.csv",
                                         "MOS_for_YouTube_UGC_dataset.csv")},
                                "MOS_for_YouTube_UGC_dataset.xlsx from https://media.withyoutube.com/ "
                                "(storage.googleapis.com/ugc-dataset/original_videos/)"),
    # FAST-VQA's LSVQ/labels.txt is test + 1080p (10,759 rows), not the train split: train comes only from the
    # release CSVs.
    "LSVQ": BenchmarkSpec("LSVQ", {"test": "fastvqa/LSVQ/labels_test.txt", "1080p": "fastvqa/LSVQ/labels_1080p.txt"},
                          (0.0, 100.0),
                          "39k UGC videos, 0-100; train (about 28k), test (7,186) and test-1080p (3,573)",
                          {"test": ("LSVQ_whole_test.csv", "labels_train_test.csv"),
                           "1080p": ("LSVQ_whole_test_1080p.csv", "labels_test_1080p.csv"),
                           "train": ("LSVQ_whole_train.csv", "labels_train_test.csv")},
                          "the LSVQ label CSVs (labels_train_test.csv, labels_test_1080p.csv) from "
                          "https://github.com/baidut/PatchVQ", {"LSVQ/labels.txt": ("test", "1080p")}),
}

def default_labels_root() -> Path:
    """``../shared/data/labels`` next to the checkout (tests/benchmarks only; users pass their own)."""
    from vqalib.core.runs import project_root

    return project_root().parent / "shared" / "data" / "labels"


def spec(name: str) -> BenchmarkSpec:
    """Look up a benchmark by key (``KoNViD``, ``LIVE_VQC``, ``YouTubeUGC``, ``LSVQ``), case-insensitive."""
    for k, s in BENCHMARKS.items():
        if name.lower() in (k.lower(), s.name.lower()):
            return s
    raise ValueError(f"unknown benchmark {name!r}; choose one of {list(BENCHMARKS)}")


def benchmark_key(name: str) -> str:
    """The :data:`BENCHMARKS` key (``KoNViD`` ...) of a benchmark named by key or by its name (``KoNViD-1k``)."""
    s = spec(name)
    return next(k for k, v in BENCHMARKS.items() if v is s)


def to_1_5(mos, scale: tuple[float, float], source: str | os.PathLike | None = None,
           schema: "RS.RatingSchema | str | None" = None) -> np.ndarray:
    """``1 + 4 (mos - lo) / (hi - lo)``: map MOS on the scale ``(lo, hi)`` to 1-5 (``schema``: to its
    ``[lo, hi]`` instead; default the paper's 1-5).

    Raises ``ValueError`` when ``hi <= lo``, naming ``source`` (the label file) when given."""
    lo, hi = scale
    if not hi > lo:
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}MOS scale {scale}: hi must exceed lo (an 'observed' scale whose MOS values are all "
                         "equal has zero width); pass the dataset's nominal scale")
    s = RS.resolve(schema)
    return s.lo + s.span * (np.asarray(mos, dtype=float) - lo) / (hi - lo)


def read_fastvqa_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Parse a FAST-VQA label file: ``relative_path, duration_s, fps, MOS`` per line (-1 = unknown -> NaN).

    Returns ``video_id`` (the file stem; the relative path without extension when stems repeat,
    as in LSVQ), ``relative_path``, ``duration_s``, ``fps``, ``mos``, ``line``.
    """
    given, path = path, resolve_path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found{relative_note(given)}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            raise LabelFileError(f"{path} line {n}: expected 4 comma-separated fields "
                                 f"(relative_path, duration_s, fps, MOS), got {len(parts)}: {line!r}")
        rel = parts[0]
        vals = []
        for name, text in zip(("duration_s", "fps", "MOS"), parts[1:]):
            try:
                vals.append(float(text))
            except ValueError:
                raise LabelFileError(f"{path} line {n}: field {name} = {text!r} is not a number") from None
        dur, fps, mos = vals
        if not np.isfinite(mos) or mos == -1:
            raise LabelFileError(f"{path} line {n}: MOS = {parts[3]!r} is missing or not finite")
        rows.append({"video_id": strip_video_ext(Path(rel).name), "relative_path": rel,
                     "duration_s": np.nan if dur == -1 else dur,
                     "fps": np.nan if fps == -1 else fps, "mos": mos, "line": n})
    if not rows:
        raise LabelFileError(f"{path}: no label lines")
    df = pd.DataFrame(rows)
    if not df["video_id"].is_unique:
        # Same file name in several folders (LSVQ: yfcc-batch1/747.mp4, yfcc-batch2/747.mp4): use the
        # relative path without extension as the id, so ids stay unique and stable for this file.
        df["video_id"] = [strip_video_ext(r) for r in df["relative_path"]]
    dup = df["relative_path"].duplicated(keep=False)
    if dup.any():
        d = df[dup].head(2)
        raise LabelFileError(f"{path} lines {d['line'].tolist()}: duplicate video {d['relative_path'].iloc[0]!r}")
    return df


def strip_video_ext(name: str) -> str:
    """``name`` without its extension when that is a video extension (:data:`VIDEO_EXTENSIONS`), else
    unchanged: LSVQ names such as ``ia-batch1/XcorpsMotorSports3CruisinGrandSeg.3`` keep their dots."""
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in VIDEO_EXTENSIONS else name


def _with_video_ext(name: str, ext: str = ".mp4") -> str:
    """``name`` as a file name: unchanged when it ends in a video extension, else ``name + ext``."""
    return name if Path(name).suffix.lower() in VIDEO_EXTENSIONS else name + ext


def _norm(col: str) -> str:
    """Column name compared without case, spaces and underscores (``MOS full`` == ``MOSFull``)."""
    return "".join(ch for ch in str(col).lower() if ch.isalnum())


def _label_frame(path: Path, ids: list[str], rel: list[str], mos, fmt: str, benchmark: str, lines: list[int],
                 extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """The common frame of every reader, with the MOS checked (line numbers name bad values)."""
    mos = pd.to_numeric(pd.Series(list(mos)), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(mos)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LabelFileError(f"{path} {'line' if fmt != 'live_vqc_mat' else 'entry'} {lines[i]}: MOS is missing or "
                             "not a number")
    df = pd.DataFrame({"video_id": ids, "relative_path": rel, "mos": mos, "line": lines, **(extra or {})})
    df.attrs.update(format=fmt, benchmark=benchmark)
    dup = df["video_id"].duplicated(keep=False)
    if dup.any():
        d = df[dup].head(2)
        raise LabelFileError(f"{path} lines {d['line'].tolist()}: duplicate video {d['video_id'].iloc[0]!r}")
    if df.empty:
        raise LabelFileError(f"{path}: no label rows")
    return df


_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no"}


def _is_test_flags(path: Path, values: pd.Series, lines: list[int]) -> np.ndarray:
    """An ``is_test`` column as booleans (``True/False``, ``1/0``, ``yes/no``, any case); anything else, an
    empty cell included, raises naming the line, since a guessed flag would move a clip between splits."""
    out = []
    for v, line in zip(values, lines):
        text = str(v).strip().lower()
        if text not in _TRUE | _FALSE:
            raise LabelFileError(f"{path} line {line}: is_test = {v!r} is not true/false (or 1/0); fix the row, "
                                 "since the split of this clip cannot be told")
        out.append(text in _TRUE)
    return np.array(out, dtype=bool)


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".xlsx", ".xls"):
        try:
            import openpyxl  # noqa: F401
        except ImportError:
            raise LabelFileError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl), or save the sheet "
                                 "'MOS' as CSV and pass that file") from None
        sheets = pd.read_excel(path, sheet_name=None)
        name = next((n for n in sheets if _norm(n) == "mos"), next(iter(sheets)))
        return sheets[name]
    return pd.read_csv(path)


def read_label_file(path: str | os.PathLike) -> pd.DataFrame:
    """Read a benchmark label file in the format its authors distribute, detected from its content.

    Formats (``df.attrs["format"]`` / ``["benchmark"]`` say which was read):

    - FAST-VQA list (``.txt``): :func:`read_fastvqa_labels`;
    - KoNViD-1k ``KoNViD_1k_mos.csv`` (``flickr_id, mos, ...``) and VIDEVAL's ``KONVID_1K_metadata.csv``
      (same columns): file ``<flickr_id>.mp4``; ``KoNViD_1k_attributes.csv`` (``file_name, MOS``);
    - LIVE-VQC ``data.mat`` (MATLAB, variables ``video_list`` (cell of ``A001.mp4`` ...) and ``mos``,
      read with ``scipy.io.loadmat``); VIDEVAL's ``LIVE_VQC_metadata.csv`` (``File, MOS``);
    - YouTube-UGC ``MOS_for_YouTube_UGC_dataset.xlsx`` (sheet ``MOS``, columns ``vid``, ``MOS full``;
      needs openpyxl) or that sheet as CSV, and VIDEVAL's ``YOUTUBE_UGC_metadata.csv`` (``vid, MOSFull``):
      ``relative_path`` is the id without extension, matched to ``<vid>.mkv``, ``<vid>.mp4`` or the
      transcoded ``<vid>_crf_10_ss_00_t_20.0.mp4`` by :func:`load_benchmark`;
    - LSVQ release CSVs (``labels_train_test.csv``, ``labels_test_1080p.csv``; columns ``name, p1, p2,
      p3, height, width, mos_p1, ..., mos, frame_number, ...``): file ``<name>.mp4``
      (``name`` = ``yfcc-batch1/747``). ``height``, ``width``, ``frame_number`` are kept.

    Returns ``video_id, relative_path, mos, line`` (+ kept extras). Raises :class:`LabelFileError`
    naming the file and line for a missing MOS, a duplicate video or an unknown layout.
    """
    given, path = path, resolve_path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found{relative_note(given)}")
    suffix = path.suffix.lower()
    if suffix in (".txt", ".lst"):
        df = read_fastvqa_labels(path)
        df.attrs.update(format="fastvqa", benchmark=None)
        return df
    if suffix == ".mat":
        from scipy.io import loadmat

        try:
            mat = loadmat(str(path))
        except (NotImplementedError, ValueError) as e:  # v7.3 files are HDF5
            raise LabelFileError(f"{path}: cannot read this MATLAB file ({e}); LIVE-VQC's data.mat is a v5 file, "
                                 "re-download it") from e
        if "video_list" not in mat or "mos" not in mat:
            raise LabelFileError(f"{path}: expected the LIVE-VQC variables 'video_list' and 'mos', found "
                                 f"{sorted(k for k in mat if not k.startswith('__'))}")
        names = [str(np.asarray(v).ravel()[0]) if np.asarray(v).size else "" for v in np.asarray(mat["video_list"]).ravel()]
        mos = np.asarray(mat["mos"], dtype=float).ravel()
        if len(names) != len(mos):
            raise LabelFileError(f"{path}: video_list has {len(names)} entries but mos has {len(mos)}")
        return _label_frame(path, [strip_video_ext(Path(n).name) for n in names], names, mos, "live_vqc_mat",
                            "LIVE_VQC",
                            list(range(1, len(names) + 1)))
    if suffix not in (".csv", ".xlsx", ".xls"):
        raise LabelFileError(f"{path}: unknown label file type {suffix!r}; give a .txt (FAST-VQA), .csv, .xlsx or .mat")
    raw = _read_table(path)
    cols = {_norm(c): c for c in raw.columns}
    lines = list(range(2, len(raw) + 2))

    def col(*names: str) -> str | None:
        return next((cols[n] for n in names if n in cols), None)

    if col("name") and col("mos") and (col("framenumber") or col("height")):  # LSVQ release CSV
        names = [str(n).strip() for n in raw[col("name")]]
        rel = [_with_video_ext(n) for n in names]  # a name is a name: only a video extension is one
        extra = {k: raw[c].to_numpy() for k, c in (("height", col("height")), ("width", col("width")),
                                                   ("frame_number", col("framenumber"))) if c}
        if col("istest"):
            extra["is_test"] = _is_test_flags(path, raw[col("istest")], lines)
        return _label_frame(path, [strip_video_ext(r) for r in rel], rel, raw[col("mos")], "lsvq_csv",
                            "LSVQ", lines, extra)
    if col("flickrid") and col("mos"):  # KoNViD_1k_mos.csv, KONVID_1K_metadata.csv
        ids = [str(int(float(v))) if str(v).replace(".", "", 1).isdigit() else str(v) for v in raw[col("flickrid")]]
        return _label_frame(path, ids, [f"{i}.mp4" for i in ids], raw[col("mos")], "konvid_csv", "KoNViD", lines)
    if col("filename") and col("mos"):  # KoNViD_1k_attributes.csv
        names = [str(v).strip() for v in raw[col("filename")]]
        return _label_frame(path, [strip_video_ext(n) for n in names], names, raw[col("mos")], "konvid_attributes_csv",
                            "KoNViD", lines)
    if col("file") and col("mos"):  # VIDEVAL LIVE_VQC_metadata.csv
        names = [str(v).strip() for v in raw[col("file")]]
        return _label_frame(path, [strip_video_ext(n) for n in names], names, raw[col("mos")], "live_vqc_csv",
                            "LIVE_VQC",
                            lines)
    if col("vid") and col("mosfull"):  # YouTube-UGC MOS sheet, VIDEVAL YOUTUBE_UGC_metadata.csv
        ids = [str(v).strip() for v in raw[col("vid")]]
        extra = {k: raw[c].to_numpy() for k, c in (("mos_std", col("stdfull", "sdfull")), ("category", col("category")))
                 if c}
        return _label_frame(path, ids, ids, raw[col("mosfull")], "youtube_ugc", "YouTubeUGC", lines, extra)
    raise LabelFileError(f"{path}: columns {list(raw.columns)} match no known label layout (KoNViD flickr_id/mos, "
                         "LIVE-VQC File/MOS, YouTube-UGC vid/MOS full, LSVQ name/mos/frame_number)")


def find_label_file(name: str, video_root: str | os.PathLike | None = None, split: str | None = None,
                    labels_root: str | os.PathLike | None = None) -> Path:
    """The label file of ``split`` (default: the benchmark's first, ``test`` for LSVQ) when none is given:
    an official file of that split (:attr:`BenchmarkSpec.official_files`, in that order) in ``video_root``
    or its parent, else the split's FAST-VQA list under ``labels_root`` (default ``../shared/data/labels``).
    Only files of the asked split are taken. Raises ``ValueError`` for an unknown split and
    ``FileNotFoundError`` naming every path looked at, what to download and where to point ``--labels``."""
    s = spec(name)
    split = split or s.splits[0]
    s.check_split(split)
    names = s.official_files.get(split, ())
    looked = []
    dirs = (resolve_path(video_root), resolve_path(video_root).parent) if video_root is not None else ()
    for d in dirs:
        for f in names:
            looked.append(str(d / f))
            if (d / f).is_file():
                return d / f
    key = benchmark_key(name)
    if split in s.label_files:
        lr = resolve_path(labels_root) if labels_root else default_labels_root()
        looked.append(str(lr / s.label_files[split]))
        if (lr / s.label_files[split]).is_file():
            return lr / s.label_files[split]
    fastvqa = f" FAST-VQA's list examplar_data_labels/{key}/{Path(s.label_files[split]).name} works too." \
        if split in s.label_files else ""
    # other splits' files that are there: say which split they are, never use them for this one
    others: dict[str, str] = {}  # a file of several splits is named with the first
    for sp, files in s.official_files.items():
        for f in files:
            if sp != split and f not in names and any((d / f).is_file() for d in dirs):
                others.setdefault(f, sp)
    seen = "".join(f" Found {f} there: it is the {sp!r} split's file (--split {sp})." for f, sp in others.items())
    raise FileNotFoundError(
        f"no {s.name} label file for the {split!r} split found (looked for {', '.join(looked)}).{seen} Download "
        f"{s.download}, then pass --labels /path/to/{' or '.join(names) if names else 'labels'} (in Python: "
        f"label_file=...)." + fastvqa)


def label_file_info(path: Path) -> dict[str, Any]:
    """``{"label_file", "label_sha256"}``: the file's absolute path and the sha256 of its bytes, so a result
    says exactly which labels it was computed on."""
    return {"label_file": str(path), "label_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def select_split(s: BenchmarkSpec, df: pd.DataFrame, path: Path, split: str | None) -> tuple[pd.DataFrame, str, str]:
    """The rows of ``split`` in a label file read by :func:`read_label_file`; returns ``(rows, split, how)``
    with ``how`` saying how the split was told (written into :meth:`BenchmarkSet.summary`).

    An ``is_test`` column selects ``test`` / ``train``. Without it, a file known by name as one split's
    (:meth:`BenchmarkSpec.splits_of`) is that split; a file of another split, or one holding several splits
    with no ``is_test`` column to tell them apart, raises :class:`LabelFileError` naming the right file. A
    file whose name is not known is taken whole as ``split`` when it is given (the caller states it), and
    raises when a benchmark with several splits gets none."""
    s.check_split(split)
    known = s.splits_of(path)
    if "is_test" in df.columns:
        holds = [sp for sp in ("test", "train") if sp in s.splits]
        split = split or holds[0]
        if split not in holds:
            raise LabelFileError(f"{path} holds the {' and '.join(holds)} splits (is_test column), not {split!r}; "
                                 f"the {split!r} split is in {' or '.join(s.official_files.get(split, ()))}")
        rows = df[df["is_test"] == (split == "test")].reset_index(drop=True)
        return rows, split, f"the {len(rows)} rows with is_test = {split == 'test'} of {len(df)}"
    if len(known) > 1:
        raise LabelFileError(f"{path.name} holds the {' and '.join(known)} splits, but {path} has no is_test column "
                             "to tell them apart; pass the split's own file ("
                             + "; ".join(f"{sp}: {s.official_files[sp][0]}" for sp in known
                                         if s.official_files.get(sp)) + ")")
    if known:
        if split is not None and split != known[0]:
            own = [n for n in s.official_files.get(split, ()) if len(s.splits_of(Path(n))) == 1]
            raise LabelFileError(f"{path} is the {known[0]!r} split's label file, not the {split!r} split's; pass "
                                 f"{' or '.join(own) or 'that split' + chr(39) + 's file'} (or --split {known[0]})")
        return df, known[0], f"every row: {path.name} is the {known[0]!r} split's file"
    if split is None:
        if len(s.splits) > 1:
            raise LabelFileError(f"{path}: cannot tell which {s.name} split this file holds (its name is none of "
                                 f"the official ones and it has no is_test column); pass --split "
                                 f"({' | '.join(s.splits)})")
        split = s.splits[0]
    return df, split, f"every row, as the split was given ({path.name} has no is_test column)"


#: VIDEVAL metadata: id column, MOS column, optional extra columns kept.
_VIDEVAL_COLUMNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "KONVID_1K": ("flickr_id", "mos", ()),
    "LIVE_VQC": ("File", "MOS", ()),
    "YOUTUBE_UGC": ("vid", "MOSFull", ("stdFull", "x_Subjects", "category")),
}


def read_videval_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """Read a VIDEVAL ``*_metadata.csv`` into ``video_id, mos, width, height, framerate, nb_frames`` (+ extras:
    YouTube-UGC keeps ``mos_std`` and ``n_subjects``)."""
    path = resolve_path(path)
    key = next((k for k in _VIDEVAL_COLUMNS if path.name.upper().startswith(k)), None)
    if key is None:
        raise LabelFileError(f"{path}: unknown VIDEVAL metadata file; expected one of {[k + '_metadata.csv' for k in _VIDEVAL_COLUMNS]}")
    id_col, mos_col, extra = _VIDEVAL_COLUMNS[key]
    raw = pd.read_csv(path)
    missing = [c for c in (id_col, mos_col) if c not in raw.columns]
    if missing:
        raise LabelFileError(f"{path}: missing column(s) {missing}")
    bad = raw[mos_col].isna() | ~np.isfinite(pd.to_numeric(raw[mos_col], errors="coerce"))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise LabelFileError(f"{path} line {i + 2}: field {mos_col} = {raw[mos_col].iloc[i]!r} is not a number")
    out = pd.DataFrame({"video_id": raw[id_col].astype(str).map(lambda s: Path(s).stem if s.endswith(".mp4") else s),
                        "mos": raw[mos_col].astype(float)})
    for c in ("width", "height", "framerate", "nb_frames"):
        if c in raw.columns:
            out[c] = raw[c]
    rename = {"stdFull": "mos_std", "x_Subjects": "n_subjects", "category": "category"}
    for c in extra:
        out[rename[c]] = raw[c]
    return out


@dataclass
class BenchmarkSet:
    """The labelled videos of one benchmark split found (or not) in the user's video folder."""

    name: str
    split: str
    scale: tuple[float, float]
    scale_rule: str  # "nominal" or "observed"
    video_root: Path
    label_file: Path
    available: pd.DataFrame  # video_id, relative_path, path, mos, mos_1to5, duration_s, fps
    missing: pd.DataFrame = field(repr=False)  # listed in the labels, not found locally
    label_sha256: str = ""  # of the label file's bytes
    label_rows: int = 0  # rows in the label file, before the split was selected
    split_rule: str = ""  # how the split's rows were told (select_split)

    @property
    def provenance(self) -> dict[str, Any]:
        """What a result records about its labels: benchmark, split, label file (absolute path), its sha256,
        its rows and the rows of the split."""
        return {"benchmark": self.name, "split": self.split, "label_file": str(self.label_file),
                "label_sha256": self.label_sha256, "label_rows": self.label_rows, "split_rows": self.n_listed}

    @property
    def n_listed(self) -> int:
        return len(self.available) + len(self.missing)

    def summary(self, show: int = 5) -> str:
        lines = [f"{self.name} ({self.split}): {self.n_listed} videos listed in {self.label_file.name}, "
                 f"{len(self.available)} found under {self.video_root}, {len(self.missing)} missing",
                 f"  labels: {self.label_file} ({self.label_rows} rows, sha256 {self.label_sha256[:16]}); "
                 f"{self.split} split: {self.split_rule}"]
        if len(self.missing):
            head = self.missing["relative_path"].head(show).tolist()
            lines.append(f"  missing (first {len(head)}): {head}" + (" ..." if len(self.missing) > show else ""))
        lines.append(f"  MOS mapped to 1-5 over the {self.scale_rule} scale {self.scale}")
        return "\n".join(lines)


def _file_index(root: Path) -> dict[str, list[Path]]:
    """Video files below ``root`` by stem (one walk), for label ids without a usable path."""
    index: dict[str, list[Path]] = {}
    for p in root.rglob("*"):
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            index.setdefault(p.stem, []).append(p)
    return index


def _locate(root: Path, rel: str, index_fn) -> Path | None:
    """``root/rel``, else ``root/<file name>``, else the one file whose stem is the id (or starts
    with ``<id>_``, YouTube-UGC's transcoded names); None when absent or ambiguous."""
    p = root / rel
    if p.is_file():
        return p
    alt = root / Path(rel).name
    if alt.is_file():
        return alt
    index, stems = index_fn()
    stem = strip_video_ext(Path(rel).name)
    hits = list(index.get(stem, []))
    if not hits:
        i = bisect.bisect_left(stems, stem + "_")
        while i < len(stems) and stems[i].startswith(stem + "_"):
            hits += index[stems[i]]
            i += 1
    return hits[0] if len(hits) == 1 else None


def load_benchmark(name: str, video_root: str | os.PathLike, split: str | None = None,
                   labels_root: str | os.PathLike | None = None, scale: str = "nominal",
                   strict: bool = False, label_file: str | os.PathLike | None = None) -> BenchmarkSet:
    """Match a benchmark's label file against ``video_root``.

    ``label_file`` is any file :func:`read_label_file` reads (an official file or a FAST-VQA list);
    without it, :func:`find_label_file` looks beside the videos, then under ``labels_root``.
    A video is found at ``video_root/relative_path``, ``video_root/<file name>`` (folders are often
    flattened), or as the single file below ``video_root`` whose stem is the label id. Missing
    ones go to ``.missing`` (``strict=True`` raises instead). ``scale="nominal"`` (default) maps
    MOS with the dataset's rating scale; ``"observed"`` uses the min/max of the listed MOS.
    """
    s = spec(name)
    key = benchmark_key(name)
    s.check_split(split)
    if label_file is None:
        label_file = find_label_file(name, video_root, split or s.splits[0], labels_root)
    label_file = resolve_path(label_file)
    df = read_label_file(label_file)
    found_for = df.attrs.get("benchmark")
    if found_for is not None and found_for != key:
        raise LabelFileError(f"{label_file} is a {BENCHMARKS[found_for].name} label file "
                             f"({df.attrs['format']}), not {s.name}'s; pass the {s.name} labels")
    n_rows = len(df)
    df, split, split_rule = select_split(s, df, label_file, split)
    for c in ("duration_s", "fps"):
        if c not in df.columns:
            df[c] = np.nan
    root = resolve_path(video_root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist{relative_note(video_root)}; pass the folder "
                                f"holding the {s.name} videos")
    if scale == "nominal":
        sc = s.scale
    elif scale == "observed":
        sc = (float(df["mos"].min()), float(df["mos"].max()))
    else:
        raise ValueError(f"scale={scale!r} must be 'nominal' or 'observed'")
    off = df[(df["mos"] < s.scale[0]) | (df["mos"] > s.scale[1])]
    if len(off):
        r = off.iloc[0]
        raise LabelFileError(f"{label_file} line {r['line']}: MOS {r['mos']} outside the nominal scale {s.scale}")
    cache: dict[str, dict] = {}

    def index():
        if "i" not in cache:
            idx = _file_index(root)
            cache["i"] = (idx, sorted(idx))
        return cache["i"]

    paths = [_locate(root, rel, index) for rel in df["relative_path"]]
    df["path"] = [str(p) if p else None for p in paths]
    df["mos_1to5"] = to_1_5(df["mos"], sc, source=f"{label_file} (scale={scale!r})")
    found = df["path"].notna()
    bs = BenchmarkSet(s.name, split, sc, scale, root, label_file,
                      df[found].drop(columns="line").reset_index(drop=True),
                      df[~found].drop(columns=["path"]).reset_index(drop=True),
                      label_sha256=label_file_info(label_file)["label_sha256"], label_rows=n_rows,
                      split_rule=split_rule)
    if strict and len(bs.missing):
        raise FileNotFoundError(bs.summary(show=20))
    return bs
