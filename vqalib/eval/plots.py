"""One look for every statistical figure of the collection, and the few helpers they share.

The plotting functions of :mod:`vqalib.report.dataset_stats`, :mod:`vqalib.eval.tables` and
:mod:`vqalib.report.training` draw with seaborn (long-form data, ``hue`` for the compared group,
error bars where an interval exists) inside :func:`theme`, a context manager around
``seaborn.set_theme``: the theme holds only while a figure is drawn, so importing vqalib or
calling a plot function leaves the caller's matplotlib settings (``rcParams``) as they were.

Saving is :meth:`vqalib.core.runs.Run.save_fig`.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import pandas as pd

from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema

F = TypeVar("F", bound=Callable[..., Any])

#: ``seaborn.set_theme`` arguments of the collection's figures.
THEME: dict[str, Any] = {"context": "notebook", "style": "whitegrid", "palette": "colorblind", "font_scale": 0.8,
                         "rc": {"figure.dpi": 100, "axes.titleweight": "bold", "legend.frameon": False}}


@contextlib.contextmanager
def theme(**overrides: Any) -> Iterator[None]:
    """Draw with the collection's seaborn theme (``THEME`` updated with ``overrides``), then
    restore matplotlib's ``rcParams`` as they were (``matplotlib.rc_context``).

    >>> with theme():
    ...     fig = plt.figure()           # drawn in the shared look
    """
    import matplotlib as mpl
    import seaborn as sns

    with mpl.rc_context():
        sns.set_theme(**{**THEME, **overrides})
        yield


def themed(fn: F) -> F:
    """Decorator: run a plotting function inside :func:`theme`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        with theme():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any):
    """``plt.subplots`` with ``squeeze=False`` and a constrained layout: (figure, 2-D array of axes)."""
    import matplotlib.pyplot as plt

    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, squeeze=False, **kwargs)


def dimension_names(keys: Sequence[str] | pd.Series, *, schema: RatingSchema | str | None = None
                    ) -> list[str] | pd.Series:
    """Display names (``"Motion Quality"``) of dimension keys of the rating ``schema`` (None: the
    paper's); unknown keys pass through."""
    name_of = dict(zip(rating.resolve(schema).keys, rating.resolve(schema).names))
    if isinstance(keys, pd.Series):
        return keys.map(lambda k: name_of.get(k, k))
    return [name_of.get(k, k) for k in keys]


def dimension_order(present: Sequence[str] | pd.Series, *, schema: RatingSchema | str | None = None) -> list[str]:
    """The dimension keys in ``present``, in the schema's order (the paper's: ``levels.DIMENSION_KEYS``)."""
    have = set(present)
    return [k for k in rating.resolve(schema).keys if k in have]


def long_format(wide: pd.DataFrame, id_name: str, var_name: str, value_name: str) -> pd.DataFrame:
    """A wide table (index = ids, columns = variables) as long-form rows ``id, variable, value``."""
    return wide.rename_axis(index=id_name, columns=var_name).stack().rename(value_name).reset_index()


def interval_long(table: pd.DataFrame, metrics: Sequence[str], id_vars: Sequence[str]) -> pd.DataFrame:
    """Columns ``m, m_lo, m_hi`` per metric ``m`` as long rows ``*id_vars, metric, value, lo, hi``."""
    parts = [table[list(id_vars)].assign(metric=m, value=table[m].to_numpy(float),
                                         lo=table[f"{m}_lo"].to_numpy(float), hi=table[f"{m}_hi"].to_numpy(float))
             for m in metrics]
    return pd.concat(parts, ignore_index=True)


def bars_with_intervals(ax, data: pd.DataFrame, x: str, y: str, hue: str, lo: str, hi: str,
                        order: Sequence[str], hue_order: Sequence[str], **kwargs: Any):
    """``seaborn.barplot`` of already aggregated values with the given interval columns as error
    bars (no re-bootstrapping of one value per bar). Bars of missing values are left empty and
    intervals with a NaN end are not drawn. Returns ``ax``."""
    import seaborn as sns

    sns.barplot(data=data, x=x, y=y, hue=hue, order=order, hue_order=hue_order, errorbar=None, ax=ax, **kwargs)
    for container, level in zip(ax.containers, hue_order):
        rows = data[data[hue] == level].set_index(x).reindex(order)
        centers = [p.get_x() + p.get_width() / 2 for p in container.patches]
        ok = rows[[y, lo, hi]].notna().all(axis=1).to_numpy()
        if not ok.any():
            continue
        v, l, h = (rows[c].to_numpy(float)[ok] for c in (y, lo, hi))
        ax.errorbar(np.asarray(centers)[ok], v, yerr=np.vstack([v - l, h - v]).clip(min=0), fmt="none",
                    ecolor="0.2", elinewidth=1, capsize=3, gid="interval")
    return ax


def dimension_palette(*, schema: RatingSchema | str | None = None) -> dict[str, Any]:
    """One colour per dimension of the rating ``schema`` (display name -> colour), the same in every figure."""
    import seaborn as sns

    keys = rating.resolve(schema).keys
    return dict(zip(dimension_names(keys, schema=schema), sns.color_palette(THEME["palette"], len(keys))))
