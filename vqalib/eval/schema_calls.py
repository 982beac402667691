"""Calling functions of other layers with a rating schema.

Every function whose behaviour depends on the dimensions or levels takes ``schema=`` (the issue 23
contract). :func:`schema_kwargs` passes it: always when the function takes it, never for the paper's
schema otherwise (so the paper's calls are the ones they always were), and for another schema it
raises naming the function that does not take one yet.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema


def takes_schema(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` has a ``schema`` parameter (or ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "schema" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def schema_kwargs(fn: Callable[..., Any], schema: RatingSchema | str | None) -> dict[str, Any]:
    """``{"schema": schema}`` when ``fn`` takes it; ``{}`` for the paper's schema when it does not; raises
    ``NotImplementedError`` naming ``fn`` for another schema when it does not."""
    schema = rating.resolve(schema)
    if takes_schema(fn):
        return {"schema": schema}
    if schema.is_paper:
        return {}
    raise NotImplementedError(f"{fn.__module__}.{fn.__qualname__} takes no schema= yet, so it cannot work with the "
                              f"{schema.name!r} rating schema (K={schema.n_levels}, dimensions {list(schema.keys)})")
