"""GRPO vs ASO at equal compute (issue 12): what notebook 07 reads from a run folder, and the
numbers its verdicts are written from.

Notebooks 05 and 06 train each method for the same training-clock budget
(``max_train_seconds``, :mod:`vqalib.train.budget`) with several seeds from the same SFT checkpoint,
write the held-out curve of every seed to ``RUN_DIR/05_grpo/tables/curve.csv`` /
``RUN_DIR/06_aso/tables/curve.csv`` and the final held-out predictions to
``RUN_DIR/predictions/<method>.jsonl`` (first seed) and ``<method>_seed<k>.jsonl`` (the others);
each predictions manifest holds the checkpoint's training manifest (config, ``budget`` clock).

- :func:`load_curves`: the curve tables (``None`` when none exists);
- :func:`seed_runs`: the predictions of every seed per method, with a table of the runs (seed, steps,
  training seconds, budget, setup seconds, what stopped it);
- :func:`compare_methods`: :func:`vqalib.eval.tables.hierarchical_bootstrap` over seeds and clips
  for the methods and their differences;
- :func:`summary_table`, :func:`plot_method_curves`, :func:`verdicts`: the table, the figures and the
  sentences of notebook 07, every number taken from those tables (:func:`read_verdicts` gives the numbers and
  decisions as a :class:`Verdicts`, :func:`render_verdicts` the sentences).

The dimensions and their display names are the rating schema's (``schema=``; None: the one the predictions
or the bootstrap frame carry in ``attrs["rating_schema"]``, else the paper's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema

METHODS: tuple[str, ...] = ("sft", "grpo", "aso")
CONTRASTS: tuple[tuple[str, str], ...] = (("aso", "grpo"), ("aso", "sft"), ("grpo", "sft"))
CURVE_NOTEBOOKS: tuple[str, ...] = ("05_grpo", "06_aso")
LABEL = {"sft": "SFT", "grpo": "GRPO", "aso": "ASO"}
_SEED_NAME = re.compile(r"^(?P<method>.+)_seed(?P<seed>\d+)$")


def _schema(frame: pd.DataFrame | None, schema: RatingSchema | str | None = None) -> RatingSchema:
    """``schema``, else the one ``frame`` carries (``attrs["rating_schema"]``), else the paper's."""
    if schema is not None:
        return rating.resolve(schema)
    got = getattr(frame, "attrs", {}).get("rating_schema") if frame is not None else None
    return got if isinstance(got, RatingSchema) else rating.PAPER


def _names(schema: RatingSchema) -> dict[str, str]:
    return dict(zip(schema.keys, schema.names))


def seed_run_name(method: str, seed: int, first_seed: int = 0) -> str:
    """Name of one seed's checkpoint / predictions file: ``method`` for the first seed (what notebook 07's
    tables and notebook 06's paired changes read), ``method_seed<k>`` for the others."""
    return method if seed == first_seed else f"{method}_seed{seed}"


def method_of(name: str) -> str:
    """``"grpo_seed2"`` -> ``"grpo"``; other names unchanged."""
    m = _SEED_NAME.match(name)
    return m.group("method") if m else name


def is_seed_run(name: str) -> bool:
    """True for the extra seeds' predictions (``<method>_seed<k>``), which Table 1 leaves out."""
    return bool(_SEED_NAME.match(name))


def train_seeds(train_fn: Any, cfgs: dict[int, Any]) -> tuple[dict[int, Any], pd.DataFrame, pd.DataFrame]:
    """Train one config per seed with ``train_fn`` (``train_grpo`` / ``train_aso``), in order:
    ``({seed: TrainResult}, clock per seed (seed + ``BudgetCallback.summary``), curve rows of all seeds)``."""
    results = {s: train_fn(c) for s, c in cfgs.items()}
    budgets = pd.DataFrame([{"seed": s, **r.budget} for s, r in results.items()])
    from vqalib.train.budget import CURVE_COLUMNS

    curve = pd.DataFrame([row for r in results.values() for row in r.curve], columns=list(CURVE_COLUMNS))
    return results, budgets, curve


