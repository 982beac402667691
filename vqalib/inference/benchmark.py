"""Public-benchmark evaluation end to end: ``python -m vqalib benchmark NAME --videos DIR --model M``.

1. The labels: ``--labels FILE`` in any format :func:`vqalib.data.mos.read_label_file` reads (the
   official files of KoNViD-1k, LIVE-VQC, YouTube-UGC, LSVQ, or a FAST-VQA list); without it,
   :func:`vqalib.data.mos.find_label_file` looks beside the videos and in ``../shared/data/labels`` and
   otherwise raises saying what to download and where to point ``--labels``.
2. The videos present under ``--videos`` are scored with :class:`vqalib.inference.scorer.Scorer`
   into a resumable output file (listed-but-absent videos are counted, never guessed).
3. One Table 2 row per combination of dimensions (:mod:`vqalib.eval.combine`, default the rating
   schema's benchmark rule: its ``benchmark_dimension`` when set, else the mean of its quality
   dimensions, the paper's four; the row names it, ``combination``, and the dimensions it averaged,
   ``combined_dimensions``): SRCC, PLCC, PLCC after the 4-parameter logistic fit and
   KRCC against the MOS, each with a percentile bootstrap CI (videos resampled,
   :func:`vqalib.eval.metrics.bootstrap_ci`), plus the counts found / missing / failed / without score.

Notebook 07's cross-benchmark section calls :func:`run_benchmark` and :func:`table2`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from vqalib.eval.metrics import METRIC_LABELS, bootstrap_ci, score_metrics
from vqalib.core.runs import resolve_path
from vqalib.schema.rating import RatingSchema

#: The metrics of a Table 2 row, in column order.
TABLE2_METRICS = ("srcc", "plcc", "plcc_fit", "krcc")


def table2(bench, preds: Mapping[str, pd.DataFrame], combinations: Iterable[str] | None = None,
           readout: str = "expected_score", n_boot: int = 1000, seed: int = 0,
           n_failed: Mapping[str, int] | None = None, *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Table 2 rows (model x combination) for a :class:`vqalib.data.mos.BenchmarkSet`.

    ``combinations`` (:mod:`vqalib.eval.combine`): None is the rating ``schema``'s benchmark rule
    (``mean_quality`` for the paper, the ``benchmark_dimension`` when the schema sets one); ``schema``
    None: the one the prediction frames carry (``attrs["rating_schema"]``), else the paper's.

    ``preds`` maps a model name to long prediction rows (``video_id, dimension, <readout>``: a
    predictions file, or :func:`vqalib.inference.scorer.to_prediction_rows` of a scorer output).
    Columns: ``benchmark, split, model, combination, combined_dimensions`` (the keys averaged, joined
    by ``+``), ``readout``, then per metric the value and
    ``<metric> low`` / ``<metric> high`` (95 % bootstrap CI; NaN with ``reason`` when undefined),
    then ``n`` (videos in the metrics), ``n_listed``, ``n_found``, ``n_missing`` (listed, not under the
    video folder), ``n_failed`` (found, failed to decode; from ``n_failed``), ``n_no_score``
    (found, no prediction or an incomplete one), ``reason`` (first NaN reason), and the labels the row
    was computed on: ``label_file``, ``label_sha256``, ``label_rows`` (rows in the file, all splits).
    """
    from vqalib.eval.combine import benchmark_scores, default_combination
    from vqalib.eval.predictions_file import schema_of_frames

    schema = schema_of_frames(list(preds.values()), schema)
    combinations = list(combinations) if combinations is not None else [default_combination(schema)]
    rows = []
    for model, df in preds.items():
        for how in combinations:
            joined, info = benchmark_scores(bench, df, how, readout, schema=schema)
            ok = joined["score"].notna()
            y, p = joined.loc[ok, "mos_schema"].to_numpy(float), joined.loc[ok, "score"].to_numpy(float)
            res = score_metrics(y, p, list(TABLE2_METRICS))
            row: dict[str, Any] = {"benchmark": bench.name, "split": bench.split, "model": model, "combination": how,
                                   "combined_dimensions": "+".join(info["combined_dimensions"]), "readout": readout}
            reason = None
            for m in TABLE2_METRICS:
                lab = METRIC_LABELS[m]
                row[lab] = res[m].value
                lo = hi = np.nan
                if n_boot and res[m].defined:
                    ci = bootstrap_ci(m, y, p, n_boot=n_boot, seed=seed)
                    lo, hi = ci.low, ci.high
                row[f"{lab} low"], row[f"{lab} high"] = lo, hi
                reason = reason or res[m].reason
            failed = int((n_failed or {}).get(model, 0))
            row.update(n=int(ok.sum()), n_listed=info["n_listed"], n_found=info["n_available"],
                       n_missing=info["n_missing_videos"], n_failed=failed,
                       n_no_score=info["n_no_prediction"] - failed, reason=reason,
                       label_file=str(bench.label_file), label_sha256=bench.label_sha256,
                       label_rows=bench.label_rows)
            rows.append(row)
    return pd.DataFrame(rows)


