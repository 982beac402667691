"""What notebook 02 says about rater agreement: the metrics it logs per phase and dimension, the pilot
against final comparison in words, and agreement on the original rating scale (``raw_score``).

The statistics themselves are :mod:`vqalib.data.agreement`; this module only picks, names and words them.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from vqalib.data import agreement

#: The agreement statistics notebook 02 logs and compares (columns of ``agreement.agreement_table``).
STATISTICS: tuple[str, ...] = ("relaxed_match", "alpha_interval", "alpha_ordinal")
#: The statistics the pilot-to-final comparison is made on.
PHASE_STATISTICS: tuple[str, ...] = ("alpha_interval", "alpha_ordinal")


def agreement_metrics(table: pd.DataFrame, suffix: str = "") -> dict[str, Any]:
    """``{"<phase>_<dimension>_<statistic><suffix>": value}`` for every row of an agreement table and
    each of :data:`STATISTICS` (``suffix="_raw"`` for the original-scale table)."""
    return {f"{row.phase}_{row.dimension}_{k}{suffix}": getattr(row, k) for row in table.itertuples() for k in STATISTICS}


def phase_comparisons(table: pd.DataFrame) -> dict[str, agreement.PhaseComparison]:
    """Final against pilot phase per dimension, for each of :data:`PHASE_STATISTICS` (``agreement.compare_phases``)."""
    return {col: agreement.compare_phases(table, col) for col in PHASE_STATISTICS}


def phase_metrics(comparisons: dict[str, agreement.PhaseComparison]) -> dict[str, Any]:
    """Whether final-phase α beats pilot-phase α on every dimension (interval, ordinal) and per dimension (interval)."""
    return {"final_alpha_interval_above_pilot_all": comparisons["alpha_interval"].all_higher,
            "final_alpha_ordinal_above_pilot_all": comparisons["alpha_ordinal"].all_higher,
            "final_alpha_interval_above_pilot": comparisons["alpha_interval"].final_higher}


def phase_report(comparisons: dict[str, agreement.PhaseComparison]) -> str:
    """One line per statistic (on how many dimensions final > pilot, naming those where not and those where α
    is undefined), then the verdict: higher everywhere, undefined somewhere, or not higher everywhere."""
    lines = []
    for col, cmp in comparisons.items():
        worse = [d for d, v in cmp.verdict.items() if v == "not higher"]
        lines.append(f"{col}: final > pilot on {sum(v == 'higher' for v in cmp.verdict.values())} of {len(cmp.verdict)} "
                     "dimensions" + ("" if not worse else f"; NOT on {worse}")
                     + ("" if not cmp.undefined else f"; undefined (α is NaN in a phase) on {cmp.undefined}"))
    undefined = sorted({d for c in comparisons.values() for d in c.undefined})
    if all(c.all_higher for c in comparisons.values()):
        verdict = "Final-phase α is higher than pilot-phase α on every dimension (interval and ordinal)."
    elif undefined:
        verdict = f"Undefined on {undefined}: α is NaN in a phase (e.g. no variation), so no comparison there."
    else:
        verdict = "Final-phase α is NOT higher than pilot-phase α on every dimension; see the lines above."
    return "\n".join([*lines, verdict])


def has_raw_scale(ratings: pd.DataFrame) -> bool:
    """True when every rating carries its value on the original scale (``raw_score``, from ``from_ratings_csv``)."""
    return "raw_score" in ratings.columns and bool(ratings["raw_score"].notna().all())


def raw_tolerance_of(info: dict[str, Any], tol: float, raw_tol: float, where: str) -> float:
    """The Relaxed Match tolerance in original units: ``raw_tol`` when > 0, else the grid tolerance ``tol``
    converted with the scale ``info["scale"]`` (``dataset.json``). Raises ``ValueError`` naming ``where``
    (the dataset folder) and the fix when neither is available."""
    if raw_tol > 0:
        return raw_tol
    if "scale" in info:
        return agreement.raw_tolerance(tol, info["scale"])
    raise ValueError(f"{where}: ratings carry raw_score but dataset.json records no scale; "
                     "set RAW_TOLERANCE to the Relaxed Match tolerance in the original units")


def raw_scale_agreement(ds: Any, grid: pd.DataFrame, phases: Sequence[str], tol: float, raw_tol: float,
                        n_boot: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Agreement on the original scale of a dataset ``ds`` whose ratings carry ``raw_score``: ``(the
    agreement table on raw_score, grid and raw side by side (``agreement.compare_scales`` with the grid
    table ``grid``), the tolerance used (:func:`raw_tolerance_of`))``."""
    used = raw_tolerance_of(ds.info, tol, raw_tol, str(ds.root))
    raw = agreement.agreement_table(ds.ratings, phases=phases, n_boot=n_boot, tol=used, seed=seed, value="raw_score")
    return raw, agreement.compare_scales(grid, raw), used


def raw_scale_sentence(scale: Any, raw_tol: float, tol: float) -> str:
    """The original scale and the two tolerances in one line."""
    return f"original scale {scale}; Relaxed Match tolerance {raw_tol:g} original units (grid: {tol:g})"


def largest_alpha_change(side: pd.DataFrame) -> str:
    """The largest |α(raw) − α(grid)| over the α rows of an ``agreement.compare_scales`` table."""
    return f"largest |α(raw) − α(grid)|: {side.loc[side.statistic.str.startswith('alpha'), 'raw_minus_grid'].abs().max():.3f}"