def load_curves(run_dir: str | Path, notebooks: Sequence[str] = CURVE_NOTEBOOKS) -> pd.DataFrame | None:
    """The held-out curves of notebooks 05 and 06 (``RUN_DIR/<notebook>/tables/curve.csv``) in one
    frame, or ``None`` when neither exists (e.g. only notebook 04 ran, or ``EVAL_EVERY_S = 0``)."""
    from vqalib.core.runs import resolve_path

    parts = [pd.read_csv(p) for nb in notebooks if (p := resolve_path(run_dir) / nb / "tables" / "curve.csv").is_file()]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else None


def seed_runs(run_dir: str | Path, methods: Sequence[str] = METHODS) -> tuple[dict[str, list[pd.DataFrame]], pd.DataFrame]:
    """``({method: [predictions of each seed]}, runs)`` from ``RUN_DIR/predictions``: the ``<method>`` and
    ``<method>_seed<k>`` files of each method present. ``runs`` has one row per file: ``method, name,
    seed, steps, train_seconds, max_train_seconds, setup_s, stopped_by, n_clips`` (NaN where the
    checkpoint's manifest does not say, e.g. a run trained before budgets existed)."""
    from vqalib.eval.predictions_file import prediction_files, read_predictions

    preds: dict[str, list[pd.DataFrame]] = {}
    rows = []
    for name, path in prediction_files(run_dir).items():
        method = method_of(name)
        if method not in methods or "@" in name:
            continue
        df, man = read_predictions(path)
        train = man.get("training") or {}
        budget, config = train.get("budget") or {}, train.get("config") or {}
        preds.setdefault(method, []).append(df)
        rows.append({"method": method, "name": name, "seed": config.get("seed", np.nan),
                     "steps": budget.get("steps", np.nan), "train_seconds": budget.get("train_seconds", np.nan),
                     "max_train_seconds": config.get("max_train_seconds", np.nan),
                     "setup_s": budget.get("setup_s", np.nan), "stopped_by": budget.get("stopped_by", ""),
                     "n_clips": int(df["video_id"].nunique())})
    order = [m for m in methods if m in preds]
    runs = pd.DataFrame(rows, columns=["method", "name", "seed", "steps", "train_seconds", "max_train_seconds",
                                       "setup_s", "stopped_by", "n_clips"])
    runs["method"] = pd.Categorical(runs["method"], order, ordered=True)
    return {m: preds[m] for m in order}, runs.sort_values(["method", "seed"]).reset_index(drop=True)


