"""The standard cross-dataset protocol in one command: ``python -m vqalib benchmark-suite --model M
--videos-root DIR``.

A **suite** (``env/benchmark_suites/<name>.json``; ``standard``: LSVQ-test, LSVQ-1080p, KoNViD-1k,
LIVE-VQC, YouTube-UGC) lists, per benchmark, the split, the label file (relative to the labels root,
default ``../shared/data/labels``: the FAST-VQA lists that DOVER and FAST-VQA evaluate with), its
rows and its sha256. The files are **locked**: a label file whose rows or sha256 differ is refused,
naming both values, so two suite results always rest on the same labels.

Per benchmark, :func:`vqalib.inference.benchmark.run_benchmark` scores the videos present under that
benchmark's folder (``--videos-root ROOT`` takes ``ROOT/<key>``, ``--videos KEY=DIR`` names one) and
returns the Table 2 row: SRCC, PLCC (raw and after the 4-parameter logistic), KRCC with 95 % bootstrap
intervals, found / missing / failed counts. A benchmark without videos gives a row of NaN with the
reason; nothing is skipped silently. Each row also records its protocol: readout mode, frames (fps,
max frames, max pixels), the readout and which predicted dimensions answer the single MOS
(:mod:`vqalib.eval.combine`).

:func:`side_by_side` puts the published numbers of ``data_cards/published_results.csv`` (each with its
source, training data and protocol; PLCC-only sources and best-of-several-splits results are marked
there) beside each of our rows.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from vqalib.core.runs import project_root, resolve_path

#: Where the suites live (``<name>.json``).
SUITES_DIR = Path("env") / "benchmark_suites"
#: Published results printed beside ours.
PUBLISHED = Path("data_cards") / "published_results.csv"


@dataclass(frozen=True)
class SuiteEntry:
    """One benchmark of a suite: the split and the locked label file (path relative to the labels root)."""

    benchmark: str
    split: str
    label_file: str
    rows: int
    sha256: str


def suite_file(suite: str | os.PathLike) -> Path:
    """The suite file: ``suite`` itself when it is a file, else ``env/benchmark_suites/<suite>.json``.
    Raises ``FileNotFoundError`` listing the suites there."""
    p = resolve_path(suite)
    if p.is_file():
        return p
    named = project_root() / SUITES_DIR / f"{suite}.json"
    if named.is_file():
        return named
    have = sorted(f.stem for f in (project_root() / SUITES_DIR).glob("*.json"))
    raise FileNotFoundError(f"no benchmark suite {str(suite)!r}: not a file, and not one of {have} in {SUITES_DIR}")


def load_suite(suite: str | os.PathLike = "standard") -> tuple[str, list[SuiteEntry]]:
    """``(name, entries)`` of a suite file (see the module docstring). Raises ``ValueError`` naming the file
    and entry for a missing field or an unknown benchmark or split."""
    from vqalib.data.mos import spec

    path = suite_file(suite)
    raw = json.loads(path.read_text())
    entries = []
    for i, e in enumerate(raw.get("entries", [])):
        missing = [f for f in ("benchmark", "split", "label_file", "rows", "sha256") if f not in e]
        if missing:
            raise ValueError(f"{path} entry {i}: missing {missing}")
        s = spec(e["benchmark"])
        if e["split"] not in s.splits:
            raise ValueError(f"{path} entry {i}: {s.name} has no split {e['split']!r} (splits: {list(s.splits)})")
        entries.append(SuiteEntry(e["benchmark"], e["split"], e["label_file"], int(e["rows"]), str(e["sha256"])))
    if not entries:
        raise ValueError(f"{path}: no entries")
    return str(raw.get("name", path.stem)), entries


def locked_label_file(entry: SuiteEntry, labels_root: str | os.PathLike | None = None) -> Path:
    """The entry's label file under ``labels_root`` (default ``../shared/data/labels``), after checking its
    rows and sha256 against the suite. Raises :class:`vqalib.data.mos.LabelFileError` naming the file, the
    expected and the found values, and the fix."""
    from vqalib.data.mos import LabelFileError, default_labels_root, label_file_info, read_label_file

    root = resolve_path(labels_root) if labels_root else default_labels_root()
    path = root / entry.label_file
    if not path.is_file():
        raise LabelFileError(f"{path}: the {entry.benchmark} ({entry.split}) label file of the suite is missing; put "
                             f"FAST-VQA's examplar_data_labels/ lists under --labels-root (now {root})")
    sha = label_file_info(path)["label_sha256"]
    rows = len(read_label_file(path))
    if (rows, sha) != (entry.rows, entry.sha256):
        raise LabelFileError(f"{path}: {rows} rows, sha256 {sha}; the suite locks {entry.rows} rows, sha256 "
                             f"{entry.sha256}. Use the file the suite names, or copy the suite file, set this file's "
                             "rows and sha256 in it and pass it with --suite (results on other labels are another "
                             "benchmark)")
    return path


def _empty_row(entry: SuiteEntry, reason: str, **extra: Any) -> dict[str, Any]:
    from vqalib.eval.metrics import METRIC_LABELS
    from vqalib.inference.benchmark import TABLE2_METRICS

    from vqalib.data.mos import spec

    row: dict[str, Any] = {"benchmark": entry.benchmark, "split": entry.split, "dataset": spec(entry.benchmark).name}
    for m in TABLE2_METRICS:
        lab = METRIC_LABELS[m]
        row.update({lab: np.nan, f"{lab} low": np.nan, f"{lab} high": np.nan})
    row.update(n=0, n_failed=0, n_no_score=0, reason=reason, **extra)
    return row


def run_suite(model: Any = "tiny", videos: Mapping[str, str | os.PathLike] | None = None, *,
              videos_root: str | os.PathLike | None = None, suite: str | os.PathLike = "standard",
              labels_root: str | os.PathLike | None = None, output_dir: str | os.PathLike = "runs/benchmarks/suite",
              mode: str = "fast", combination: str | None = None, readout: str = "expected_score",
              n_boot: int = 1000, seed: int = 0, scorer=None, progress: bool = False,
              **scorer_kwargs: Any) -> pd.DataFrame:
    """One Table 2 row per suite entry (module docstring); also written to ``output_dir/suite.csv`` with the
    scores files ``output_dir/<benchmark>_<split>.<mode>.csv`` (resumable) and ``suite.json`` (the suite,
    its locked files and the protocol).

    ``videos`` maps a benchmark key (``LSVQ``, ``KoNViD``, ``LIVE_VQC``, ``YouTubeUGC``) to its folder;
    ``videos_root`` gives ``<root>/<key>`` for the others. Raises ``LabelFileError`` before any scoring when a
    locked label file is missing or differs."""
    from vqalib.data.mos import benchmark_key
    from vqalib.inference.benchmark import check_readout, run_benchmark
    from vqalib.inference.scorer import Scorer

    name, entries = load_suite(suite)
    labels = [locked_label_file(e, labels_root) for e in entries]  # every lock checked before anything runs
    check_readout(readout, scorer.mode if scorer is not None else mode)
    out_dir = resolve_path(output_dir)
    folders = {}
    for e in entries:
        key = benchmark_key(e.benchmark)
        given = (videos or {}).get(key) or (videos or {}).get(e.benchmark)
        folders[e] = resolve_path(given) if given else (resolve_path(videos_root) / key if videos_root else None)
    scorer = scorer or Scorer(model, mode=mode, **scorer_kwargs)
    if combination is None:  # the rating schema's benchmark rule (mean_quality for the paper)
        from vqalib.eval.combine import default_combination

        combination = default_combination(getattr(scorer, "schema", None))
    s = scorer.sampling
    protocol = {"model": str(scorer.info.get("model")), "mode": scorer.mode, "readout": readout,
                "combination": combination, "fps": s.fps, "max_frames": s.max_frames, "max_pixels": s.max_pixels}
    rows = []
    for e, label in zip(entries, labels):
        lock = {"label_file": str(label), "label_sha256": e.sha256, "label_rows": e.rows}
        folder = folders[e]
        if folder is None or not folder.is_dir():
            why = (f"no video folder for {e.benchmark} (pass --videos {e.benchmark}=DIR or --videos-root ROOT with "
                   f"ROOT/{e.benchmark})" if folder is None else
                   f"video folder {folder} does not exist (put the videos there, or pass --videos {e.benchmark}=DIR)")
            rows.append({**_empty_row(e, why, n_listed=e.rows, n_found=0, n_missing=e.rows), **lock, **protocol})
            continue
        try:
            table, info = run_benchmark(e.benchmark, folder, labels=label, split=e.split, scorer=scorer,
                                        output=out_dir / f"{e.benchmark}_{e.split}.{scorer.mode}.csv",
                                        combinations=(combination,), readout=readout, n_boot=n_boot, seed=seed,
                                        progress=progress)
        except FileNotFoundError as exc:  # none of the listed videos is in the folder
            rows.append({**_empty_row(e, f"none of the {e.rows} listed videos is under {folder}", n_listed=e.rows,
                                      n_found=0, n_missing=e.rows), **lock, **protocol,
                         "detail": str(exc).splitlines()[0]})
            continue
        row = table.iloc[0].to_dict()
        rows.append({**row, "benchmark": e.benchmark, "dataset": info["bench"].name, **protocol})
    result = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.to_csv(out_dir / "suite.csv", index=False)
    (out_dir / "suite.json").write_text(json.dumps({"suite": name, "suite_file": str(suite_file(suite)),
                                                    "entries": [asdict(e) for e in entries],
                                                    "protocol": protocol}, indent=2))
    return result


def published_results(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The published numbers (``data_cards/published_results.csv``): ``model, benchmark, split, srcc, plcc,
    training, protocol, source``; an empty cell is a number the source does not give."""
    return pd.read_csv(resolve_path(path) if path else project_root() / PUBLISHED)


