"""Percentile bootstraps, numpy only: one resampling core for every interval the project reports.

A bootstrap resamples the ``n`` units (clips, rated videos) with replacement, ``n_boot`` times, from a
seeded generator (``numpy.random.default_rng(seed)``, one ``rng.integers(0, n, n)`` draw per resample),
computes the statistic on each resample and reports the percentile interval at ``level``:
``[q((1 - level)/2), q(1 - (1 - level)/2)]`` of the resamples on which the statistic is defined
(finite); the others are counted as undefined and left out.

- :func:`bootstrap_values` - the statistic on each resample of one set of units (:func:`unit_bootstrap_ci`
  on the rows of a matrix: rater agreement, :mod:`vqalib.data.agreement`; ``vqalib.eval.metrics.bootstrap_ci``:
  a metric of paired targets and predictions).
- :func:`hierarchical_values` - two levels: the units drawn once per resample and shared by every group,
  then within each group its runs (seeds) drawn with replacement from a second stream; a group's value is
  the mean over its drawn runs (``vqalib.eval.tables.hierarchical_bootstrap``: methods x seeds x clips).
- :func:`percentile_ci` - the interval of the resampled values, with the count of undefined ones and, when
  it is NaN, the reason.

Every caller's numbers are pinned in ``tests/unit/test_bootstrap.py``: the same seed gives the same draws in
the same order, so moving a caller onto this core changed no result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

NAN = float("nan")


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap interval of a statistic; ``reason`` set when it is NaN."""

    low: float
    high: float
    n_boot: int
    n_undefined: int  # resamples where the statistic was NaN (e.g. a constant resample), left out
    reason: str | None = None


def resample(rng: np.random.Generator, n: int) -> np.ndarray:
    """Indices of one resample of ``n`` units with replacement (``rng.integers(0, n, n)``, int64 ``[n]``)."""
    return rng.integers(0, n, n)


def bootstrap_values(stat: Callable[[np.ndarray], float], n: int, n_boot: int, seed=0) -> np.ndarray:
    """``stat(idx)`` for ``n_boot`` resamples ``idx`` of ``n`` units (seeded), in draw order: float64 ``[n_boot]``."""
    rng = np.random.default_rng(seed)
    return np.array([stat(resample(rng, n)) for _ in range(n_boot)], dtype=float)


def hierarchical_values(stat: Callable[[str, np.ndarray], np.ndarray], n: int, n_runs: Mapping[str, int],
                           n_boot: int, seed=0) -> dict[str, np.ndarray]:
    """Two-level resamples: per resample, ``idx`` = :func:`resample` of the ``n`` units (stream
    ``default_rng(seed)``), then for each group ``g`` in the order of ``n_runs`` a draw of its ``n_runs[g]``
    runs with replacement (stream ``default_rng([seed, 1])``); the group's value is
    ``stat(g, idx)[draw].mean(axis=0)``, where ``stat`` returns one row per run (``[n_runs[g], ...]``).

    Returns ``{g: [n_boot, ...]}``. The units are shared by the groups within a resample, so a difference
    of two groups is paired over units; with one run per group this is the paired unit bootstrap."""
    rng_units, rng_runs = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    out: dict[str, list[np.ndarray]] = {g: [] for g in n_runs}
    for _ in range(n_boot):
        idx = resample(rng_units, n)
        for g, k in n_runs.items():
            draw = resample(rng_runs, k)
            out[g].append(stat(g, idx)[draw].mean(axis=0))
    return {g: np.asarray(v) for g, v in out.items()}


def percentile_ci(values, level: float = 0.95, min_defined: float = 0.5) -> BootstrapCI:
    """The percentile interval at ``level`` of the finite ``values`` (one per resample).

    NaN with a reason when there are no resamples, or when fewer than ``min_defined`` of them (a share;
    0 = at least one) are finite: ``"metric undefined on <k> of <n> resamples"``."""
    values = np.asarray(values, dtype=float)
    good = values[np.isfinite(values)]
    n_undef = len(values) - len(good)
    if not len(values):
        return BootstrapCI(NAN, NAN, 0, 0, "no resamples")
    if not len(good) or len(good) < len(values) * min_defined:
        return BootstrapCI(NAN, NAN, len(values), n_undef, f"metric undefined on {n_undef} of {len(values)} resamples")
    a = (1 - level) / 2
    lo, hi = np.quantile(good, [a, 1 - a])
    return BootstrapCI(float(lo), float(hi), len(values), n_undef)


def unit_bootstrap_ci(rows, stat: Callable[[np.ndarray], float], n_boot: int = 200, level: float = 0.95,
                      seed=0) -> tuple[float, float]:
    """Percentile CI ``(low, high)`` of ``stat(rows)``, resampling the rows (units) of ``rows`` with replacement.

    ``rows``: array ``[units, ...]`` (e.g. value counts ``[videos, 9]``). Resamples where ``stat`` is not
    finite are left out; ``(nan, nan)`` when ``n_boot <= 0``, with fewer than 2 units, or when no resample
    is finite."""
    c = np.asarray(rows, dtype=float)
    if n_boot <= 0 or len(c) < 2:
        return NAN, NAN
    ci = percentile_ci(bootstrap_values(lambda idx: stat(c[idx]), len(c), n_boot, seed), level, min_defined=0.0)
    return ci.low, ci.high