def compare_methods(preds: dict[str, list[pd.DataFrame]], n_boot: int = 1000, seed: int = 0,
                    metrics: Sequence[str] = ("srcc", "mae"), readout: str = "parsed_score",
                    failures: str = "all_items", *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """:func:`vqalib.eval.tables.hierarchical_bootstrap` of the methods present and the differences of
    :data:`CONTRASTS` whose two methods are present (``name`` ``"aso − grpo"`` ...); the result carries the
    rating schema in ``attrs["rating_schema"]``."""
    from vqalib.eval.tables import hierarchical_bootstrap

    contrasts = [(a, b) for a, b in CONTRASTS if a in preds and b in preds]
    return hierarchical_bootstrap(preds, contrasts, readout=readout, metrics=metrics, n_boot=n_boot, seed=seed,
                                  failures=failures, schema=schema)


def _fmt_ci(r) -> str:
    return f"{r.estimate:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" if np.isfinite(r.ci_low) else f"{r.estimate:+.3f} (no CI: {r.reason})"


def summary_table(runs: pd.DataFrame, boot: pd.DataFrame, *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """One row per method: seeds, steps reached (mean, min-max), training seconds, budget, setup
    seconds, then SRCC (per dimension of the rating schema, and mean) and mean MAE as ``value [95 % CI]``
    over seeds and clips."""
    schema = _schema(boot, schema)
    names = _names(schema)
    rows = []
    present = list(dict.fromkeys(str(m) for m in runs["method"]))
    for method in [m for m in METHODS if m in present] + [m for m in present if m not in METHODS]:
        sub = runs[runs["method"].astype(str) == method]
        est = boot[(boot["kind"] == "method") & (boot["name"] == method)].set_index(["metric", "dimension"])
        row = {"method": LABEL.get(method, method), "seeds": ", ".join(str(int(s)) for s in sub["seed"].dropna()),
               "steps": f"{sub['steps'].mean():.0f} ({sub['steps'].min():.0f}–{sub['steps'].max():.0f})"
               if sub["steps"].notna().any() else "",
               "train s": round(float(sub["train_seconds"].mean()), 1),
               "budget s": float(sub["max_train_seconds"].iloc[0]) if sub["max_train_seconds"].notna().any() else np.nan,
               "setup s": round(float(sub["setup_s"].mean()), 1)}
        for dim in [*schema.keys, "mean"]:
            if ("srcc", dim) in est.index:
                row[f"SRCC {names.get(dim, dim)}"] = _fmt_ci(est.loc[("srcc", dim)])
        if ("mae", "mean") in est.index:
            row["MAE mean"] = _fmt_ci(est.loc[("mae", "mean")])
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def curve_wide(curve: pd.DataFrame, metric: str, x: str, *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """The long curve rows as one column per dimension (display names of the rating schema, plus ``mean``)
    of ``metric``, indexed by ``method`` (display name), ``seed`` and ``x`` (``at_seconds`` or ``step``)."""
    names = _names(_schema(curve, schema))
    c = curve.assign(method=curve["method"].map(lambda m: LABEL.get(m, m)),
                     dimension=curve["dimension"].map(lambda d: names.get(d, d)))
    wide = c.pivot_table(index=["method", "seed", x], columns="dimension", values=metric, aggfunc="first").reset_index()
    wide.columns.name = None
    return wide


def _clip_counts(curve: pd.DataFrame) -> list[int]:
    """The distinct held-out clip counts of a curve's points, ascending (empty without ``n_clips``)."""
    return sorted({int(v) for v in curve["n_clips"].dropna()}) if "n_clips" in curve else []


def plot_method_curves(curve: pd.DataFrame, x: str = "at_seconds", *, schema: RatingSchema | str | None = None):
    """Held-out SRCC per dimension and its mean, and mean MAE, against ``x`` with ``hue`` = method.

    ``x="at_seconds"`` (the scheduled evaluation time in training seconds, shared by the seeds): the
    line is the mean over seeds and the band their range (min-max); ``x="step"`` (the optimisation step
    an evaluation happened at, which differs between seeds): one line per seed. The SRCC panels share one
    y-range; the MAE panel has its own."""
    from vqalib.report.training import plot_curves

    schema = _schema(curve, schema)
    srcc = curve_wide(curve, "srcc", x, schema=schema)
    mae = curve_wide(curve, "mae", x, schema=schema)[["method", "seed", x, "mean"]].rename(columns={"mean": "MAE (mean)"})
    frame = srcc.merge(mae, on=["method", "seed", x]).rename(columns={"mean": "SRCC (mean)"})
    keys = [schema.name_of(d) for d in schema.keys] + ["SRCC (mean)", "MAE (mean)"]
    order = [LABEL[m] for m in ("grpo", "aso", "sft") if LABEL[m] in set(frame["method"])]
    ylabel = {k: "held-out SRCC" for k in keys} | {"MAE (mean)": f"MAE, {schema.lo:g}-{schema.hi:g} score scale (own y-range)"}
    n = _clip_counts(curve)
    clips = f"{n[0]} held-out clips per point" if len(n) == 1 else f"{n[0]}-{n[-1]} held-out clips per point" if n else ""
    if x == "step":
        fig = plot_curves(frame, keys, "Held-out SRCC per dimension (and MAE) against the optimisation step, one line "
                          f"per seed; {clips}; SRCC panels share one y-axis", x="step", hue="method", units="seed",
                          col_wrap=4, hue_order=order, xlabel="optimisation step", ylabel=ylabel)
    else:
        fig = plot_curves(frame, keys, "Held-out SRCC per dimension (and MAE) against training seconds "
                                       f"(line: mean over seeds, band: range); {clips}; SRCC panels share one y-axis",
                          x=x, hue="method", errorbar=("pi", 100), col_wrap=4, hue_order=order,
                          xlabel="training seconds (evaluation excluded)", ylabel=ylabel)
    # one y-range for every SRCC panel, so a dimension's change reads at the same scale as the others'
    srcc_axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title() in keys[:-1]]
    if srcc_axes:
        lo = min(ax.get_ylim()[0] for ax in srcc_axes)
        hi = max(ax.get_ylim()[1] for ax in srcc_axes)
        for ax in srcc_axes:
            ax.set_ylim(lo, hi)
    return fig


def contains_zero(r) -> bool:
    """True when the interval of row ``r`` contains 0 (or is undefined)."""
    return not (np.isfinite(r.ci_low) and np.isfinite(r.ci_high)) or r.ci_low <= 0 <= r.ci_high


#: A budgeted run whose training clock passed this many times its budget was not run at comparable speed
#: (the budget stops at a step end, so one step took a large share of it): the verdict says so.
OVERRUN: float = 1.25
#: A budgeted run with fewer optimisation steps than this barely left its SFT checkpoint (the first
#: warm-up step has learning rate 0): the verdict says it is not a trained method.
MIN_STEPS: int = 5


@dataclass(frozen=True)
class Interval:
    """One row of :func:`compare_methods`: a value and its interval (NaN, with ``reason``, when undefined)."""

    estimate: float
    ci_low: float
    ci_high: float
    reason: str | None = None

    @classmethod
    def of(cls, r) -> "Interval":
        return cls(float(r.estimate), float(r.ci_low), float(r.ci_high), r.reason)

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.ci_low))

    @property
    def excludes_zero(self) -> bool:
        return not contains_zero(self)


