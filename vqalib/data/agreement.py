"""Inter-annotator agreement (the paper's Table 3): Relaxed Match, Krippendorff's alpha, bootstrap
CIs, per-rater bias and leniency, and the effect of the high-variance filter.

* **Relaxed Match** (RM): over all pairs of raters who rated the same unit (video x dimension),
  the share whose scores differ by at most ``tol`` (1.0 by default, inclusive):
  ``RM = sum_u #{(i<j): |s_ui - s_uj| <= tol} / sum_u C(n_u, 2)``.
* **Krippendorff's alpha** ``1 - D_o / D_e`` comes from the ``krippendorff`` package (never
  hand-written here), computed from per-unit value counts over the K levels of the rating schema
  (the paper's: the 9 grid levels), with the ``interval`` or ``ordinal`` difference function.
* **Bootstrap CIs** resample *units* (videos) with replacement, keeping each unit's ratings
  together, and report percentile intervals (:func:`vqalib.core.bootstrap.unit_bootstrap_ci`).
* **Original scale.** ``value="raw_score"`` computes the same statistics on the ratings as the rater
  gave them (the ``raw_score`` column :func:`vqalib.data.dataset.from_ratings_csv` keeps, e.g. 0-100), from
  raters x units reliability data instead of grid counts; ``tol`` is then in the original units.
  Snapping continuous ratings to the 9 levels changes alpha (it adds rounding disagreement and
  merges close ratings), so both are worth reporting side by side (notebook 02).
* **Rating schema.** Every function whose numbers depend on the levels or the dimensions takes
  ``schema=`` (:class:`vqalib.schema.rating.RatingSchema`; None: the paper's, or the dataset's own
  when a :class:`~vqalib.data.dataset.VQADataset` is passed instead of its ratings frame). Default
  tolerances (``tol=None``) are 1.0 on the paper's 1-5 scale, scaled to the schema's span (2.25 on
  1-10). MOS rows (one score per clip, rater ``"mos"``) have no rater pairs: agreement is NaN there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import krippendorff
import numpy as np
import pandas as pd

from vqalib.core.bootstrap import unit_bootstrap_ci
from vqalib.schema import levels as L
from vqalib.schema import rating as RS

#: Levels of measurement accepted by :func:`krippendorff_alpha`.
ALPHA_LEVELS = ("nominal", "ordinal", "interval", "ratio")


def krippendorff_alpha(reliability_data=None, level: str = "interval", value_counts=None,
                       value_domain: Sequence | None = None) -> float:
    """Krippendorff's alpha through the ``krippendorff`` package.

    ``reliability_data``: raters x units (NaN = missing), or ``value_counts``: units x values (how many
    raters gave each value). ``value_domain`` is the ordered list of possible values (defaults: the
    values seen, for ``reliability_data``). Returns NaN (not an error) when there is no pairable
    unit or no variation (``D_e = 0``), because alpha is undefined there.
    """
    if level not in ALPHA_LEVELS:
        raise ValueError(f"level must be one of {ALPHA_LEVELS}, not {level!r}")
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            a = krippendorff.alpha(reliability_data=reliability_data, value_counts=value_counts,
                                   value_domain=value_domain, level_of_measurement=level)
    except ValueError as exc:  # fewer than 2 distinct values, or no unit with 2 ratings: undefined
        if "more than one value" in str(exc) or "at least two coders" in str(exc):
            return float("nan")
        raise
    return float(a)


def _frame_and_schema(ratings, schema) -> tuple[pd.DataFrame, "RS.RatingSchema"]:
    """A ratings frame and its schema: a dataset's ratings and (unless ``schema`` is given) its schema."""
    if hasattr(ratings, "ratings") and hasattr(ratings, "schema"):
        return ratings.ratings, RS.get_schema(schema) if schema is not None else ratings.schema
    return ratings, RS.resolve(schema)


def default_tolerance(schema: "RS.RatingSchema | str | None" = None) -> float:
    """Relaxed Match's tolerance: 1.0 on the paper's 1-5 scale, scaled to the schema's span."""
    s = RS.resolve(schema)
    return 1.0 * s.span / (L.SCORE_MAX - L.SCORE_MIN)


