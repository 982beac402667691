"""Per-dimension metrics of the paper's Table 1 and more, with NaN-with-a-reason for undefined cases.

Every metric returns a :class:`MetricResult` (``value``, ``reason``): ``reason`` is ``None`` when
the value is defined and says why it is NaN otherwise (fewer than 3 items, a constant prediction,
non-finite inputs (NaN or +-inf alike), a logistic fit that failed). Nothing crashes and nothing is silently 0.

Metrics (``y`` = human score, ``p`` = prediction, both on the 1-5 scale, ``n`` items):

- ``acc``: Acc@0.5 = mean(|p - y| <= 0.5) (paper, Table 1).  Defined for n >= 1.
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

Bootstrap CIs (:func:`bootstrap_ci`) resample items with replacement (seeded), percentile interval
(:mod:`vqalib.core.bootstrap`).
Calibration (:func:`calibration`) uses the saved 9-level distributions: confidence = max level
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
from vqalib.schema.levels import N_LEVELS, is_on_grid, level_index

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


def score_metrics(y, p, names: tuple[str, ...] | list[str] | None = None) -> dict[str, MetricResult]:
    """All (or the named) metrics of one dimension: ``{name: MetricResult}``."""
    names = list(names or METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    return {n: METRICS[n](y, p) for n in names}


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


def _check_dists(dists, where: str = "distributions") -> np.ndarray:
    d = np.asarray(dists, dtype=float)
    if d.ndim != 2 or d.shape[1] != N_LEVELS:
        raise ValueError(f"{where}: expected shape [n, {N_LEVELS}], got {d.shape}")
    return check_distributions(d, where)


@dataclass
class Calibration:
    """Calibration summary of 9-level distributions against grid targets."""

    ece: MetricResult
    nll: MetricResult  # mean -log pi(target level)
    brier: MetricResult  # mean sum_s (pi(s) - 1[s = target])^2
    accuracy: float  # exact-level accuracy of the argmax
    mean_confidence: float
    reliability: pd.DataFrame  # bin_low, bin_high, n, confidence, accuracy (NaN in empty bins)


def calibration(dists, targets, n_bins: int = 10) -> Calibration:
    """ECE, NLL, Brier and reliability-diagram data from distributions ``[n, 9]`` and grid targets ``[n]``.

    Targets must lie on the 9-level grid (snap aggregated means with ``levels.snap_to_grid``
    first); an off-grid target raises naming its position.
    """
    d = _check_dists(dists)
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
    off = np.flatnonzero(~np.asarray(is_on_grid(t)))
    if off.size:
        raise ValueError(f"target at position {int(off[0])} ({t[off[0]]}) is not on the 9-level grid; "
                         "use levels.snap_to_grid on aggregated scores first")
    ti = np.asarray(level_index(t)).ravel()
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
    onehot = np.eye(N_LEVELS)[ti]
    p_t = d[np.arange(t.size), ti]
    nll = float(np.mean(-np.log(np.clip(p_t, 1e-12, None))))
    brier = float(np.mean(((d - onehot) ** 2).sum(axis=1)))
    return Calibration(MetricResult(float(ece)), MetricResult(nll), MetricResult(brier),
                       float(correct.mean()), float(conf.mean()), pd.DataFrame(rows))