@dataclass(frozen=True)
class MethodRuns:
    """The budgeted seeds of one method (GRPO or ASO): how many, the steps and training seconds they reached."""

    method: str
    n_seeds: int
    steps: tuple[float, float]  # min, max
    train_seconds: tuple[float, float]  # min, max
    setup_s: float  # mean


@dataclass(frozen=True)
class SlowRun:
    """A budgeted run whose clock passed :data:`OVERRUN` x its budget, or that took fewer than :data:`MIN_STEPS` steps."""

    name: str
    steps: float
    train_seconds: float
    max_train_seconds: float


@dataclass(frozen=True)
class CurveStart:
    """Where the held-out curves start (step 0 = the SFT checkpoint): mean SRCC range, the curves' clip counts,
    and the SFT row's mean SRCC on the full split when it is named beside them (the counts differ)."""

    srcc: tuple[float, float]  # min, max over the curves
    n_clips: list[int]
    sft_full_split: float | None


@dataclass(frozen=True)
class ContrastVerdict:
    """One difference ``a − b`` (display labels): the mean-SRCC and mean-MAE intervals and what they decide."""

    a: str
    b: str
    srcc: Interval  # mean SRCC difference
    mae: Interval | None  # mean MAE difference (None when MAE was not computed)
    ranks_better: str | None  # a or b when the mean-SRCC interval excludes 0
    closer_scores: str | None  # a or b when the mean-MAE interval excludes 0 (lower MAE)
    dimensions: list[tuple[str, Interval]]  # per-dimension SRCC intervals that exclude 0


