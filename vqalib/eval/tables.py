"""Evaluation tables and figures of notebook 07, built only from predictions files.

- :func:`table1`: the paper's Table 1 layout, rows = models, column groups = dimensions x
  (Acc@0.5, MAE, SRCC, PLCC), for a chosen readout (``parsed_score`` = the generated answer,
  ``expected_score`` = ``sum_s s pi(s)``, ``argmax_score``), plus a long table with bootstrap CIs,
  the number of items used, the number of parse failures and the reason of every NaN.
- :func:`confusion` / :func:`plot_confusions`: target level x predicted level counts per dimension.
- :func:`calibration_table` / :func:`plot_reliability`: ECE, NLL, Brier and reliability diagrams from
  the saved 9-level distributions.
- :func:`parse_failure_table`: per model and dimension, how many answers did not parse.
- :func:`cross_benchmark_table`: the Table 2-style section (public MOS benchmarks, ``vqalib.data.mos``).

Two views of failures (``failures=``):

- ``"exclude"`` (default): items enter a metric when they have a target and a value for the readout.
  A parse failure is not replaced by anything: it is left out and counted in ``n_failed`` (compare
  ``n`` with ``n_items``); ``coverage = n / n_items``. Two models with different failure rates are
  then compared on different clips.
- ``"all_items"``: every item with a target counts, so all models are compared on the same clips.
  A failure counts as **wrong** for Acc@0.5 and as the **scale midpoint 3.0** for MAE, RMSE, SRCC,
  KRCC and PLCC (:data:`FAILURE_SCORE`): a model that fails often cannot look better than one that
  answers. It is a scoring rule, not an imputed prediction: the predictions file keeps the failure.

Rating schemas (:mod:`vqalib.schema.rating`): every function takes ``schema=`` (None: the schema the
predictions frames carry, ``attrs["rating_schema"]`` from :func:`vqalib.eval.predictions_file.read_predictions`,
else the paper's). Dimensions, their order and names, the levels of confusion matrices and calibration,
the Acc tolerance (:func:`vqalib.eval.metrics.acc_tolerance`) and the failure rule's midpoint come from it;
a dimension with a ``raw_range`` is also scored on the raw scale (``raw_*`` columns of :func:`metrics_long`,
``"<Name> (raw lo-hi)"`` column groups of :func:`table1`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from vqalib.core.bootstrap import hierarchical_values, percentile_ci
from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema
from vqalib.eval.metrics import (METRIC_LABELS, acc_label, acc_tolerance, bootstrap_ci, calibration, metric_fn,
                                 raw_factor, score_metrics, to_raw_scale)
from vqalib.eval.predictions_file import schema_of_frames

READOUTS: tuple[str, ...] = ("parsed_score", "expected_score", "argmax_score")
FAILURE_VIEWS: tuple[str, ...] = ("exclude", "all_items")
#: The value a failed item is scored as in the ``all_items`` view (the midpoint of the 1-5 scale);
#: for Acc@0.5 a failure is always wrong.
FAILURE_SCORE: float = 3.0


def failure_score(schema: RatingSchema | str | None = None) -> float:
    """The value a failed item is scored as in the ``all_items`` view: the midpoint of the schema's scale
    (:data:`FAILURE_SCORE`, 3.0, for the paper)."""
    schema = rating.resolve(schema)
    return FAILURE_SCORE if schema.is_paper else (schema.lo + schema.hi) / 2


def _failure_arrays(y: np.ndarray, p: np.ndarray, ok: np.ndarray, metric: str,
                    schema: RatingSchema | None = None) -> np.ndarray:
    """Predictions of the ``all_items`` view: failed items scored as :func:`failure_score`, or for Acc
    as a value twice the Acc tolerance away from the target (1.0 for the paper), so they always count as wrong."""
    fill = y + 2 * acc_tolerance(schema) if metric == "acc" else np.full_like(y, failure_score(schema))
    return np.where(ok, p, fill)
TABLE1_METRICS: tuple[str, ...] = ("acc", "mae", "srcc", "plcc")


def _check_readout(readout: str) -> None:
    if readout not in READOUTS:
        raise ValueError(f"readout={readout!r}; choose one of {list(READOUTS)}")


def _dims(preds: Mapping[str, pd.DataFrame], schema: RatingSchema | None = None) -> list[str]:
    present = set().union(*(set(df["dimension"]) for df in preds.values())) if preds else set()
    return [d for d in rating.resolve(schema).keys if d in present]


def _schema(preds: Mapping[str, pd.DataFrame], schema) -> RatingSchema:
    return schema_of_frames(list(preds.values()), schema)


def metric_label(metric: str, tolerance: float | None = None) -> str:
    """Display label of a metric; Acc names its tolerance (``Acc@0.5``)."""
    return acc_label(tolerance) if metric == "acc" and tolerance is not None else METRIC_LABELS[metric]


def raw_label(schema: RatingSchema, dim: str) -> str:
    """``"Overall Quality (raw 0-100)"``: the column group of a dimension's raw-scale metrics."""
    lo, hi = schema.dimension(dim).raw_range
    flip = "" if schema.dimension(dim).higher_is_better else ", lower is better"
    return f"{schema.name_of(dim)} (raw {lo:g}-{hi:g}{flip})"