def value_counts_matrix(ratings: pd.DataFrame, dimension: str, phase: str = "final",
                        schema: "RS.RatingSchema | str | None" = None) -> tuple[np.ndarray, list[str]]:
    """Units x K matrix: how many raters gave each level to each video (one dimension, one phase);
    K and the levels from ``schema`` (the paper's: 9 grid levels)."""
    ratings, schema = _frame_and_schema(ratings, schema)
    r = ratings[(ratings["dimension"] == dimension) & (ratings["phase"] == phase)]
    if "rater" in r.columns:
        r = r[r["rater"].astype(str) != "mos"]  # a MOS row is not a rater's level
    idx = np.asarray(schema.index(r["score"].to_numpy(dtype=float)), dtype=int).reshape(-1)
    units = pd.Index(sorted(r["video_id"].unique()))
    counts = np.zeros((len(units), schema.n_levels), dtype=float)
    np.add.at(counts, (units.get_indexer(r["video_id"]), idx), 1.0)
    return counts, units.tolist()


def reliability_matrix(ratings: pd.DataFrame, dimension: str, phase: str = "final") -> pd.DataFrame:
    """Raters x videos table of scores (NaN where a rater did not rate the video)."""
    r = ratings[(ratings["dimension"] == dimension) & (ratings["phase"] == phase)]
    return r.pivot(index="rater", columns="video_id", values="score")


#: Rating columns agreement can be computed on: the 9-level grid score, or the original value.
VALUES = ("score", "raw_score")


def _check_value(ratings: pd.DataFrame, value: str) -> None:
    if value not in VALUES:
        raise ValueError(f"value={value!r}; use 'score' (the 9-level grid) or 'raw_score' (the original scale)")
    if value not in ratings.columns:
        raise ValueError(f"the ratings have no {value!r} column; it is written by vqalib.data.dataset.from_ratings_csv "
                         "(the original value of each rating); use value='score' for data rated on the grid")
    bad = ratings[value].isna() | ~np.isfinite(pd.to_numeric(ratings[value], errors="coerce"))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of {len(ratings)} ratings have no finite {value!r} "
                         f"(first: video {ratings.loc[bad, 'video_id'].iloc[0]!r}); agreement on {value!r} needs it "
                         "for every rating")


def units_by_raters(ratings: pd.DataFrame, dimension: str, phase: str = "final", value: str = "raw_score") -> np.ndarray:
    """Units x raters array of ``value`` (NaN where a rater did not rate the video), units sorted by id.

    The layout :func:`vqalib.core.bootstrap.unit_bootstrap_ci` resamples (rows = units); transpose it for the
    ``krippendorff`` package's raters x units ``reliability_data``."""
    r = ratings[(ratings["dimension"] == dimension) & (ratings["phase"] == phase)]
    dup = r.duplicated(["video_id", "rater"], keep=False)
    if dup.any():
        first = r[dup].iloc[0]
        raise ValueError(f"{int(dup.sum())} {dimension} ratings ({phase}) repeat a (video, rater) pair, first video "
                         f"{first['video_id']!r} rater {first['rater']!r}; one rating per rater and video is needed "
                         "(vqalib.data.dataset.validate reports duplicates)")
    return r.pivot(index="video_id", columns="rater", values=value).sort_index().to_numpy(dtype=float)


def _rm_from_units(x: np.ndarray, tol: float) -> float:
    return relaxed_match(np.asarray(x).T, tol)


def _alpha_from_units(x: np.ndarray, level: str) -> float:
    x = np.asarray(x, dtype=float)
    keep = (~np.isnan(x)).sum(1) >= 2  # unpairable units carry no information
    if not keep.any():
        return float("nan")
    return krippendorff_alpha(reliability_data=x[keep].T, level=level)


def relaxed_match_counts(value_counts: np.ndarray, tol: float = 1.0,
                         schema: "RS.RatingSchema | str | None" = None) -> tuple[float, float]:
    """(pairs within ``tol``, all pairs) from a units x K value-count matrix (K levels of ``schema``,
    the paper's 9 by default).

    Pairs of raters on the same unit: same level gives ``c (c - 1) / 2`` pairs, levels ``a < b``
    give ``c_a c_b`` pairs, within tolerance when ``|level_a - level_b| <= tol``."""
    c = np.asarray(value_counts, dtype=float)
    lv = RS.resolve(schema).levels
    diff = np.abs(lv[:, None] - lv[None, :])
    close = (diff <= tol + 1e-9).astype(float)
    # sum over ordered pairs of levels (a, b) of c_a c_b, minus same-rater pairs, halved
    within = (np.einsum("ua,ab,ub->u", c, close, c) - c.sum(1)) / 2
    n = c.sum(1)
    total = n * (n - 1) / 2
    return float(within.sum()), float(total.sum())