@dataclass(frozen=True)
class Verdicts:
    """Every number and decision of notebook 07's GRPO-vs-ASO verdicts (:func:`read_verdicts`); the sentences
    are :func:`render_verdicts`' job.

    ``verdict``: ``"none"`` (a warning above: the runs are not comparable), ``"no_difference"`` (no interval
    excludes 0), ``"no_difference_but_dimensions"`` (only per-dimension SRCC intervals do, ``n_dimensions_excluding``
    of ``n_dimension_intervals``), ``"only_those_named"`` (a mean interval excludes 0) or ``""`` (no contrast)."""

    level: float
    budgets: list[float]  # the distinct max_train_seconds of the GRPO and ASO runs
    equal_budget: bool  # one shared budget > 0
    methods: list[MethodRuns]
    overruns: list[SlowRun]
    too_few_steps: list[SlowRun]
    n_clips: int
    n_boot: int
    curve_start: CurveStart | None
    contrasts: list[ContrastVerdict]
    n_dimensions_excluding: int  # per-dimension SRCC difference intervals that exclude 0
    n_dimension_intervals: int  # per-dimension SRCC difference intervals that are defined
    reach: float  # max |bound| of the mean-SRCC difference intervals
    verdict: str
    #: display name per dimension key of the rating schema (the paper's when empty)
    dimension_names: dict[str, str] = field(default_factory=dict)


def _method_runs(rl: pd.DataFrame) -> list[MethodRuns]:
    return [MethodRuns(m, len(s), (s["steps"].min(), s["steps"].max()),
                       (s["train_seconds"].min(), s["train_seconds"].max()), s["setup_s"].mean())
            for m, s in rl.groupby("method", observed=True)]


def _slow(rows: pd.DataFrame) -> list[SlowRun]:
    return [SlowRun(r.name, r.steps, r.train_seconds, r.max_train_seconds) for r in rows.itertuples()]


def _curve_start(curve: pd.DataFrame | None, boot: pd.DataFrame, n_clips: int) -> CurveStart | None:
    if curve is None or not len(curve):
        return None
    at0 = curve[(curve["step"] == 0) & (curve["dimension"] == "mean")]
    if not len(at0):
        return None
    n0 = _clip_counts(at0)
    sft = boot[(boot["kind"] == "method") & (boot["name"] == "sft") & (boot["metric"] == "srcc")
               & (boot["dimension"] == "mean")]
    full = sft["estimate"].iloc[0] if n0 and len(sft) and n0[-1] != n_clips else None
    return CurveStart((at0["srcc"].min(), at0["srcc"].max()), n0, full)


def _contrast(name: str, d: pd.DataFrame) -> ContrastVerdict:
    a, b = (LABEL.get(x.strip(), x.strip()) for x in name.split("−"))
    s = Interval.of(d[(d["metric"] == "srcc") & (d["dimension"] == "mean")].iloc[0])
    m = d[(d["metric"] == "mae") & (d["dimension"] == "mean")]
    m = Interval.of(m.iloc[0]) if len(m) else None
    dims = [(r.dimension, Interval.of(r)) for r in d[(d["metric"] == "srcc") & (d["dimension"] != "mean")].itertuples()
            if not contains_zero(r)]
    return ContrastVerdict(a, b, s, m, ranks_better=(a if s.estimate > 0 else b) if s.defined and s.excludes_zero else None,
                           closer_scores=(b if m.estimate > 0 else a) if m is not None and m.defined and m.excludes_zero
                           else None, dimensions=dims)


