"""One score per video from per-dimension predictions, for benchmarks that give one MOS per clip.

A combination is named (the ``combination`` column of Table 2 rows) and resolves, for a rating schema,
to the dimension keys whose scores are averaged (:func:`combination_dims`):

- ``"benchmark"``: the schema's rule (:attr:`vqalib.schema.rating.RatingSchema.benchmark_dimension`
  when set, else ``"mean_quality"``); :func:`default_combination` names what it resolves to, so a
  paper run keeps the name ``mean_quality``;
- ``"mean_quality"``: the mean of the schema's quality dimensions (``schema.quality_keys``: the paper's
  four, Motion Amplitude left out);
- ``"mean_all"`` (alias ``"mean5"``, the paper's five): the mean of every dimension of the schema;
- a dimension key: that dimension alone.

:func:`combine_predictions` never averages a partial set: a video missing one of the dimensions (or
with no value for the readout, e.g. an unparsed answer) gets NaN, counted by the caller.
"""

from __future__ import annotations

import pandas as pd

from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema

READOUTS = ("expected_score", "parsed_score", "argmax_score")


def combination_names(schema: RatingSchema | str | None = None) -> list[str]:
    """The combinations valid for ``schema`` (module docstring)."""
    schema = rating.resolve(schema)
    return ["benchmark", "mean_quality", "mean_all", "mean5", *schema.keys]


def all_combinations(schema: RatingSchema | str | None = None) -> list[str]:
    """What ``--combination all`` reports, one row each: the paper's ``mean_quality``, ``mean5`` and the five
    dimensions; for another schema ``mean_quality`` (when it marks quality dimensions), ``mean_all`` and each
    dimension."""
    schema = rating.resolve(schema)
    if schema.is_paper:
        return ["mean_quality", "mean5", *schema.keys]
    return [*(["mean_quality"] if schema.quality_keys else []), *(["mean_all"] if schema.n_dims > 1 else []),
            *schema.keys]


def default_combination(schema: RatingSchema | str | None = None) -> str:
    """The name the schema's benchmark rule resolves to: its ``benchmark_dimension`` when set, else
    ``"mean_quality"`` (the paper's protocol)."""
    schema = rating.resolve(schema)
    return schema.benchmark_dimension or "mean_quality"


def combination_dims(how: str, schema: RatingSchema | str | None = None) -> tuple[str, ...]:
    """The dimension keys combination ``how`` averages for ``schema``; raises ``ValueError`` naming the
    valid combinations."""
    schema = rating.resolve(schema)
    if how == "benchmark":
        how = default_combination(schema)
    if how == "mean_quality":
        if not schema.quality_keys:
            raise ValueError(f"the {schema.name!r} rating schema marks no dimension as quality; use one of "
                             f"{list(schema.keys)} or mean_all")
        return schema.quality_keys
    if how in ("mean_all", "mean5"):
        return schema.keys
    if how in schema.keys:
        return (how,)
    raise ValueError(f"combination {how!r}; choose one of {combination_names(schema)} (the {schema.name!r} "
                     "rating schema)")


def combine_predictions(pred: pd.DataFrame, how: str = "mean_quality", readout: str = "expected_score", *,
                        schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """One score per video: the mean of the dimensions of :func:`combination_dims` (``how``, ``schema``)
    of column ``readout``. Returns ``video_id, score, n_dims``; ``score`` is NaN when any needed
    dimension is missing or has no value (never a partial mean)."""
    if readout not in READOUTS:
        raise ValueError(f"readout={readout!r}; choose expected_score, parsed_score or argmax_score")
    dims = combination_dims(how, schema)
    wide = pred[pred["dimension"].isin(dims)].pivot_table(index="video_id", columns="dimension", values=readout,
                                                          aggfunc="first", dropna=False)
    wide = wide.reindex(columns=list(dims))
    n_dims = wide.notna().sum(axis=1)
    score = wide.mean(axis=1).where(n_dims == len(dims))
    return pd.DataFrame({"video_id": wide.index.astype(str), "score": score.to_numpy(), "n_dims": n_dims.to_numpy()})


def benchmark_scores(bench, pred: pd.DataFrame, how: str = "mean_quality", readout: str = "expected_score", *,
                     schema: RatingSchema | str | None = None) -> tuple[pd.DataFrame, dict]:
    """Join a benchmark's MOS with the combined predictions (combination ``how`` resolved on ``schema``).

    Returns the joined frame (``video_id, mos, mos_1to5, mos_schema, score, n_dims``; ``mos_schema`` is the
    MOS on the schema's ``[lo, hi]``) and counts: ``n_available`` (videos found locally), ``n_predicted``
    (with a score), ``n_no_prediction`` (found but no usable prediction, listed in ``no_prediction``); the
    info also records ``combined_dimensions``."""
    comb = combine_predictions(pred, how, readout, schema=schema)
    joined = bench.available[["video_id", "mos", "mos_1to5"]].merge(comb, on="video_id", how="left")
    sch = rating.resolve(schema)
    # the MOS on the schema's scale (the 1-5 map stretched onto [lo, hi]; the same values on a 1-5 scale)
    joined["mos_schema"] = joined["mos_1to5"] if (sch.lo, sch.hi) == (1.0, 5.0) else \
        sch.lo + sch.span * (joined["mos_1to5"].astype(float) - 1.0) / 4.0
    no_pred = joined["score"].isna()
    info = {"benchmark": bench.name, "split": bench.split, "combination": how, "readout": readout,
            "combined_dimensions": list(combination_dims(how, schema)),
            "n_listed": bench.n_listed, "n_missing_videos": len(bench.missing), "n_available": len(bench.available),
            "n_predicted": int((~no_pred).sum()), "n_no_prediction": int(no_pred.sum()),
            "no_prediction": joined.loc[no_pred, "video_id"].tolist()}
    return joined, info


__all__ = ["READOUTS", "all_combinations", "benchmark_scores", "combination_dims", "combination_names", "combine_predictions",
           "default_combination"]
