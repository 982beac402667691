"""Per-dimension metrics of the paper's Table 1 and more, with NaN-with-a-reason for undefined cases.

Every metric returns a :class:`MetricResult` (``value``, ``reason``): ``reason`` is ``None`` when
the value is defined and says why it is NaN otherwise (fewer than 3 items, a constant prediction,
non-finite inputs (NaN or +-inf alike), a logistic fit that failed). Nothing crashes and nothing is silently 0.

Metrics (``y`` = human score, ``p`` = prediction, both on the rating schema's scale (1-5 for the
paper, :mod:`vqalib.schema.rating`), ``n`` items):

- ``acc``: Acc@0.5 = mean(|p - y| <= 0.5) (paper, Table 1).  Defined for n >= 1.  On another
  schema's grid the tolerance is half its step (:func:`acc_tolerance`: 0.5 on integer grids such as
  1..10 or Q-Align's five words, so "the right integer"), named in the label (:func:`acc_label`); the
  paper's nine-level grid keeps the paper's 0.5.
- ``mae`` = mean|p - y|, ``rmse`` = sqrt(mean (p - y)^2).  Defined for n >= 1.
- ``srcc``: Spearman rank correlation; ``krcc``: Kendall tau-b; ``plcc``: Pearson correlation of
  the raw predictions.  Need n >= 3 and neither side constant.
- ``plcc_fit``: PLCC after the 4-parameter logistic map common in VQA (VQEG, as in FAST-VQA /
  DOVER / Q-Align evaluation code)::

      f(p) = b2 + (b1 - b2) / (1 + exp(-(p - b3) / |b4|))

  fitted by least squares of f(p) against y (``scipy.optimize.curve_fit``, initial
  ``b1 = max y, b2 = min y, b3 = mean p, b4 = std p``), then ``PLCC(f(p), y)``.  Needs n >= 5
  (four parameters).  Fallback when the fit fails (no convergence, non-finite parameters or a
  constant fitted curve): NaN with the reason; the raw ``plcc`` is still reported beside it.
  Never replaced by the raw value.

The raw scale: a dimension whose ratings came on another scale (``raw_range``, e.g. LIVE-VQC's 0-100,
or DMOS) is also scored with targets and predictions mapped back (``schema.to_raw``,
:func:`dimension_metrics`): MAE and RMSE scale by ``raw span / schema span`` (x 25 for 0-100 on 1-5),
the Acc tolerance with them, rank and linear correlations are unchanged (a DMOS flip turns both sides).

Bootstrap CIs (:func:`bootstrap_ci`) resample items with replacement (seeded), percentile interval
(:mod:`vqalib.core.bootstrap`).
Calibration (:func:`calibration`) uses the saved K-level distributions (9 for the paper): confidence = max level
probability, correct = argmax level equals the (grid) target level; expected calibration error
``ECE = sum_b n_b/n |acc_b - conf_b|`` over equal-width confidence bins, with the reliability
diagram data, the negative log-likelihood of the target level and the Brier score. The readouts of a
distribution (expected score, argmax level) are :mod:`vqalib.method.readout`'s.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from vqalib.core.bootstrap import BootstrapCI, bootstrap_values, percentile_ci
from vqalib.method.readout import check_distributions
from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema

NAN = float("nan")

#: Metric names in table order, with display labels.
METRIC_LABELS: dict[str, str] = {
    "acc": "Acc@0.5",
    "mae": "MAE",
    "rmse": "RMSE",
    "srcc": "SRCC",
    "krcc": "KRCC",
    "plcc": "PLCC",
    "plcc_fit": "PLCC (logistic)",
}


@dataclass(frozen=True)
class MetricResult:
    """A metric value and, when it is NaN, the reason why."""

    value: float
    reason: str | None = None

    def __float__(self) -> float:
        return float(self.value)

    @property
    def defined(self) -> bool:
        return self.reason is None and math.isfinite(self.value)

    @staticmethod
    def undefined(reason: str) -> "MetricResult":
        return MetricResult(NAN, reason)


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Float arrays plus the reason they cannot be scored (None if fine)."""
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"targets ({y.size}) and predictions ({p.size}) differ in length")
    if y.size == 0:
        return y, p, "no items"
    parts = [_non_finite(p, "prediction"), _non_finite(y, "target")]
    parts = [x for x in parts if x]
    if parts:
        return y, p, " and ".join(parts) + " of " + str(y.size) + "; drop them explicitly and report the count"
    return y, p, None