def read_verdicts(runs: pd.DataFrame, boot: pd.DataFrame, curve: pd.DataFrame | None, level: float = 0.95, *,
                  schema: RatingSchema | str | None = None) -> Verdicts:
    """The numbers and decisions of the comparison, read from ``runs`` (:func:`seed_runs`), ``boot``
    (:func:`compare_methods`) and ``curve`` (:func:`load_curves`): the budgets, seeds, steps and clips; per
    contrast the mean SRCC and mean MAE differences with their intervals, the dimensions whose SRCC interval
    excludes 0, and whether the mean-MAE interval does. An interval containing 0 shows no detectable
    difference; the verdict is "no detectable difference" only when no mean-SRCC and no mean-MAE interval
    excludes 0; a run whose clock passed ``OVERRUN`` times its budget, or with fewer than ``MIN_STEPS``
    steps, makes the runs not comparable (verdict ``"none"``)."""
    rl = runs[runs["method"].isin(["grpo", "aso"])]
    budgets = sorted({float(b) for b in rl["max_train_seconds"].dropna()})
    n_clips = int(boot["n_clips"].iloc[0]) if len(boot) else 0
    over = rl[rl["train_seconds"] > OVERRUN * rl["max_train_seconds"].where(rl["max_train_seconds"] > 0)]
    few = rl[(rl["max_train_seconds"] > 0) & (rl["steps"] < MIN_STEPS)]
    diffs = boot[boot["kind"] == "difference"]
    contrasts = [_contrast(name, diffs[diffs["name"] == name]) for name in diffs["name"].unique()]
    per_dim = diffs[(diffs["metric"] == "srcc") & (diffs["dimension"] != "mean")]
    per_dim = per_dim[np.isfinite(per_dim["ci_low"])]
    n_sig = sum(not contains_zero(r) for r in per_dim.itertuples())
    mean_srcc = diffs[(diffs["metric"] == "srcc") & (diffs["dimension"] == "mean")]
    # how far the mean-SRCC intervals reach from 0: differences up to that size are compatible with the data
    reach = float(mean_srcc[["ci_low", "ci_high"]].abs().to_numpy().max()) if len(mean_srcc) else float("nan")
    null_all = all(c.ranks_better is None and c.closer_scores is None for c in contrasts)
    if len(few) or len(over):
        verdict = "none"
    elif contrasts and null_all:
        verdict = "no_difference_but_dimensions" if n_sig else "no_difference"
    else:
        verdict = "only_those_named" if contrasts else ""
    return Verdicts(level, budgets, len(budgets) == 1 and budgets[0] > 0, _method_runs(rl), _slow(over), _slow(few),
                    n_clips, int(boot["n_boot"].max()) if len(boot) else 0, _curve_start(curve, boot, n_clips),
                    contrasts, n_sig, len(per_dim), reach, verdict, _names(_schema(boot, schema)))


def verdicts(runs: pd.DataFrame, boot: pd.DataFrame, curve: pd.DataFrame | None, level: float = 0.95, *,
             schema: RatingSchema | str | None = None) -> str:
    """The comparison in sentences (Markdown): :func:`render_verdicts` of :func:`read_verdicts`."""
    return render_verdicts(read_verdicts(runs, boot, curve, level, schema=schema))


def render_verdicts(v: Verdicts) -> str:
    """The sentences of :class:`Verdicts` (Markdown paragraphs): budget, warnings, clips and intervals, the
    curves' start, one paragraph per contrast, the verdict. An interval containing 0 is said to show no
    detectable difference (with the largest difference it does not rule out)."""
    lines = [_budget_text(v), *_warning_texts(v),
             f"Held-out clips: {v.n_clips}; intervals: {v.level:.0%} hierarchical bootstrap ({v.n_boot} resamples; seeds "
             "and clips resampled, clips shared by the methods); a parse failure is scored as the scale midpoint."]
    if v.curve_start is not None:
        lines.append(_curve_text(v.curve_start, v.n_clips))
    lines += [_contrast_text(c, v.dimension_names or _names(rating.PAPER)) for c in v.contrasts]
    if v.verdict:
        lines.append(_verdict_text(v))
    return "\n\n".join(lines)


def _budget_text(v: Verdicts) -> str:
    per = "; ".join(f"{LABEL[g.method]}: {g.n_seeds} seed(s), {g.steps[0]:.0f}–{g.steps[1]:.0f} steps in "
                    f"{g.train_seconds[0]:.1f}–{g.train_seconds[1]:.1f} training s (setup {g.setup_s:.1f} s)"
                    for g in v.methods)
    if v.equal_budget:
        return (f"**Budget.** Each seed of GRPO and ASO trained for {v.budgets[0]:g} s of training clock from the same "
                f"SFT checkpoint (evaluation and setup excluded; setup includes ASO's π_ref precompute). {per}.")
    return (f"**Budget.** The GRPO and ASO runs do not share one time budget (max_train_seconds: "
            f"{v.budgets or 'none'}), so this is **not** an equal-compute comparison. {per}.")