def relaxed_match(scores, tol: float = 1.0) -> float:
    """Relaxed Match of a raters x units array of scores (NaN = missing): share of rater pairs on the
    same unit whose scores differ by at most ``tol``. NaN when no unit has two ratings.
    (For value-count matrices use :func:`relaxed_match_counts`.)"""
    a = np.asarray(scores, dtype=float)
    within = total = 0.0
    for col in a.T:
        v = col[~np.isnan(col)]
        if len(v) < 2:
            continue
        d = np.abs(v[:, None] - v[None, :])[np.triu_indices(len(v), 1)]
        within += float((d <= tol + 1e-9).sum())
        total += len(d)
    return within / total if total else float("nan")


def _rm_from_counts(c: np.ndarray, tol: float = 1.0, schema: "RS.RatingSchema | None" = None) -> float:
    w, t = relaxed_match_counts(c, tol, schema)
    return w / t if t else float("nan")


def _alpha_from_counts(c: np.ndarray, level: str, schema: "RS.RatingSchema | None" = None) -> float:
    keep = c.sum(1) >= 2  # unpairable units carry no information
    if not keep.any():
        return float("nan")
    return krippendorff_alpha(value_counts=c[keep], level=level, value_domain=list(RS.resolve(schema).levels))


def _present(ratings: pd.DataFrame, dimensions: Iterable[str] | None,
             schema: "RS.RatingSchema | None" = None) -> list[str]:
    """The given dimensions, or those that have ratings (in the schema's order, then any other in order of
    appearance)."""
    if dimensions is not None:
        return list(dimensions)
    order = RS.resolve(schema).keys
    have = list(dict.fromkeys(ratings["dimension"]))
    return [d for d in order if d in set(have)] + [d for d in have if d not in order]


def agreement_table(ratings: pd.DataFrame, phases: Iterable[str] = ("pilot", "final"),
                    dimensions: Iterable[str] | None = None, n_boot: int = 200, ci: float = 0.95,
                    tol: float | None = None, seed: int = 0, value: str = "score",
                    schema: "RS.RatingSchema | str | None" = None) -> pd.DataFrame:
    """Table 3 of the paper: per dimension and phase, Relaxed Match and alpha (interval, ordinal)
    with bootstrap CIs (units resampled). Columns: ``dimension, phase, value, n_videos, n_ratings,
    relaxed_match(_lo/_hi), alpha_interval(_lo/_hi), alpha_ordinal(_lo/_hi)``. ``dimensions=None``:
    those with ratings.

    ``value="score"`` (default): the 9-level grid scores, ``tol`` in score points (paper: 1.0).
    ``value="raw_score"``: the original ratings (:func:`vqalib.data.dataset.from_ratings_csv`), ``tol`` in
    the original units (e.g. 25 on a 0-100 scale is 1.0 on 1-5), alpha with the values seen as
    the value domain. Raises ``ValueError`` when the column is absent or not finite everywhere.

    ``schema`` (default the paper's, or the dataset's when ``ratings`` is a dataset): the K levels
    counted and the dimension order; ``tol=None`` is :func:`default_tolerance` (1.0 for the paper's;
    with ``value="raw_score"`` give it in the original units)."""
    ratings, schema = _frame_and_schema(ratings, schema)
    if tol is None:
        tol = default_tolerance(schema)
    _check_value(ratings, value)
    rows = []
    dimensions = _present(ratings, dimensions, schema)
    for phase in phases:
        for k, dim in enumerate(dimensions):
            if value == "score":
                c, units = value_counts_matrix(ratings, dim, phase, schema)
                n_ratings = int(c.sum())
                stats = {"relaxed_match": lambda x: _rm_from_counts(x, tol, schema),
                         "alpha_interval": lambda x: _alpha_from_counts(x, "interval", schema),
                         "alpha_ordinal": lambda x: _alpha_from_counts(x, "ordinal", schema)}
            else:
                c = units_by_raters(ratings, dim, phase, value)
                units, n_ratings = range(len(c)), int((~np.isnan(c)).sum())
                stats = {"relaxed_match": lambda x: _rm_from_units(x, tol),
                         "alpha_interval": lambda x: _alpha_from_units(x, "interval"),
                         "alpha_ordinal": lambda x: _alpha_from_units(x, "ordinal")}
            row = {"dimension": dim, "phase": phase, "value": value, "n_videos": len(units), "n_ratings": n_ratings}
            for j, (name, fn) in enumerate(stats.items()):
                row[name] = fn(c) if len(c) else float("nan")
                row[f"{name}_lo"], row[f"{name}_hi"] = unit_bootstrap_ci(c, fn, n_boot, ci, seed=seed + 100 * k + j)
            rows.append(row)
    return pd.DataFrame(rows)