def format_row(row: Mapping[str, Any]) -> str:
    """One line: ``SRCC 0.812 [0.78, 0.84] | PLCC ... | n=1200 found 1200/1200``."""
    parts = []
    for m in TABLE2_METRICS:
        lab = METRIC_LABELS[m]
        v, lo, hi = row[lab], row[f"{lab} low"], row[f"{lab} high"]
        parts.append(f"{lab} {v:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(v) else f"{lab} nan")
    tail = (f"n={row['n']} | found {row['n_found']}/{row['n_listed']}, missing {row['n_missing']}, "
            f"decode failed {row['n_failed']}, no score {row['n_no_score']}")
    why = f" | NaN: {row['reason']}" if row.get("reason") else ""
    return f"{row['benchmark']} ({row['split']}) {row['model']} [{row['combination']}, {row['readout']}]: " \
           + " | ".join(parts) + " | " + tail + why


def check_readout(readout: str, mode: str) -> None:
    """Raise ``ValueError`` with the fix when ``readout`` cannot come from a scorer run in ``mode``:
    fast mode does not generate, so it has no parsed scores."""
    readouts = ("expected_score", "argmax_score", "parsed_score")
    if readout not in readouts:
        raise ValueError(f"readout={readout!r}; use one of {readouts}")
    if readout == "parsed_score" and mode == "fast":
        raise ValueError("readout parsed_score needs generated answers, and fast mode generates none (it reads the "
                         "level distributions only); use --mode generate (mode='generate'), or --readout "
                         "expected_score / argmax_score")


def default_output(name: str, model: str, mode: str, split: str = "all") -> Path:
    """``runs/benchmarks/<name>/<split>/<model>.<mode>.csv`` under the project root: one file per split, so
    scoring LSVQ's test and 1080p splits never mixes their rows in one file."""
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(str(model)).name or str(model))
    return resolve_path("runs") / "benchmarks" / name / split / f"{slug}.{mode}.csv"


def run_benchmark(name: str, videos: str | os.PathLike, model: Any = "tiny", *, labels: str | os.PathLike | None = None,
                  split: str | None = None, output: str | os.PathLike | None = None, mode: str = "fast",
                  combinations: Iterable[str] | str | None = None, readout: str = "expected_score",
                  n_boot: int = 1000, seed: int = 0, scale: str = "nominal", limit: int | None = None,
                  labels_root: str | os.PathLike | None = None,
                  progress: bool = False, scorer=None, bench=None,
                  **scorer_kwargs: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score the benchmark videos found under ``videos`` and return ``(table2 rows, info)``.

    ``info`` holds the :class:`vqalib.data.mos.BenchmarkSet` (``bench``), the scorer run (``run``) and
    the output path. ``labels_root``: where FAST-VQA lists are looked for without ``labels``. ``limit`` scores only the first N found videos (a quick check; the counts
    say so). ``scorer`` reuses a :class:`~vqalib.inference.scorer.Scorer`; else one is built from
    ``model``, ``mode`` and ``scorer_kwargs`` (``batch_size``, ``device``, ``num_workers`` ...).
    ``readout="parsed_score"`` needs ``mode="generate"`` (raises ``ValueError`` before scoring otherwise).
    ``bench``: a :class:`vqalib.data.mos.BenchmarkSet` already loaded (the CLI reads the labels before it
    loads the model, so a label error costs no model load); else it is loaded from the arguments.
    ``combinations`` None: the scorer's rating schema's benchmark rule (:mod:`vqalib.eval.combine`); ``"all"``:
    every combination of that schema (:func:`vqalib.eval.combine.all_combinations`); a
    ``schema=`` keyword reaches the :class:`~vqalib.inference.scorer.Scorer` (default: the checkpoint's).
    """
    from vqalib.inference.scorer import Scorer, to_prediction_rows
    from vqalib.data.mos import load_benchmark

    check_readout(readout, scorer.mode if scorer is not None else mode)
    if bench is None:
        bench = load_benchmark(name, videos, split=split, label_file=labels, scale=scale, labels_root=labels_root)
    if scorer is None:
        scorer = Scorer(model, mode=mode, **scorer_kwargs)
    out = resolve_path(output) if output else default_output(name, str(scorer.info.get("model")), scorer.mode,
                                                             bench.split)
    items = bench.available[["video_id", "path"]]
    if limit:
        items = items.head(limit)
    if items.empty:
        raise FileNotFoundError(bench.summary() + f"\nnone of the listed videos is under {videos}: check --videos")
    run = scorer.score(items, out, progress=progress)
    label = str(scorer.info.get("model"))
    schema = getattr(scorer, "schema", None)
    if isinstance(combinations, str) and combinations == "all":
        from vqalib.eval.combine import all_combinations

        combinations = all_combinations(schema)
    table = table2(bench, {label: to_prediction_rows(run.rows, schema=schema)}, combinations, readout,
                   n_boot=n_boot, seed=seed, n_failed={label: int((run.rows["status"] != "ok").sum())},
                   schema=schema)
    if limit:
        table["n_no_score"] = table["n_no_score"] - (len(bench.available) - len(items))
        table["n_not_scored_limit"] = len(bench.available) - len(items)
    return table, {"bench": bench, "run": run, "output": out}