def _warning_texts(v: Verdicts) -> list[str]:
    out = []
    if v.overruns:  # one step took a large share of the budget: the machine was busy, or a step is slow
        out.append("**Warning: the clock was not comparable.** " + "; ".join(
            f"{r.name} ran {r.train_seconds:.1f} training s on a {r.max_train_seconds:g} s budget ({r.steps:.0f} steps)"
            for r in v.overruns) + f" (more than {OVERRUN:g}× the budget: a step took a large share of it, "
            "e.g. on a busy machine). Rerun on an idle machine before reading the differences below as equal-compute.")
    if v.too_few_steps:
        out.append("**Warning: too few steps to compare.** " + "; ".join(
            f"{r.name} took {r.steps:.0f} step(s) in its {r.max_train_seconds:g} s" for r in v.too_few_steps)
            + f" (fewer than {MIN_STEPS}; the first warm-up step has learning rate 0, so such a run is close to "
            "the SFT checkpoint itself). The differences below do not compare trained methods; rerun on an idle "
            "machine or with a larger BUDGET_S.")
    return out


def _curve_text(c: CurveStart, n_clips: int) -> str:
    n0, (lo, hi) = c.n_clips, c.srcc
    on = (f" on the curves' {n0[0]} held-out clips (the first {n0[0]} of the split)" if len(n0) == 1 else
          f" on the curves' {n0[0]}-{n0[-1]} held-out clips" if n0 else "")
    table = f"; the SFT row above, on all {n_clips} clips, has {c.sft_full_split:.3f}" if c.sft_full_split is not None else ""
    return (f"At step 0 (the SFT checkpoint) every curve starts from mean SRCC {lo:.3f}"
            + (f"–{hi:.3f}" if hi - lo > 1e-9 else "") + on + table
            + (". The curves show each method's course on that subset (per dimension it can sit several "
               "hundredths from the full split); the comparison is the table and the intervals below."
               if table else "."))


def _contrast_text(c: ContrastVerdict, names: dict[str, str] | None = None) -> str:
    names = names or _names(rating.PAPER)
    a, b, s, m = c.a, c.b, c.srcc, c.mae
    text = f"**{a} − {b}**: mean SRCC {_fmt_ci(s)}"
    if m is not None:
        text += f", mean MAE {_fmt_ci(m)} (lower is better)"
    if not s.defined:
        text += f". The mean SRCC difference has no interval ({s.reason}): no verdict on it"
    elif c.ranks_better is None:
        text += (f". The mean-SRCC interval contains 0: this run detects no difference in ranking between {a} and {b} "
                 f"(differences from {s.ci_low:+.3f} to {s.ci_high:+.3f} are not ruled out)")
    else:
        text += f". The mean-SRCC interval excludes 0: {c.ranks_better} ranks the clips better"
    text += ("; per dimension, the SRCC interval excludes 0 for " + ", ".join(
        f"{names.get(dim, dim)} ({r.estimate:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}])" for dim, r in c.dimensions)
        if c.dimensions else "; no dimension's SRCC interval excludes 0") + "."
    if m is not None and m.defined:
        if c.closer_scores is None:
            text += " The mean-MAE interval contains 0."
        else:
            text += (f" The mean-MAE interval excludes 0: {c.closer_scores}'s scores are closer to the MOS "
                     "on average (a difference in calibration, not necessarily in ranking).")
    return text


def _verdict_text(v: Verdicts) -> str:
    k, n, level = v.n_dimensions_excluding, v.n_dimension_intervals, v.level
    if v.verdict == "none":
        return "**Verdict:** none: see the warning(s) above; the runs named there are not comparable."
    if v.verdict == "no_difference_but_dimensions":
        return (f"**Verdict:** no mean-SRCC or mean-MAE interval excludes 0; {k} of the {n} "
                f"per-dimension SRCC intervals do (named above), where {1 - level:.0%} of {n}, about "
                f"{(1 - level) * n:.2g}, would by chance alone: at this budget, with these seeds and "
                "clips, the tiny setting shows no detectable difference between the methods (the mean-SRCC "
                f"intervals reach ±{v.reach:.3f}: differences that large are not ruled out); a per-dimension one is "
                "a lead to rerun with more seeds (SEEDS), not a result.")
    if v.verdict == "no_difference":
        return ("**Verdict:** no mean-SRCC or mean-MAE interval excludes 0, nor any per-dimension SRCC interval; "
                "at this budget, with these seeds and clips, the tiny setting shows no detectable difference between "
                f"the methods (the mean-SRCC intervals reach ±{v.reach:.3f}: differences that large are not ruled out).")
    return ("**Verdict:** only the differences whose interval excludes 0 above are supported by this run; "
            "with this many intervals, one excluding 0 by chance is to be expected, so a single one is a lead "
            "to rerun with more seeds (SEEDS), not a result.")