def _non_finite(a: np.ndarray, what: str) -> str | None:
    """``"2 non-finite prediction(s) (1 NaN, 1 inf)"``, or None when all values are finite.

    NaN and +-inf are treated alike: a metric over them is undefined (never inf, never a rank)."""
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if not n_nan and not n_inf:
        return None
    if not n_inf:
        return f"{n_nan} NaN {what}(s)"
    kinds = ", ".join(x for x in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if x)
    return f"{n_nan + n_inf} non-finite {what}(s) ({kinds})"


def _corr_precheck(y: np.ndarray, p: np.ndarray, min_n: int = 3) -> str | None:
    if y.size < min_n:
        return f"fewer than {min_n} items (n={y.size})"
    if np.ptp(p) == 0:
        return f"prediction is constant ({p[0]:g} for all {p.size} items)"
    if np.ptp(y) == 0:
        return f"targets are constant ({y[0]:g} for all {y.size} items)"
    return None


def acc_at(y, p, tol: float = 0.5) -> MetricResult:
    """Acc@tol: share of items with ``|p - y| <= tol`` (paper: tol = 0.5). Float slack 1e-9."""
    y, p, why = _arrays(y, p)
    if why:
        return MetricResult.undefined(why)
    return MetricResult(float(np.mean(np.abs(p - y) <= tol + 1e-9)))


def mae(y, p) -> MetricResult:
    """Mean absolute error."""
    y, p, why = _arrays(y, p)
    return MetricResult.undefined(why) if why else MetricResult(float(np.mean(np.abs(p - y))))


def rmse(y, p) -> MetricResult:
    """Root mean squared error."""
    y, p, why = _arrays(y, p)
    return MetricResult.undefined(why) if why else MetricResult(float(np.sqrt(np.mean((p - y) ** 2))))


def srcc(y, p) -> MetricResult:
    """Spearman rank-order correlation (ties get average ranks)."""
    from scipy.stats import spearmanr

    y, p, why = _arrays(y, p)
    why = why or _corr_precheck(y, p)
    return MetricResult.undefined(why) if why else MetricResult(float(spearmanr(y, p).statistic))


def krcc(y, p) -> MetricResult:
    """Kendall rank correlation, tau-b (accounts for ties, which the 9-level grid makes common)."""
    from scipy.stats import kendalltau

    y, p, why = _arrays(y, p)
    why = why or _corr_precheck(y, p)
    return MetricResult.undefined(why) if why else MetricResult(float(kendalltau(y, p).statistic))


def plcc(y, p) -> MetricResult:
    """Pearson linear correlation of the raw predictions."""
    from scipy.stats import pearsonr

    y, p, why = _arrays(y, p)
    why = why or _corr_precheck(y, p)
    return MetricResult.undefined(why) if why else MetricResult(float(pearsonr(y, p).statistic))


def logistic4(x, b1: float, b2: float, b3: float, b4: float):
    """The 4-parameter logistic ``b2 + (b1 - b2) / (1 + exp(-(x - b3) / |b4|))``."""
    z = -(np.asarray(x, dtype=float) - b3) / max(abs(b4), 1e-12)
    return b2 + (b1 - b2) / (1.0 + np.exp(np.clip(z, -500, 500)))


