"""Cross-benchmark adapters for public MOS datasets (the paper's Table 2 style evaluation).

Reads the label files distributed with FAST-VQA (``relative_path, duration_s, fps, MOS``, -1 =
unknown) for KoNViD-1k, LIVE-VQC, YouTube-UGC and LSVQ, and the VIDEVAL metadata CSVs, given the
user's local video folder. Listed videos that are not found locally are reported (count and list),
never dropped silently.

MOS -> 1-5: ``1 + 4 (mos - lo) / (hi - lo)`` over the dataset's **nominal** rating scale
(KoNViD-1k and YouTube-UGC 1-5, LIVE-VQC and LSVQ 0-100), not the observed min/max. Why: the
nominal scale is a property of the dataset, so the mapping is the same for every subset (a test
split, the videos a user has locally, a bootstrap resample), and MAE / Acc@0.5 stay comparable
across runs. The observed range changes with the subset and would stretch a narrow subset over
the whole 1-5 range. SRCC / KRCC / PLCC do not depend on this choice (the map is affine);
``scale="observed"`` is available for comparison.

Which prediction is compared with the MOS (one overall rating) is a choice, see
:data:`COMBINATIONS` and ``data_cards/public_mos_benchmarks.md``: by default ``"mean_quality"``,
the mean of the four *quality* dimensions (Motion Amplitude measures how much motion there is,
not how good the video is, so it is left out); ``"mean5"`` or any single dimension key are options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vqalib.levels import DIMENSION_KEYS, SCORE_MAX, SCORE_MIN


class LabelFileError(ValueError):
    """A benchmark label file is malformed; the message names the file, line and field."""


@dataclass(frozen=True)
class BenchmarkSpec:
    """A public MOS dataset: where its labels are and its nominal rating scale."""

    name: str
    label_files: dict[str, str]  # split -> path relative to the labels root
    scale: tuple[float, float]  # nominal MOS scale (lo, hi)
    note: str = ""


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "KoNViD": BenchmarkSpec("KoNViD-1k", {"all": "fastvqa/KoNViD/labels.txt"}, (1.0, 5.0),
                            "1,200 Flickr videos, 5-point ACR, 8 s, 540p"),
    "LIVE_VQC": BenchmarkSpec("LIVE-VQC", {"all": "fastvqa/LIVE_VQC/labels.txt"}, (0.0, 100.0),
                              "585 smartphone videos, continuous 0-100 slider"),
    "YouTubeUGC": BenchmarkSpec("YouTube-UGC", {"all": "fastvqa/YouTubeUGC/labels.txt"}, (1.0, 5.0),
                                "1,147 YouTube UGC clips (20 s), 1-5"),
    "LSVQ": BenchmarkSpec("LSVQ", {"test": "fastvqa/LSVQ/labels_test.txt", "1080p": "fastvqa/LSVQ/labels_1080p.txt",
                                   "train": "fastvqa/LSVQ/labels.txt"}, (0.0, 100.0),
                          "39k UGC videos, 0-100; test (7,186) and test-1080p (3,573) splits"),
}

#: How the five predicted dimensions become one score to compare with an overall MOS.
COMBINATIONS: dict[str, tuple[str, ...]] = {
    "mean_quality": ("motion_quality", "aesthetic_quality", "content_quality", "clarity_quality"),
    "mean5": DIMENSION_KEYS,
    **{k: (k,) for k in DIMENSION_KEYS},
}


def default_labels_root() -> Path:
    """``../shared/data/labels`` next to the checkout (tests/benchmarks only; users pass their own)."""
    from vqalib.runs import project_root

    return project_root().parent / "shared" / "data" / "labels"


def spec(name: str) -> BenchmarkSpec:
    """Look up a benchmark by key (``KoNViD``, ``LIVE_VQC``, ``YouTubeUGC``, ``LSVQ``), case-insensitive."""
    for k, s in BENCHMARKS.items():
        if name.lower() in (k.lower(), s.name.lower()):
            return s
    raise ValueError(f"unknown benchmark {name!r}; choose one of {list(BENCHMARKS)}")


def to_1_5(mos, scale: tuple[float, float], source: str | os.PathLike | None = None) -> np.ndarray:
    """``1 + 4 (mos - lo) / (hi - lo)``: map MOS on the scale ``(lo, hi)`` to 1-5.

    Raises ``ValueError`` when ``hi <= lo``, naming ``source`` (the label file) when given."""
    lo, hi = scale
    if not hi > lo:
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}MOS scale {scale}: hi must exceed lo (an 'observed' scale whose MOS values are all "
                         "equal has zero width); pass the dataset's nominal scale")
    return SCORE_MIN + (SCORE_MAX - SCORE_MIN) * (np.asarray(mos, dtype=float) - lo) / (hi - lo)


def read_fastvqa_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Parse a FAST-VQA label file: ``relative_path, duration_s, fps, MOS`` per line (-1 = unknown -> NaN).

    Returns ``video_id`` (the file stem; the relative path without extension when stems repeat,
    as in LSVQ), ``relative_path``, ``duration_s``, ``fps``, ``mos``, ``line``.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found")
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
        rows.append({"video_id": Path(rel).stem, "relative_path": rel, "duration_s": np.nan if dur == -1 else dur,
                     "fps": np.nan if fps == -1 else fps, "mos": mos, "line": n})
    if not rows:
        raise LabelFileError(f"{path}: no label lines")
    df = pd.DataFrame(rows)
    if not df["video_id"].is_unique:
        # Same file name in several folders (LSVQ: yfcc-batch1/747.mp4, yfcc-batch2/747.mp4): use the
        # relative path without extension as the id, so ids stay unique and stable for this file.
        df["video_id"] = [str(Path(r).with_suffix("")) for r in df["relative_path"]]
    dup = df["relative_path"].duplicated(keep=False)
    if dup.any():
        d = df[dup].head(2)
        raise LabelFileError(f"{path} lines {d['line'].tolist()}: duplicate video {d['relative_path'].iloc[0]!r}")
    return df


#: VIDEVAL metadata: id column, MOS column, optional extra columns kept.
_VIDEVAL_COLUMNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "KONVID_1K": ("flickr_id", "mos", ()),
    "LIVE_VQC": ("File", "MOS", ()),
    "YOUTUBE_UGC": ("vid", "MOSFull", ("stdFull", "x_Subjects", "category")),
}


def read_videval_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """Read a VIDEVAL ``*_metadata.csv`` into ``video_id, mos, width, height, framerate, nb_frames`` (+ extras:
    YouTube-UGC keeps ``mos_std`` and ``n_subjects``)."""
    path = Path(path)
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

    @property
    def n_listed(self) -> int:
        return len(self.available) + len(self.missing)

    def summary(self, show: int = 5) -> str:
        lines = [f"{self.name} ({self.split}): {self.n_listed} videos listed in {self.label_file.name}, "
                 f"{len(self.available)} found under {self.video_root}, {len(self.missing)} missing"]
        if len(self.missing):
            head = self.missing["relative_path"].head(show).tolist()
            lines.append(f"  missing (first {len(head)}): {head}" + (" ..." if len(self.missing) > show else ""))
        lines.append(f"  MOS mapped to 1-5 over the {self.scale_rule} scale {self.scale}")
        return "\n".join(lines)


def load_benchmark(name: str, video_root: str | os.PathLike, split: str | None = None,
                   labels_root: str | os.PathLike | None = None, scale: str = "nominal",
                   strict: bool = False) -> BenchmarkSet:
    """Match a benchmark's label file against ``video_root``.

    A video is found at ``video_root/relative_path`` or, failing that, ``video_root/<file name>``
    (folders are often flattened). Missing ones go to ``.missing`` (``strict=True`` raises instead).
    ``scale="nominal"`` (default) maps MOS with the dataset's rating scale; ``"observed"`` uses
    the min/max of the listed MOS.
    """
    s = spec(name)
    split = split or next(iter(s.label_files))
    if split not in s.label_files:
        raise ValueError(f"{s.name}: unknown split {split!r}; choose one of {list(s.label_files)}")
    labels_root = Path(labels_root) if labels_root else default_labels_root()
    label_file = labels_root / s.label_files[split]
    df = read_fastvqa_labels(label_file)
    root = Path(video_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist; pass the folder holding the {s.name} videos")
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
    paths = []
    for rel in df["relative_path"]:
        p = root / rel
        if not p.is_file():
            alt = root / Path(rel).name
            p = alt if alt.is_file() else None
        paths.append(str(p) if p else None)
    df["path"] = paths
    df["mos_1to5"] = to_1_5(df["mos"], sc, source=f"{label_file} (scale={scale!r})")
    found = df["path"].notna()
    bs = BenchmarkSet(s.name, split, sc, scale, root, label_file,
                      df[found].drop(columns="line").reset_index(drop=True),
                      df[~found].drop(columns=["path"]).reset_index(drop=True))
    if strict and len(bs.missing):
        raise FileNotFoundError(bs.summary(show=20))
    return bs


def combine_predictions(pred: pd.DataFrame, how: str = "mean_quality", readout: str = "expected_score") -> pd.DataFrame:
    """One score per video from per-dimension prediction rows: the mean of the dimensions in
    ``COMBINATIONS[how]`` of column ``readout`` (``expected_score``, ``parsed_score`` or ``argmax_score``).

    Returns ``video_id, score, n_dims`` where ``score`` is NaN (and counted by the caller) when
    any needed dimension is missing or has no value (e.g. an unparsed answer): never a partial mean.
    """
    if how not in COMBINATIONS:
        raise ValueError(f"how={how!r}; choose one of {list(COMBINATIONS)}")
    if readout not in ("expected_score", "parsed_score", "argmax_score"):
        raise ValueError(f"readout={readout!r}; choose expected_score, parsed_score or argmax_score")
    dims = COMBINATIONS[how]
    wide = pred[pred["dimension"].isin(dims)].pivot_table(index="video_id", columns="dimension", values=readout,
                                                          aggfunc="first", dropna=False)
    wide = wide.reindex(columns=list(dims))
    n_dims = wide.notna().sum(axis=1)
    score = wide.mean(axis=1).where(n_dims == len(dims))
    return pd.DataFrame({"video_id": wide.index.astype(str), "score": score.to_numpy(), "n_dims": n_dims.to_numpy()})


def benchmark_scores(bench: BenchmarkSet, pred: pd.DataFrame, how: str = "mean_quality",
                     readout: str = "expected_score") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Join a benchmark's MOS (1-5) with combined predictions.

    Returns the joined frame (``video_id, mos, mos_1to5, score``) and counts: ``n_available``
    (videos found locally), ``n_predicted`` (with a score), ``n_no_prediction`` (found but no
    usable prediction, listed in ``no_prediction``).
    """
    comb = combine_predictions(pred, how, readout)
    joined = bench.available[["video_id", "mos", "mos_1to5"]].merge(comb, on="video_id", how="left")
    no_pred = joined["score"].isna()
    info = {"benchmark": bench.name, "split": bench.split, "combination": how, "readout": readout,
            "n_listed": bench.n_listed, "n_missing_videos": len(bench.missing), "n_available": len(bench.available),
            "n_predicted": int((~no_pred).sum()), "n_no_prediction": int(no_pred.sum()),
            "no_prediction": joined.loc[no_pred, "video_id"].tolist()}
    return joined, info