def raw_tolerance(tol: float, scale: Sequence[float], schema: "RS.RatingSchema | str | None" = None) -> float:
    """A Relaxed Match tolerance on the schema's scale (the paper's 1-5) expressed in the original units
    of ``scale=(lo, hi)`` (the linear map of :func:`vqalib.data.dataset.map_scale`): ``tol * |hi - lo| / span``;
    1.0 on 1-5 is 25 on 0-100. ``scale`` may be ``ds.info["scale"]`` of a schema whose dimensions have
    different raw ranges (a dict: dimension -> (lo, hi)) when they all have the same width; else
    ``ValueError`` names the fix."""
    if isinstance(scale, dict):
        widths = {k: abs(float(v[1]) - float(v[0])) for k, v in scale.items()}
        if len(set(widths.values())) != 1:
            raise ValueError(f"the dimensions have raw scales of different widths {scale}; pass one dimension's "
                             "(lo, hi), or give the tolerance in original units directly (RAW_TOLERANCE)")
        scale = next(iter(scale.values()))
    lo, hi = (float(v) for v in scale)
    if lo == hi:
        raise ValueError(f"scale {tuple(scale)} has zero width; cannot convert a tolerance to it")
    return float(tol) * abs(hi - lo) / RS.resolve(schema).span


def compare_scales(grid: pd.DataFrame, raw: pd.DataFrame,
                   columns: Sequence[str] = ("relaxed_match", "alpha_interval", "alpha_ordinal")) -> pd.DataFrame:
    """Grid and original-scale agreement side by side: one row per dimension, phase and statistic,
    with ``grid``, ``raw`` and ``raw_minus_grid`` (tables from :func:`agreement_table` with
    ``value="score"`` and ``value="raw_score"``)."""
    key = ["dimension", "phase"]
    m = grid.set_index(key)[list(columns)].join(raw.set_index(key)[list(columns)], lsuffix="_grid", rsuffix="_raw",
                                                how="outer")
    rows = [{"dimension": d, "phase": ph, "statistic": c, "grid": m.loc[(d, ph), f"{c}_grid"],
             "raw": m.loc[(d, ph), f"{c}_raw"]} for (d, ph) in m.index for c in columns]
    out = pd.DataFrame(rows)
    out["raw_minus_grid"] = out["raw"] - out["grid"]
    return out


def rater_bias(ratings: pd.DataFrame, phase: str = "final", by_dimension: bool = False) -> pd.DataFrame:
    """Per-rater bias and leniency against the other raters of the same video and dimension.

    For each rating ``s`` the reference is the mean of the *other* raters' scores on that unit
    (leave-one-out; units with one rating are skipped). ``bias`` = mean ``s - ref`` (positive =
    lenient), ``leniency`` = share of ratings above ``ref`` minus share below (in [-1, 1]),
    ``mad`` = mean ``|s - ref|`` (lower = more consistent), ``n`` = ratings used.
    """
    r = ratings[ratings["phase"] == phase].copy()
    g = r.groupby(["video_id", "dimension"])["score"]
    n = g.transform("count")
    r = r[n >= 2].copy()
    n = n[n >= 2]
    r["ref"] = (g.transform("sum")[r.index] - r["score"]) / (n - 1)
    r["dev"] = r["score"] - r["ref"]
    keys = ["rater", "dimension"] if by_dimension else ["rater"]
    out = r.groupby(keys).agg(bias=("dev", "mean"), leniency=("dev", lambda d: float((d > 0).mean() - (d < 0).mean())),
                              mad=("dev", lambda d: float(d.abs().mean())), n=("dev", "size"))
    return out.reset_index()