def side_by_side(table: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per benchmark and split: our row (``model`` = the scored model) and every published row, with
    ``SRCC, PLCC, n, training, protocol, note, source`` (``note``: why our row is NaN, when it is); ours first,
    then the published ones in file order."""
    pub = published_results() if published is None else published
    out = []
    for _, r in table.iterrows():
        out.append({"benchmark": r["benchmark"], "split": r["split"], "model": f"{r.get('model', '')} (this run)",
                    "SRCC": r["SRCC"], "PLCC": r["PLCC"], "n": r["n"],
                    "training": "", "protocol": f"{r.get('mode', '')}, {r.get('readout', '')}, "
                                                f"{r.get('combination', '')}, {r.get('fps', '')} fps, "
                                                f"<= {r.get('max_frames', '')} frames",
                    "note": r.get("reason") if isinstance(r.get("reason"), str) else "", "source": "this run"})
        match = pub[(pub["benchmark"] == r["benchmark"]) & (pub["split"] == r["split"])]
        for _, p in match.iterrows():
            out.append({"benchmark": p["benchmark"], "split": p["split"], "model": p["model"], "SRCC": p["srcc"],
                        "PLCC": p["plcc"], "n": np.nan, "training": p["training"], "protocol": p["protocol"],
                        "note": "", "source": p["source"]})
    return pd.DataFrame(out)


def format_markdown(sbs: pd.DataFrame) -> str:
    """The side-by-side table as Markdown (NaN shown as ``–``)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "–" if not np.isfinite(v) else f"{v:.3f}"
        return str(v).replace("|", "/")

    cols = ["benchmark", "split", "model", "SRCC", "PLCC", "n", "training", "protocol", "note", "source"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    def count(v: Any) -> str:
        return str(int(v)) if pd.notna(v) else ""

    lines += ["| " + " | ".join(count(r[c]) if c == "n" else cell(r[c]) for c in cols) + " |"
              for _, r in sbs.iterrows()]
    return "\n".join(lines)