def metrics_long(preds: Mapping[str, pd.DataFrame], readout: str = "parsed_score",
                 metrics: Iterable[str] = ("acc", "mae", "rmse", "srcc", "krcc", "plcc", "plcc_fit"),
                 n_boot: int = 0, seed: int = 0, failures: str = "exclude", *,
                 schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """One row per (model, dimension, metric): ``value, ci_low, ci_high, n, n_items, n_failed, coverage,
    reason, failures`` (``n_items``: rows with a target; a clip without a label for the dimension is left
    out and counted in ``n_unlabelled``, the last column), then ``tolerance`` (Acc's, on the schema's
    scale; NaN for other metrics) and the
    raw scale: ``raw_value, raw_ci_low, raw_ci_high, raw_range`` (``"0-100"``; NaN / None when the
    dimension has no ``raw_range``; the same items and bootstrap draws as ``value``).

    ``n_boot > 0`` adds percentile bootstrap CIs (items resampled, seeded with ``seed``).
    ``failures``: ``"exclude"`` (failed items left out; ``n`` = items used) or ``"all_items"`` (every
    item counts, failures scored by the module's rule; ``n = n_items``). Unknown values raise.
    ``schema``: module docstring.
    """
    _check_readout(readout)
    if failures not in FAILURE_VIEWS:
        raise ValueError(f"failures={failures!r}; choose one of {list(FAILURE_VIEWS)}")
    metrics = list(metrics)
    schema = _schema(preds, schema)
    tol = acc_tolerance(schema)
    rows = []
    for model, df in preds.items():
        for dim in _dims(preds, schema):
            factor = raw_factor(schema, dim)
            sub = df[(df["dimension"] == dim) & df["target"].notna()]
            n_unlabelled = int(((df["dimension"] == dim) & df["target"].isna()).sum())  # masked, never filled in
            ok = sub[readout].notna()
            n_failed = int((sub["parse_status"] != "ok").sum()) if readout == "parsed_score" else int((~ok).sum())
            if failures == "exclude":
                y, p = sub.loc[ok, "target"].to_numpy(float), sub.loc[ok, readout].to_numpy(float)
                per_metric = {m: (y, p) for m in metrics}
                n_used = int(ok.sum())
            else:
                y, p_raw, okv = sub["target"].to_numpy(float), sub[readout].to_numpy(float), ok.to_numpy()
                per_metric = {m: (y, _failure_arrays(y, p_raw, okv, m, schema)) for m in metrics}
                n_used = len(sub)
            res = {m: score_metrics(*per_metric[m], [m], tolerance=tol)[m] for m in metrics} if len(sub) \
                else {m: None for m in metrics}
            for m in metrics:
                r = res[m]
                value = np.nan if r is None else r.value
                reason = "model has no rows for this dimension" if r is None else r.reason
                lo = hi = np.nan
                if n_boot and r is not None and r.defined:
                    ci = bootstrap_ci(metric_fn(m, tol), *per_metric[m], n_boot=n_boot, seed=seed)
                    lo, hi = ci.low, ci.high
                raw = {"raw_value": np.nan, "raw_ci_low": np.nan, "raw_ci_high": np.nan, "raw_range": None}
                if factor is not None:
                    rr = schema.dimension(dim).raw_range
                    raw["raw_range"] = f"{rr[0]:g}-{rr[1]:g}"
                    if r is not None:
                        yr, pr = to_raw_scale(*per_metric[m], schema, dim)
                        fn = metric_fn(m, tol * factor)
                        raw["raw_value"] = fn(yr, pr).value
                        if n_boot and r.defined:
                            ci = bootstrap_ci(fn, yr, pr, n_boot=n_boot, seed=seed)
                            raw["raw_ci_low"], raw["raw_ci_high"] = ci.low, ci.high
                rows.append({"model": model, "dimension": dim, "metric": m, "value": value, "ci_low": lo, "ci_high": hi,
                             "n": n_used, "n_items": len(sub), "n_failed": n_failed,
                             "coverage": ok.mean() if len(sub) else np.nan, "reason": reason, "failures": failures,
                             "tolerance": tol if m == "acc" else np.nan, **raw, "n_unlabelled": n_unlabelled})
    return pd.DataFrame(rows)


def table1(preds: Mapping[str, pd.DataFrame], readout: str = "parsed_score",
           metrics: Iterable[str] = TABLE1_METRICS, n_boot: int = 0, seed: int = 0,
           failures: str = "exclude", *, schema: RatingSchema | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's Table 1: rows = models, columns = (dimension display name, metric label); a dimension
    with a ``raw_range`` adds a group ``"<Name> (raw lo-hi)"`` of the same metrics on the raw scale.

    Returns ``(wide, long)``; ``long`` is :func:`metrics_long` (CIs, counts, NaN reasons);
    ``failures`` chooses the view of parse failures (module docstring); ``schema``: module docstring.
    """
    schema = _schema(preds, schema)
    metrics = list(metrics)
    long = metrics_long(preds, readout, metrics, n_boot=n_boot, seed=seed, failures=failures, schema=schema)
    if long.empty:
        return pd.DataFrame(), long
    tol = acc_tolerance(schema)
    dims = _dims(preds, schema)
    parts, labels = [], []
    for value, scale in (("value", "schema"), ("raw_value", "raw")):
        use = [d for d in dims if scale == "schema" or raw_factor(schema, d) is not None]
        if not use:
            continue
        w = long.pivot_table(index="model", columns=["dimension", "metric"], values=value, dropna=False, sort=False)
        cols = [(d, m) for d in use for m in metrics]
        parts.append(w.reindex(index=list(preds), columns=pd.MultiIndex.from_tuples(cols)))
        labels += [(schema.name_of(d) if scale == "schema" else raw_label(schema, d),
                    metric_label(m, tol if scale == "schema" else tol * raw_factor(schema, d))) for d, m in cols]
    wide = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    wide.columns = pd.MultiIndex.from_tuples(labels)
    wide.index.name = "model"
    return wide, long


def flat_metrics(long: pd.DataFrame, prefix: str) -> dict[str, Any]:
    """``{prefix/model/dimension/metric: value}`` (plus ``/n`` and ``/n_failed`` per dimension, and
    ``prefix/model/dimension/raw/metric`` for raw-scale values) for ``Run.log_metrics``."""
    out: dict[str, Any] = {}
    for r in long.itertuples():
        out[f"{prefix}/{r.model}/{r.dimension}/{r.metric}"] = r.value
        if getattr(r, "raw_range", None):
            out[f"{prefix}/{r.model}/{r.dimension}/raw/{r.metric}"] = r.raw_value
        out[f"{prefix}/{r.model}/{r.dimension}/n"] = r.n
        out[f"{prefix}/{r.model}/{r.dimension}/n_failed"] = r.n_failed
    return out


def parse_failure_table(preds: Mapping[str, pd.DataFrame], *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Rows = models, columns = dimensions of the schema (+ total): number of answers that did not parse
    (missing + unparsable)."""
    schema = _schema(preds, schema)
    data = {}
    for model, df in preds.items():
        bad = df[df["parse_status"] != "ok"].groupby("dimension").size()
        data[model] = {schema.name_of(d): int(bad.get(d, 0)) for d in _dims(preds, schema)}
        data[model]["total"] = int((df["parse_status"] != "ok").sum())
        data[model]["rows"] = len(df)
    return pd.DataFrame.from_dict(data, orient="index").rename_axis("model")


def confusion(df: pd.DataFrame, dimension: str, readout: str = "argmax_score", *,
              schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """K x K counts over the schema's levels (9 x 9 for the paper): rows = target level, columns =
    predicted level (both snapped to the grid), labelled by the level strings.

    Items without a target or a readout value are left out (see ``parse_failure_table``).
    """
    _check_readout(readout)
    schema = schema_of_frames([df], schema)
    k = schema.n_levels
    sub = df[(df["dimension"] == dimension) & df["target"].notna() & df[readout].notna()]
    t = np.atleast_1d(schema.index(schema.snap(sub["target"].to_numpy(float)))) if len(sub) else np.array([], int)
    p = np.atleast_1d(schema.index(schema.snap(sub[readout].to_numpy(float)))) if len(sub) else np.array([], int)
    m = np.zeros((k, k), dtype=int)
    np.add.at(m, (t, p), 1)
    return pd.DataFrame(m, index=pd.Index(schema.strings, name="target"),
                        columns=pd.Index(schema.strings, name="predicted"))


def plot_confusions(df: pd.DataFrame, model: str, readout: str = "argmax_score", *,
                    schema: RatingSchema | str | None = None):
    """One ``seaborn.heatmap`` per dimension of :func:`confusion`: colour = share of the human
    level's items (row-normalised, 0 ... 1), counts written in the non-empty cells, human level
    1.0 at the bottom, the diagonal (prediction = human) drawn in grey."""
    import seaborn as sns

    from vqalib.eval import plots

    schema = schema_of_frames([df], schema)
    k_levels = schema.n_levels
    with plots.theme():
        dims = [d for d in schema.keys if d in set(df["dimension"])]
        # no layout engine while seaborn.heatmap draws the figure once per call (to check tick overlap)
        fig, axes = plots.subplots(1, len(dims), figsize=(3.5 * len(dims) + 1.2, 3.8), layout=None)
        for k, (ax, dim) in enumerate(zip(axes[0], dims)):
            cm = confusion(df, dim, readout, schema=schema)
            counts = cm.to_numpy()
            rows = counts.sum(axis=1, keepdims=True)
            norm = pd.DataFrame(np.divide(counts, rows, out=np.zeros(cm.shape), where=rows > 0), index=cm.index,
                                columns=cm.columns)
            sns.heatmap(norm, annot=np.where(counts > 0, counts.astype(str), ""), fmt="", cmap="Blues", vmin=0, vmax=1,
                        square=True, linewidths=0.3, linecolor="0.9", cbar=False, annot_kws={"fontsize": 6}, ax=ax)
            ax.invert_yaxis()
            ax.plot([0, k_levels], [0, k_levels], color="grey", lw=0.6)
            ax.set_title(f"{schema.name_of(dim)} (n={int(counts.sum())})")
            ax.set_xlabel(f"predicted level ({readout})")
            ax.set_ylabel("human level" if k == 0 else "")
            ax.tick_params(axis="x", rotation=90)
            ax.tick_params(axis="y", rotation=0)
        fig.suptitle(f"{model}: confusion matrices")
        fig.set_layout_engine("constrained")
        fig.colorbar(axes[0][0].collections[0], ax=list(axes[0]), shrink=0.8, label="share of the human level's items")
    return fig


def _dists(sub: pd.DataFrame, k: int = 9) -> np.ndarray:
    return np.stack(sub["dist"].to_numpy()) if len(sub) else np.zeros((0, k))


def calibration_table(preds: Mapping[str, pd.DataFrame], n_bins: int = 10, *,
                      schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Per model and dimension: ECE, NLL, Brier, exact-level accuracy, mean confidence, n, NaN reason.

    Uses rows with a distribution and a target on the schema's K-level grid (targets are snapped with
    ``schema.snap``; off-grid targets such as mapped MOS belong in the benchmark section instead).
    """
    schema = _schema(preds, schema)
    rows = []
    for model, df in preds.items():
        for dim in _dims(preds, schema):
            sub = df[(df["dimension"] == dim) & df["target"].notna() & df["dist"].notna()]
            no_dist = int(((df["dimension"] == dim) & df["dist"].isna()).sum())
            cal = calibration(_dists(sub, schema.n_levels), schema.snap(sub["target"].to_numpy(float)), n_bins=n_bins,
                              schema=schema)
            rows.append({"model": model, "dimension": dim, "ece": cal.ece.value, "nll": cal.nll.value,
                         "brier": cal.brier.value, "accuracy": cal.accuracy, "confidence": cal.mean_confidence,
                         "n": len(sub), "n_without_dist": no_dist, "reason": cal.ece.reason})
    return pd.DataFrame(rows)


def reliability_long(preds: Mapping[str, pd.DataFrame], n_bins: int = 10, ci: float = 0.95, *,
                     schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """The reliability-diagram points in long form: one row per model, dimension and non-empty
    confidence bin with ``confidence`` (mean max level probability), ``accuracy`` (share of argmax =
    human level), ``n``, the Wilson ``ci`` interval of the accuracy (``acc_lo``, ``acc_hi``;
    ``scipy.stats.binomtest``) and the dimension's ``ece``."""
    from scipy.stats import binomtest

    schema = _schema(preds, schema)
    rows = []
    for model, df in preds.items():
        for dim in _dims(preds, schema):
            sub = df[(df["dimension"] == dim) & df["target"].notna() & df["dist"].notna()]
            if not len(sub):
                continue
            cal = calibration(_dists(sub, schema.n_levels), schema.snap(sub["target"].to_numpy(float)),
                              n_bins=n_bins, schema=schema)
            for r in cal.reliability[cal.reliability["n"] > 0].itertuples():
                lo, hi = binomtest(int(round(r.accuracy * r.n)), int(r.n)).proportion_ci(ci, method="wilson")
                rows.append({"model": model, "dimension": dim, "confidence": r.confidence, "accuracy": r.accuracy,
                             "n": int(r.n), "acc_lo": lo, "acc_hi": hi, "ece": cal.ece.value})
    return pd.DataFrame(rows, columns=["model", "dimension", "confidence", "accuracy", "n", "acc_lo", "acc_hi", "ece"])


def plot_reliability(preds: Mapping[str, pd.DataFrame], n_bins: int = 10, *,
                     schema: RatingSchema | str | None = None):
    """Reliability diagrams (``seaborn.lineplot`` of :func:`reliability_long`): one panel per
    dimension, ``hue`` = model, 95 % Wilson intervals of each bin's accuracy as error bars, the
    model's ECE in the legend; the dashed diagonal is perfect calibration."""
    import seaborn as sns

    from vqalib.eval import plots

    schema = _schema(preds, schema)
    with plots.theme():
        dims = _dims(preds, schema)
        long = reliability_long(preds, n_bins, schema=schema)
        models = list(preds)
        palette = dict(zip(models, sns.color_palette(plots.THEME["palette"], len(models))))
        fig, axes = plots.subplots(1, len(dims), figsize=(3.2 * len(dims), 3.5), sharey=True)
        for ax, dim in zip(axes[0], dims):
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
            sub = long[long["dimension"] == dim]
            present = [m for m in models if m in set(sub["model"])]
            if present:
                sns.lineplot(data=sub, x="confidence", y="accuracy", hue="model", hue_order=present, palette=palette,
                             marker="o", errorbar=None, ax=ax)
                for m in present:
                    s = sub[sub["model"] == m]
                    ax.errorbar(s["confidence"], s["accuracy"], yerr=np.vstack([s["accuracy"] - s["acc_lo"],
                                                                                s["acc_hi"] - s["accuracy"]]),
                                fmt="none", ecolor=palette[m], elinewidth=0.8, capsize=2, gid="interval")
                ece = sub.groupby("model")["ece"].first()
                handles, labels = ax.get_legend_handles_labels()
                ax.legend(handles, [f"{m} (ECE {ece[m]:.2f})" for m in labels], loc="upper left", fontsize=7)
            ax.set(xlim=(0, 1), ylim=(0, 1), title=schema.name_of(dim), xlabel="confidence (max level probability)",
                   ylabel="accuracy (argmax = human level)")
        fig.suptitle("Reliability: accuracy per confidence bin (bars: 95 % Wilson interval)")
    return fig


def cross_benchmark_table(bench, preds: Mapping[str, pd.DataFrame], combinations: Iterable[str] | None = None,
                          readout: str = "expected_score", *,
                          schema: RatingSchema | str | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Table 2-style rows (model, combination): SRCC, PLCC, PLCC (logistic), KRCC, MAE on the MOS mapped
    onto the schema's scale (the 1-5 map for the paper), counts.

    ``bench`` is a ``vqalib.data.mos.BenchmarkSet``; ``preds`` hold predictions on its videos.
    ``combinations`` (:mod:`vqalib.eval.combine`) default to the schema's benchmark rule
    (``mean_quality`` for the paper; the ``benchmark_dimension`` when the schema sets one).
    Returns ``(table, infos)`` where ``infos`` lists the per-row counts (videos missing, without prediction)
    and the dimensions each combination averaged (``combined_dimensions``).
    """
    from vqalib.eval.combine import benchmark_scores, default_combination

    schema = _schema(preds, schema)
    combinations = list(combinations) if combinations is not None else [default_combination(schema)]
    rows, infos = [], []
    for model, df in preds.items():
        for how in combinations:
            joined, info = benchmark_scores(bench, df, how, readout, schema=schema)
            ok = joined["score"].notna()
            res = score_metrics(joined.loc[ok, "mos_schema"], joined.loc[ok, "score"], ["srcc", "plcc", "plcc_fit", "krcc", "mae"])
            row = {"model": model, "combination": how}
            row.update({METRIC_LABELS[k]: r.value for k, r in res.items()})
            row.update({"n": int(ok.sum()), "n_no_prediction": info["n_no_prediction"],
                        "n_missing_videos": info["n_missing_videos"],
                        "reason": next((r.reason for r in res.values() if r.reason), None)})
            rows.append(row)
            infos.append({"model": model, **info})
    return pd.DataFrame(rows), infos


def ensure_base_predictions(run_dir: str, data_dir: str = "", sample_size: str = "default", seed: int = 0,
                            model: str = "tiny", split: str = "test", device: str = "cpu",
                            max_videos: int = 0, schema: Any = None) -> tuple[Any, bool]:
    """``RUN_DIR/predictions/base.jsonl``: returned as is when it exists, else created by running
    the (untrained) model through ``vqalib.eval.predict.predict`` on the ``split`` videos of the dataset
    (``schema``: its rating schema, a preset name or file; None: the dataset's, the paper's for the sample).

    Returns ``(path, created)``. Needs ``vqalib.eval.predict`` (model half of issue 4); raises a clear
    error naming the missing piece otherwise, never writes a placeholder.
    """
    from vqalib.core.runs import resolve_path

    path = resolve_path(run_dir) / "predictions" / "base.jsonl"
    if path.is_file():
        return path, False
    try:
        from vqalib.eval import predict as predict_mod
    except ImportError as e:
        raise RuntimeError(f"{path} does not exist and vqalib.eval.predict is not available ({e}); "
                           "write predictions files with vqalib.eval.predictions_file.write_predictions, or update vqalib") from e
    return predict_mod.predict_to_file(path, model=model, data_dir=data_dir, sample_size=sample_size, seed=seed,
                                       split=split, device=device, max_videos=max_videos, schema=schema or None), True


# --------------------------------------------------------------------------- methods over seeds


def _seed_arrays(runs: Mapping[str, Sequence[pd.DataFrame]], readout: str, metrics: Sequence[str], failures: str,
                 schema: RatingSchema | None = None):
    """Aligned arrays for :func:`hierarchical_bootstrap`: dimensions, clip ids, targets ``[D, N]`` and,
    per method and metric, predictions ``[S, D, N]`` (failures filled by the ``all_items`` rule)."""
    frames = [df for seeds in runs.values() for df in seeds]
    dims = [d for d in rating.resolve(schema).keys if all(d in set(df["dimension"]) for df in frames)]
    if not dims:
        raise ValueError("hierarchical_bootstrap: no dimension is present in every predictions frame")

    def wide(df: pd.DataFrame, col: str) -> pd.DataFrame:
        sub = df[df["dimension"].isin(dims)]
        dup = sub.duplicated(["video_id", "dimension"])
        if dup.any():
            r = sub[dup].iloc[0]
            raise ValueError(f"hierarchical_bootstrap: clip {r['video_id']!r} has two rows for {r['dimension']!r}")
        return sub.pivot(index="video_id", columns="dimension", values=col).reindex(columns=dims)

    first = frames[0]
    order = list(dict.fromkeys(first.loc[first["dimension"].isin(dims), "video_id"]))  # the first frame's clip order
    targets = wide(first, "target")
    keep = pd.Index(order)
    for df in frames:
        keep = keep.intersection(wide(df, readout).index, sort=False)
    keep = keep[targets.reindex(keep).notna().all(axis=1).to_numpy()]
    preds = {m: [wide(df, readout).reindex(keep).to_numpy(float).T for df in seeds] for m, seeds in runs.items()}
    if failures == "exclude":  # clips every run answered in every dimension
        ok = np.ones(len(keep), bool)
        for arrs in preds.values():
            for a in arrs:
                ok &= np.isfinite(a).all(axis=0)
        keep = keep[ok]
        preds = {m: [a[:, ok] for a in arrs] for m, arrs in preds.items()}
    y = targets.reindex(keep).to_numpy(float).T  # [D, N]
    out = {m: {k: np.stack([np.stack([_failure_arrays(y[d], a[d], np.isfinite(a[d]), k, schema) for d in range(len(dims))])
                             for a in arrs]) for k in metrics} for m, arrs in preds.items()}
    return dims, list(keep), y, out


def hierarchical_bootstrap(runs: Mapping[str, Sequence[pd.DataFrame]], contrasts: Sequence[tuple[str, str]] = (),
                           readout: str = "parsed_score", metrics: Sequence[str] = ("srcc", "mae"),
                           n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                           failures: str = "all_items", *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """Methods trained with several seeds, compared on the same clips, with a hierarchical bootstrap.

    ``runs``: ``{method: [predictions frame of seed 1, seed 2, ...]}`` (rows of
    :func:`vqalib.eval.predict.predict` on the same held-out clips; a method with one run - the SFT model -
    has a list of one). A method's value of a metric on a dimension is the mean over its seeds of the
    metric on all clips; ``mean`` averages the dimensions. ``contrasts``: pairs ``(a, b)`` whose
    difference ``a - b`` is reported.

    Each of the ``n_boot`` resamples draws (1) the clips with replacement, one draw shared by every
    method, seed and dimension (so differences are paired over clips and the dimensions keep their
    correlation), and (2) for each method its seeds with replacement (independently per method); a
    method's value is the mean over its drawn seeds on the drawn clips. The interval is the percentile
    interval at ``level``. With one seed per method this is the paired clip bootstrap of
    :func:`vqalib.report.training.paired_change` (same generator, same draws: ``numpy.random.default_rng(seed)``
    for the clips, a second stream for the seeds; :func:`vqalib.core.bootstrap.hierarchical_values`); with
    identical runs every difference is exactly 0.

    Clips: those with a target and a row in every frame (``n_clips``); ``failures="all_items"``
    (default) scores a parse failure by the module's rule (:data:`FAILURE_SCORE`; wrong for Acc@0.5),
    ``"exclude"`` keeps only the clips every run parsed in every dimension. Resamples on which a
    metric is undefined (a constant resample) are left out and counted (``n_undefined``); with more
    than half undefined the interval is NaN with the reason. Metric functions: :mod:`vqalib.eval.metrics`.

    Returns one row per (``kind`` = ``method`` | ``difference``, ``name``, ``dimension``, ``metric``):
    ``estimate, ci_low, ci_high, n_clips, n_seeds, n_boot, n_undefined, reason``. ``schema``: the rating
    schema (module docstring; its dimensions, Acc tolerance and failure midpoint)."""

    if failures not in FAILURE_VIEWS:
        raise ValueError(f"failures={failures!r}; choose one of {list(FAILURE_VIEWS)}")
    _check_readout(readout)
    empty = [m for m, seeds in runs.items() if not len(seeds)]
    if empty or not runs:
        raise ValueError(f"hierarchical_bootstrap: method(s) {empty or '(none)'} have no predictions")
    for a, b in contrasts:
        if a not in runs or b not in runs:
            raise ValueError(f"contrast {a} - {b}: no predictions for {[m for m in (a, b) if m not in runs]}")
    metrics = list(metrics)
    schema = schema_of_frames([df for seeds in runs.values() for df in seeds], schema)
    fns = {k: metric_fn(k, acc_tolerance(schema)) for k in metrics}
    dims, clips, y, preds = _seed_arrays(runs, readout, metrics, failures, schema)
    n, labels = len(clips), [*dims, "mean"]

    def per_seed(method: str, k: str, idx: np.ndarray) -> np.ndarray:
        """[S, D + 1]: the metric of every seed on clips ``idx`` per dimension, then the mean over dimensions."""
        p = preds[method][k]
        v = np.array([[fns[k](y[d, idx], p[s, d, idx]).value for d in range(len(dims))] for s in range(len(p))])
        return np.concatenate([v, v.mean(axis=1, keepdims=True)], axis=1)

    def per_seed_all(method: str, idx: np.ndarray) -> np.ndarray:
        """[S, K, D + 1]: :func:`per_seed` of every metric (the core draws the seeds on the first axis)."""
        return np.stack([per_seed(method, k, idx) for k in metrics], axis=1)

    full = np.arange(n)
    point = {m: {k: per_seed(m, k, full).mean(axis=0) for k in metrics} for m in runs}
    seeds_of = {m: len(preds[m][metrics[0]]) for m in runs}
    drawn = hierarchical_values(per_seed_all, n, seeds_of, n_boot if n > 3 else 0, seed)
    boots = {m: {k: v.reshape(-1, len(metrics), len(labels))[:, i] for i, k in enumerate(metrics)} for m, v in drawn.items()}

    def row(kind: str, name: str, k: str, j: int, est: float, samples: np.ndarray, n_seeds: str) -> dict[str, Any]:
        ci = percentile_ci(samples, level)
        lo, hi, reason = ci.low, ci.high, ci.reason
        if not np.isfinite(est):
            lo = hi = np.nan
            reason = "metric undefined on the full data (e.g. a constant prediction)"
        elif len(samples) == 0:
            reason = f"no resamples (n_boot={n_boot}, {n} clips)"
        return {"kind": kind, "name": name, "dimension": labels[j], "metric": k, "estimate": float(est),
                "ci_low": lo, "ci_high": hi, "n_clips": n, "n_seeds": n_seeds, "n_boot": len(samples),
                "n_undefined": ci.n_undefined, "reason": reason}

    rows = []
    for m in runs:
        for k in metrics:
            for j in range(len(labels)):
                rows.append(row("method", m, k, j, point[m][k][j], boots[m][k][:, j], str(len(runs[m]))))
    for a, b in contrasts:
        for k in metrics:
            for j in range(len(labels)):
                rows.append(row("difference", f"{a} − {b}", k, j, point[a][k][j] - point[b][k][j],
                                boots[a][k][:, j] - boots[b][k][:, j], f"{len(runs[a])} vs {len(runs[b])}"))
    out = pd.DataFrame(rows)
    out.attrs["rating_schema"] = schema
    return out