def high_variance_effect(ratings: pd.DataFrame, phase: str = "final", high_variance_std: float | None = None,
                         dimensions: Iterable[str] | None = None, tol: float | None = None,
                         schema: "RS.RatingSchema | str | None" = None) -> pd.DataFrame:
    """Agreement before and after removing high-variance items (see :func:`vqalib.data.dataset.aggregate`).

    Per dimension: ``n_videos``, ``n_flagged``, ``share_flagged``, and Relaxed Match and alpha
    (interval) on all items and on the kept items. Filtering removes disagreement by construction,
    so the "after" numbers are an upper bound on the data's reliability, not a new measurement.
    ``schema``: as in :func:`agreement_table`; ``high_variance_std=None`` is
    :func:`vqalib.data.dataset.high_variance_threshold` (1.0 on the paper's scale).
    """
    from vqalib.data.dataset import aggregate, high_variance_threshold

    ratings, schema = _frame_and_schema(ratings, schema)
    if tol is None:
        tol = default_tolerance(schema)
    thr = high_variance_threshold(schema) if high_variance_std is None else high_variance_std
    labels = aggregate(ratings, phase=phase, high_variance_std=thr, schema=schema)
    rows = []
    for dim in _present(ratings, dimensions, schema):
        c, units = value_counts_matrix(ratings, dim, phase, schema)
        flagged = set(labels.loc[(labels.dimension == dim) & labels.high_variance, "video_id"])
        keep = np.array([u not in flagged for u in units], dtype=bool)
        rows.append({"dimension": dim, "n_videos": len(units), "n_flagged": int((~keep).sum()),
                     "share_flagged": float((~keep).mean()) if len(units) else float("nan"),
                     "relaxed_match_all": _rm_from_counts(c, tol, schema),
                     "relaxed_match_kept": _rm_from_counts(c[keep], tol, schema),
                     "alpha_interval_all": _alpha_from_counts(c, "interval", schema),
                     "alpha_interval_kept": _alpha_from_counts(c[keep], "interval", schema)})
    return pd.DataFrame(rows)


@dataclass
class PhaseComparison:
    """Per dimension, whether final-phase alpha beats pilot-phase alpha (``column`` of the table).

    ``final_higher[d]`` is True/False, or ``None`` when alpha is undefined (NaN) in either phase
    (e.g. no variation among the pilot ratings): then nothing can be said, and ``verdict[d]`` is
    ``"undefined"`` rather than "final not higher"."""

    column: str
    final_higher: dict[str, bool | None]

    @property
    def verdict(self) -> dict[str, str]:
        """``"higher"`` | ``"not higher"`` | ``"undefined"`` per dimension."""
        return {d: "undefined" if v is None else ("higher" if v else "not higher") for d, v in self.final_higher.items()}

    @property
    def undefined(self) -> list[str]:
        """Dimensions where alpha is NaN in a phase."""
        return [d for d, v in self.final_higher.items() if v is None]

    @property
    def all_higher(self) -> bool:
        """True only when final alpha is defined and higher on every dimension."""
        return bool(self.final_higher) and all(v is True for v in self.final_higher.values())


def compare_phases(table: pd.DataFrame, column: str = "alpha_interval") -> PhaseComparison:
    """From :func:`agreement_table`, per dimension: final ``column`` > pilot ``column`` (True/False),
    or ``None`` (undefined) when either value is NaN."""
    w = table.pivot(index="dimension", columns="phase", values=column)
    missing = {"pilot", "final"} - set(w.columns)
    if missing:
        raise ValueError(f"the agreement table has no {sorted(missing)} phase rows; cannot compare phases")
    out: dict[str, bool | None] = {}
    for d in w.index:
        fin, pil = float(w.loc[d, "final"]), float(w.loc[d, "pilot"])
        out[d] = None if not (np.isfinite(fin) and np.isfinite(pil)) else bool(fin > pil)
    return PhaseComparison(column, out)