def fit_logistic4(y, p, maxfev: int = 20000) -> tuple[np.ndarray | None, str | None]:
    """Fit :func:`logistic4` mapping predictions ``p`` to targets ``y``: ``(params, None)`` or ``(None, reason)``.

    ``maxfev`` bounds the function evaluations of ``curve_fit``; hitting it counts as a failed fit.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    y, p, why = _arrays(y, p)
    why = why or _corr_precheck(y, p, min_n=5)
    if why:
        return None, why
    p0 = [float(np.max(y)), float(np.min(y)), float(np.mean(p)), float(np.std(p)) or 1.0]
    try:
        # curve_fit warns "Covariance of the parameters could not be estimated" when the fit is exact
        # (zero residuals): that is the best possible fit, not a failed one, so only the parameters
        # are checked (finite, non-flat output); a fit that does not converge raises RuntimeError
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic4, p, y, p0=p0, maxfev=maxfev)
    except (RuntimeError, ValueError, FloatingPointError) as e:
        return None, f"4-parameter logistic fit failed ({type(e).__name__}: {str(e).splitlines()[0][:120]}); see raw PLCC"
    if not np.all(np.isfinite(params)):
        return None, "4-parameter logistic fit gave non-finite parameters; see raw PLCC"
    return params, None


def plcc_fitted(y, p, maxfev: int = 20000) -> MetricResult:
    """PLCC between ``logistic4(p)`` (fitted to ``y``) and ``y``; NaN with the reason when the fit fails."""
    from scipy.stats import pearsonr

    params, why = fit_logistic4(y, p, maxfev=maxfev)
    if why:
        return MetricResult.undefined(why)
    y, p, _ = _arrays(y, p)
    fitted = logistic4(p, *params)
    if np.ptp(fitted) < 1e-12:
        return MetricResult.undefined("4-parameter logistic fit is flat (constant output); see raw PLCC")
    return MetricResult(float(pearsonr(fitted, y).statistic))


METRICS: dict[str, Callable[..., MetricResult]] = {
    "acc": acc_at,
    "mae": mae,
    "rmse": rmse,
    "srcc": srcc,
    "krcc": krcc,
    "plcc": plcc,
    "plcc_fit": plcc_fitted,
}


#: The paper's Acc tolerance (Table 1's Acc@0.5, one level of its nine-level grid).
PAPER_TOLERANCE = 0.5


def acc_tolerance(schema: RatingSchema | str | None = None) -> float:
    """The Acc tolerance on the rating ``schema``'s scale: the paper's 0.5 on the paper's nine-level grid
    (``paper``, ``mos9``), else half the step between levels (half the smallest gap on an uneven grid):
    0.5 on an integer grid (1..10, Q-Align's words 1..5), so Acc is the share whose prediction rounds to
    the human level."""
    schema = rating.resolve(schema)
    if schema.values == rating.PAPER.values:
        return PAPER_TOLERANCE
    return float(np.min(np.diff(schema.levels))) / 2


def acc_label(tolerance: float) -> str:
    """``Acc@0.5``: the display label of Acc at ``tolerance``."""
    return f"Acc@{tolerance:g}"


def raw_factor(schema: RatingSchema | str | None = None, dimension: str | None = None) -> float | None:
    """``raw span / schema span`` of a dimension with a ``raw_range`` (what MAE, RMSE and the Acc
    tolerance are multiplied by on the raw scale), else ``None``."""
    schema = rating.resolve(schema)
    d = schema.dimension(dimension) if dimension is not None else schema.dimensions[0]
    if d.raw_range is None:
        return None
    return (d.raw_range[1] - d.raw_range[0]) / schema.span


def metric_fn(name: str, tolerance: float | None = None) -> Callable[..., MetricResult]:
    """The metric function ``name``; ``acc`` at ``tolerance`` (None: the paper's 0.5)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric(s) {[name]}; choose from {list(METRICS)}")
    if name == "acc" and tolerance is not None:
        def acc(y, p) -> MetricResult:
            return acc_at(y, p, tol=tolerance)

        return acc
    return METRICS[name]


def score_metrics(y, p, names: tuple[str, ...] | list[str] | None = None, *,
                  tolerance: float | None = None) -> dict[str, MetricResult]:
    """All (or the named) metrics of one dimension: ``{name: MetricResult}``; ``tolerance``: Acc's
    (None: the paper's 0.5; :func:`acc_tolerance` gives a schema's)."""
    names = list(names or METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    return {n: metric_fn(n, tolerance)(y, p) for n in names}


def to_raw_scale(y, p, schema: RatingSchema | str | None = None, dimension: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Targets and predictions of ``dimension`` mapped back onto its raw scale (``schema.to_raw``), or
    ``None`` when the dimension has no ``raw_range``."""
    schema = rating.resolve(schema)
    key = schema.key_of(dimension) if dimension is not None else schema.keys[0]
    if schema.dimension(key).raw_range is None:
        return None
    y = np.atleast_1d(np.asarray(y, dtype=float))
    p = np.atleast_1d(np.asarray(p, dtype=float))
    return np.atleast_1d(schema.to_raw(y, key)), np.atleast_1d(schema.to_raw(p, key))


def dimension_metrics(y, p, *, schema: RatingSchema | str | None = None, dimension: str | None = None,
                      names: tuple[str, ...] | list[str] | None = None) -> dict[str, dict[str, MetricResult]]:
    """The metrics of one dimension on the schema's scale (``"schema"``) and, when the dimension has a
    ``raw_range``, on the raw scale (``"raw"``): ``{scale: {name: MetricResult}}``. Acc uses
    :func:`acc_tolerance` on the schema's scale and that tolerance times :func:`raw_factor` on the raw
    scale (the same items count as hits). ``dimension`` may be omitted for a one-dimension schema."""
    schema = rating.resolve(schema)
    tol = acc_tolerance(schema)
    out = {"schema": score_metrics(y, p, names, tolerance=tol)}
    raw = to_raw_scale(y, p, schema, dimension)
    if raw is not None:
        out["raw"] = score_metrics(*raw, names, tolerance=tol * raw_factor(schema, dimension))
    return out


def bootstrap_ci(metric: str | Callable[..., MetricResult], y, p, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> BootstrapCI:
    """Percentile bootstrap CI: resample the ``n`` items with replacement ``n_boot`` times (seeded).

    Resamples on which the metric is undefined are counted in ``n_undefined`` and left out; when
    more than half are undefined, or the metric is undefined on the full data, the CI is NaN with a reason
    (:func:`vqalib.core.bootstrap.percentile_ci`; ``n_boot=0``: NaN, "no resamples").
    """
    fn = METRICS[metric] if isinstance(metric, str) else metric
    y, p, why = _arrays(y, p)
    full = fn(y, p)
    if why or not full.defined:
        return BootstrapCI(NAN, NAN, n_boot, n_boot, why or full.reason)

    def stat(idx: np.ndarray) -> float:
        r = fn(y[idx], p[idx])
        return r.value if r.defined else NAN

    return percentile_ci(bootstrap_values(stat, y.size, n_boot, seed), level)


# --------------------------------------------------------------------------- calibration


def _check_dists(dists, where: str = "distributions", schema: RatingSchema | None = None) -> np.ndarray:
    schema = rating.resolve(schema)
    d = np.asarray(dists, dtype=float)
    if d.ndim != 2 or d.shape[1] != schema.n_levels:
        named = "" if schema.is_paper else f" (K={schema.n_levels} levels of the {schema.name!r} rating schema)"
        raise ValueError(f"{where}: expected shape [n, {schema.n_levels}]{named}, got {d.shape}")
    return check_distributions(d, where, schema=schema)


@dataclass
class Calibration:
    """Calibration summary of K-level distributions against grid targets."""

    ece: MetricResult
    nll: MetricResult  # mean -log pi(target level)
    brier: MetricResult  # mean sum_s (pi(s) - 1[s = target])^2
    accuracy: float  # exact-level accuracy of the argmax
    mean_confidence: float
    reliability: pd.DataFrame  # bin_low, bin_high, n, confidence, accuracy (NaN in empty bins)


def calibration(dists, targets, n_bins: int = 10, *, schema: RatingSchema | str | None = None) -> Calibration:
    """ECE, NLL, Brier and reliability-diagram data from distributions ``[n, K]`` over the rating
    ``schema``'s levels (None: the paper's nine) and grid targets ``[n]``.

    Targets must lie on the schema's grid (snap aggregated means with ``schema.snap`` first); an
    off-grid target raises naming its position.
    """
    schema = rating.resolve(schema)
    d = _check_dists(dists, schema=schema)
    t = np.asarray(targets, dtype=float).ravel()
    if t.size != d.shape[0]:
        raise ValueError(f"{d.shape[0]} distributions but {t.size} targets")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    empty_rel = pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "n": 0, "confidence": NAN, "accuracy": NAN})
    if t.size == 0:
        u = MetricResult.undefined("no items")
        return Calibration(u, u, u, NAN, NAN, empty_rel)
    if not np.isfinite(t).all():
        u = MetricResult.undefined(f"{_non_finite(t, 'target')}; drop them explicitly")
        return Calibration(u, u, u, NAN, NAN, empty_rel)
    off = np.flatnonzero(~np.atleast_1d(schema.is_on_grid(t)))
    if off.size:
        grid = "the 9-level grid" if schema.is_paper else f"the {schema.n_levels}-level grid of {schema.name!r}"
        raise ValueError(f"target at position {int(off[0])} ({t[off[0]]}) is not on {grid}; "
                         "use levels.snap_to_grid (schema.snap) on aggregated scores first")
    ti = np.atleast_1d(schema.index(t)).ravel()
    conf = d.max(axis=1)
    pred = d.argmax(axis=1)
    correct = (pred == ti).astype(float)
    b = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    ece = 0.0
    for k in range(n_bins):
        m = b == k
        nk = int(m.sum())
        c = float(conf[m].mean()) if nk else NAN
        a = float(correct[m].mean()) if nk else NAN
        if nk:
            ece += nk / t.size * abs(a - c)
        rows.append({"bin_low": edges[k], "bin_high": edges[k + 1], "n": nk, "confidence": c, "accuracy": a})
    onehot = np.eye(schema.n_levels)[ti]
    p_t = d[np.arange(t.size), ti]
    nll = float(np.mean(-np.log(np.clip(p_t, 1e-12, None))))
    brier = float(np.mean(((d - onehot) ** 2).sum(axis=1)))
    return Calibration(MetricResult(float(ece)), MetricResult(nll), MetricResult(brier),
                       float(correct.mean()), float(conf.mean()), pd.DataFrame(rows))