# ------------------------------------------------------------------------ the two views (issue 20)

#: Labels of the two readouts every method is reported under (issue 20): what a user reads, and the score
#: distribution read by teacher-forcing (after the model's own answer text, ``expected_score``).
VIEW_LABEL = {"parsed_score": "generated (parsed answer)", "expected_score": "teacher-forced (expected score)"}


def own_keyword_levels(text: str, *, schema: RatingSchema | str | None = None) -> list[float | None]:
    """Per dimension (the rating schema's order; the paper's ``DIMENSION_KEYS``), the level named by the last
    evaluation keyword (the schema's level keywords: Abysmal … Perfect for the paper) on a rationale line that
    names the dimension (score lines themselves skipped); ``None`` if none."""
    schema = rating.resolve(schema)
    level_of = {w.lower(): float(v) for v, w in zip(schema.values, schema.keywords)}
    kw = re.compile(r"\b(" + "|".join(re.escape(w) for w in schema.keywords) + r")\b", re.IGNORECASE)
    lines = str(text or "").split("\n")
    out: list[float | None] = []
    for name in schema.names:
        found = None
        for line in lines:
            if name.lower() in line.lower() and not re.match(rf"\s*{re.escape(name)}\s*[:=]\s*\d", line, re.IGNORECASE):
                hits = kw.findall(line)
                if hits:
                    found = level_of[hits[-1].lower()]
        out.append(found)
    return out


def answer_views(preds: dict[str, list[pd.DataFrame]], n_boot: int = 1000, seed: int = 0, *,
                 schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """One row per method: mean SRCC of the **generated** answers (``parsed_score``) and of the
    **teacher-forced** readout (``expected_score``), each ``value [95 % CI]`` over seeds and clips
    (:func:`compare_methods`), the parse rate, and, among parsed items whose answer names the dimension
    with a keyword, the share whose parsed score equals that keyword's level ("score = its own keyword")."""
    from vqalib.eval.predictions_file import schema_of_frames

    schema = schema_of_frames([df for frames in preds.values() for df in frames], schema)
    views = {r: compare_methods(preds, n_boot=n_boot, seed=seed, metrics=("srcc",), readout=r, schema=schema)
             for r in VIEW_LABEL}
    rows = []
    for method, frames in preds.items():
        df = pd.concat(frames, ignore_index=True)
        row: dict[str, Any] = {"method": LABEL.get(method, method)}
        for r, boot in views.items():
            est = boot[(boot["kind"] == "method") & (boot["name"] == method) & (boot["metric"] == "srcc")
                       & (boot["dimension"] == "mean")]
            row[f"SRCC mean, {VIEW_LABEL[r]}"] = _fmt_ci(est.iloc[0]) if len(est) else "n/a"
        row["parse rate"] = float((df["parse_status"] == "ok").mean())
        agree = n = 0
        dim_index = {k: i for i, k in enumerate(schema.keys)}
        for text, dim, parsed in zip(df["raw_text"], df["dimension"], df["parsed_score"]):
            if parsed is None or not np.isfinite(parsed):
                continue
            lv = own_keyword_levels(text, schema=schema)[dim_index[dim]]
            if lv is not None:
                n += 1
                agree += int(float(parsed) == lv)
        row["score = its own keyword"] = agree / n if n else float("nan")
        row["items with a keyword"] = n
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")
