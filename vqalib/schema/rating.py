"""The rating schema: which dimensions a dataset rates, the K levels the model writes, and how ratings
become training targets and scores go back to the raters' scale. Stated once, saved with the data and
with everything trained or scored on it.

A :class:`RatingSchema` holds

* the **dimensions** (:class:`Dimension`): key, display name (what the model writes before the score),
  the description a prompt may use, the sub-attribute tags, the raw range of the ratings as the data
  gives them and their direction (``higher_is_better=False`` for DMOS);
* the **levels**: K values in ascending order (``1.0, 1.5, ..., 5.0``; ``1..10``; ``1..5`` for words),
  the exact string the model writes for each (``"3.5"``, ``"10"``, ``"excellent"``) and a keyword per
  level (rationales and prompts);
* the **target** rule turning ratings into the training target over the levels (:meth:`RatingSchema.target`):
  ``nearest`` (one-hot at the nearest level; the paper), ``gaussian`` (the normal density with the
  rating mean and standard deviation integrated over each level's interval: DeQA-Score's soft labels),
  ``histogram`` (the raters' own ratings, each put on its nearest level);
* the **benchmark rule** (:attr:`RatingSchema.benchmark_dimension`): which dimension answers a benchmark
  that has one MOS per clip (``None``: the mean over the quality dimensions, the paper's protocol).

Every stage reads K, the dimensions, strings and values from here. Presets (:data:`PRESETS`):
``paper`` (five dimensions x nine levels, the default; its values are those of
:mod:`vqalib.schema.levels`), ``mos9`` (one overall score on the paper's nine-level grid), ``qalign5``
(one overall score in Q-Align's five words bad..excellent = 1..5), ``int10`` (three dimensions, integers
1..10). A user's own schema is a JSON or YAML file (:func:`load_schema`; the format is
:meth:`RatingSchema.to_dict`'s).

Nearest level, everywhere: the level closest to the value, a tie going to the higher level, values
outside clipped to the ends (``paper.snap(3.25) == 3.5``, ``paper.snap(7) == 5.0``). On an evenly spaced
grid whose first level is a multiple of the step this is the paper's "round half up to 0.5" rule.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vqalib.schema import levels as _L

#: The file name a schema is saved under in a dataset folder, a checkpoint folder and next to
#: prediction and score files' manifests.
SCHEMA_FILE = "rating_schema.json"

TARGET_RULES = ("nearest", "gaussian", "histogram")


class SchemaError(ValueError):
    """A schema that cannot work (names the field and the fix)."""


@dataclass(frozen=True)
class Dimension:
    """One rated dimension.

    ``key``: machine key (column names, JSON fields; lower case, ``[a-z0-9_]``); ``name``: display name,
    written by the model before the score (``"Clarity Quality"``); ``description``: what the prompt
    may say about it (empty: the prompt names it only); ``tags``: sub-attribute tags a rater may tick;
    ``raw_range``: ``(lo, hi)`` of the ratings as the data gives them (``(0, 100)`` for LIVE-VQC),
    ``None`` when they are given on the schema's own scale; ``higher_is_better``: ``False`` for DMOS
    (the raw scale is flipped onto the levels); ``quality``: counted in the benchmark mean (Motion
    Amplitude, an amount of motion rather than a quality, is not).
    """

    key: str
    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    raw_range: tuple[float, float] | None = None
    higher_is_better: bool = True
    quality: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "description": self.description, "tags": list(self.tags),
                "raw_range": list(self.raw_range) if self.raw_range is not None else None,
                "higher_is_better": self.higher_is_better, "quality": self.quality}


@dataclass(frozen=True)
class RatingSchema:
    """Dimensions, levels and the rating-to-target rule of a dataset (module docstring).

    Built with :func:`make_schema` (checks everything) or a preset (:func:`get_schema`). Frozen: a
    run's schema does not change under it.
    """

    name: str
    dimensions: tuple[Dimension, ...]
    values: tuple[float, ...]
    strings: tuple[str, ...]
    keywords: tuple[str, ...]
    target_rule: str = "nearest"
    benchmark_dimension: str | None = None
    #: Gaussian targets: the smallest standard deviation used (in level units of the schema's scale);
    #: a clip whose raters all agree (std 0) gets a one-hot target at the nearest level.
    min_std: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    # -- shape ---------------------------------------------------------------------------------
    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dimensions)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @property
    def n_dims(self) -> int:
        return len(self.dimensions)

    @property
    def n_levels(self) -> int:
        """K, the number of levels."""
        return len(self.values)

    @property
    def levels(self) -> np.ndarray:
        """The K level values as a read-only float array."""
        a = np.asarray(self.values, dtype=float)
        a.setflags(write=False)
        return a

    @property
    def lo(self) -> float:
        return float(self.values[0])

    @property
    def hi(self) -> float:
        return float(self.values[-1])

    @property
    def span(self) -> float:
        """``hi - lo``: the largest possible |error| on the schema's scale (GRPO's R_dist is ``span - |pred - gt|``)."""
        return self.hi - self.lo

    @property
    def step(self) -> float | None:
        """The spacing when the levels are evenly spaced, else ``None``."""
        if self.n_levels < 2:
            return None
        d = np.diff(self.levels)
        return float(d[0]) if np.allclose(d, d[0], rtol=0, atol=1e-9) else None

    @property
    def is_paper(self) -> bool:
        return self == PAPER

    @property
    def numeric_strings(self) -> bool:
        """True when every level string is the level's number as written (``"3.5"``, ``"10"``)."""
        return all(_is_number_text(s) and math.isclose(float(s), v) for s, v in zip(self.strings, self.values))

    def dimension(self, key_or_name: str) -> Dimension:
        return self.dimensions[self.keys.index(self.key_of(key_or_name))]

    def key_of(self, key_or_name: str) -> str:
        """The machine key of a dimension given its key or display name (case-insensitive, ``-``/space as ``_``).

        Raises ``ValueError`` naming the valid choices."""
        text = str(key_or_name).strip()
        low = text.lower().replace("-", "_").replace(" ", "_")
        for d in self.dimensions:
            if low == d.key or text.lower() == d.name.lower():
                return d.key
        raise ValueError(f"unknown dimension {key_or_name!r} for the {self.name!r} rating schema; "
                         f"use one of {list(self.keys)} (or the display names {list(self.names)})")

    def name_of(self, key_or_name: str) -> str:
        return self.dimension(key_or_name).name

    @property
    def quality_keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dimensions if d.quality)

    # -- the level grid ------------------------------------------------------------------------
    def snap(self, x):
        """The nearest level of ``x`` (float or array; ties up; clipped to the ends; NaN stays NaN)."""
        arr = np.asarray(x, dtype=float)
        out = self.levels[self._nearest_index(arr)]
        out = np.where(np.isnan(arr), np.nan, out)
        return float(out) if np.ndim(out) == 0 else out

    def _nearest_index(self, arr: np.ndarray) -> np.ndarray:
        step = self.step
        safe = np.where(np.isnan(arr), self.lo, arr)
        if step is not None and abs(self.lo / step - round(self.lo / step)) < 1e-9:
            # the paper's rule, computed as levels.round_half_up does so the default stays bit-identical
            snapped = np.clip(np.floor(safe / step + 0.5) * step, self.lo, self.hi)
            return np.rint((snapped - self.lo) / step).astype(int)
        if self.n_levels == 1:
            return np.zeros(safe.shape, dtype=int)
        mids = (self.levels[1:] + self.levels[:-1]) / 2
        return np.searchsorted(mids, safe, side="right").astype(int)

    def is_on_grid(self, x, atol: float = 1e-9):
        """True where ``x`` is one of the K levels (within ``atol``)."""
        arr = np.asarray(x, dtype=float)
        ok = np.min(np.abs(arr[..., None] - self.levels), axis=-1) <= atol
        return bool(ok) if np.ndim(ok) == 0 else ok

    def index(self, x):
        """Index ``0..K-1`` of a level value (or array of them). Raises ``ValueError`` for other values."""
        arr = np.asarray(x, dtype=float)
        on = np.asarray(self.is_on_grid(arr))
        if not np.all(on):
            bad = np.atleast_1d(arr)[~np.atleast_1d(on)]
            raise ValueError(f"value(s) {bad[:5].tolist()} are not levels of the {self.name!r} schema "
                             f"{list(self.strings)}; snap() them first")
        idx = np.argmin(np.abs(arr[..., None] - self.levels), axis=-1)
        return int(idx) if idx.ndim == 0 else idx

    def string(self, x) -> str:
        """The exact string the model writes for a level value."""
        return self.strings[self.index(x)]

    def keyword(self, x) -> str:
        """The keyword of the level nearest ``x``."""
        return self.keywords[self._nearest_index(np.asarray(x, dtype=float))]

    def value_of_string(self, text: str) -> float | None:
        """The level value of a level string (exact match, case-insensitive for word levels), else ``None``."""
        t = str(text).strip()
        for s, v in zip(self.strings, self.values):
            if t == s or (not _is_number_text(s) and t.lower() == s.lower()):
                return float(v)
        return None

    # -- raw scale <-> levels --------------------------------------------------------------------
    def from_raw(self, raw, dimension: str | None = None):
        """Ratings on a dimension's raw scale mapped linearly onto ``[lo, hi]`` (flipped for DMOS).

        Unchanged when the dimension has no ``raw_range``. Not snapped. ``dimension`` may be omitted
        when the schema has one dimension."""
        return self._linear(raw, dimension, to_levels=True)

    def to_raw(self, x, dimension: str | None = None):
        """The inverse of :meth:`from_raw`: scores on the schema's scale back on the raters' scale."""
        return self._linear(x, dimension, to_levels=False)

    def _linear(self, x, dimension: str | None, to_levels: bool):
        d = self._dim_for_raw(dimension)
        arr = np.asarray(x, dtype=float)
        if d.raw_range is None:
            out = arr
        else:
            (a, b), (c, e) = (d.raw_range, (self.lo, self.hi)) if to_levels else ((self.lo, self.hi), d.raw_range)
            frac = (arr - a) / (b - a)
            out = c + (frac if d.higher_is_better else 1.0 - frac) * (e - c)
        return float(out) if np.ndim(out) == 0 else out

    def _dim_for_raw(self, dimension: str | None) -> Dimension:
        if dimension is None:
            if self.n_dims != 1:
                raise ValueError(f"the {self.name!r} schema has {self.n_dims} dimensions; name the dimension")
            return self.dimensions[0]
        return self.dimension(dimension)

    # -- training targets ------------------------------------------------------------------------
    def target(self, mean: float, std: float | None = None, ratings: Sequence[float] | None = None,
               rule: str | None = None) -> np.ndarray:
        """The training target over the K levels for one (clip, dimension), shape ``[K]``, sums to 1.

        ``mean`` and ``std`` are on the schema's scale (use :meth:`from_raw` first; a std scales by
        ``span / (raw hi - raw lo)``). ``rule`` defaults to the schema's :attr:`target_rule`:

        * ``nearest``: one-hot at :meth:`snap` (``mean``);
        * ``gaussian``: ``N(mean, max(std, min_std))`` integrated over each level's interval, the
          intervals split at the midpoints between adjacent levels and the two end ones open, so no
          mass is lost or renormalised away; ``std`` 0 (or missing) gives the one-hot of ``nearest``;
        * ``histogram``: the share of ``ratings`` whose nearest level is each level.

        Raises ``ValueError`` naming what is missing (``histogram`` without ratings)."""
        rule = rule or self.target_rule
        k = self.n_levels
        if rule == "histogram":
            if ratings is None or len(ratings) == 0:
                raise ValueError("the histogram target needs the raters' ratings of the clip")
            idx = self._nearest_index(np.asarray(ratings, dtype=float))
            out = np.bincount(idx.ravel(), minlength=k).astype(float)
            return out / out.sum()
        if mean is None or not np.isfinite(mean):
            raise ValueError(f"target: the mean rating must be a number, got {mean!r}")
        sd = 0.0 if std is None or not np.isfinite(std) else float(std)
        sd = max(sd, self.min_std) if rule == "gaussian" else 0.0
        if rule not in TARGET_RULES:
            raise ValueError(f"unknown target rule {rule!r}; use one of {TARGET_RULES}")
        if sd <= 0:
            out = np.zeros(k)
            out[int(self._nearest_index(np.asarray(mean, dtype=float)))] = 1.0
            return out
        from scipy.stats import norm

        mids = (self.levels[1:] + self.levels[:-1]) / 2
        cdf = norm.cdf(np.concatenate([[-np.inf], mids, [np.inf]]), loc=float(mean), scale=sd)
        out = np.diff(cdf)
        return out / out.sum()

    # -- comparing -------------------------------------------------------------------------------
    def same_answers(self, other: "RatingSchema") -> bool:
        """True when a model trained on one writes what the other's labels say: the same dimension keys and
        names, level values, strings and keywords, in the same order (the schema's name, raw ranges,
        directions, target rule and benchmark rule may differ)."""
        return (self.keys, self.names, self.values, self.strings, self.keywords) == \
            (other.keys, other.names, other.values, other.strings, other.keywords)

    def same_as(self, other: "RatingSchema") -> bool:
        """Equal but for the schema's ``name`` (a preset and a file stating the same schema are the same)."""
        return self.to_dict() | {"name": ""} == other.to_dict() | {"name": ""}

    def differences(self, other: "RatingSchema", mine: str = "this", theirs: str = "that") -> list[str]:
        """What differs between two schemas, one readable line each (empty when :meth:`same_as`); ``mine`` and
        ``theirs`` name the two sides in the lines."""
        out = []
        for what, a, b in (("dimension keys", self.keys, other.keys), ("dimension names", self.names, other.names),
                           ("level values", self.values, other.values), ("level strings", self.strings, other.strings),
                           ("keywords", self.keywords, other.keywords), ("target rule", self.target_rule, other.target_rule),
                           ("benchmark dimension", self.benchmark_dimension, other.benchmark_dimension),
                           ("min_std", self.min_std, other.min_std)):
            if a != b:
                out.append(f"{what}: {list(a) if isinstance(a, tuple) else a} ({mine}) vs "
                           f"{list(b) if isinstance(b, tuple) else b} ({theirs})")
        if self.keys == other.keys:
            for d, e in zip(self.dimensions, other.dimensions):
                for f in ("raw_range", "higher_is_better", "quality", "description", "tags"):
                    if getattr(d, f) != getattr(e, f):
                        out.append(f"{d.key} {f}: {getattr(d, f)} ({mine}) vs {getattr(e, f)} ({theirs})")
        return out

    # -- saving ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form; :func:`schema_from_dict` reads it back to an equal schema."""
        return {"name": self.name, "dimensions": [d.to_dict() for d in self.dimensions],
                "levels": [{"value": v, "string": s, "keyword": w}
                           for v, s, w in zip(self.values, self.strings, self.keywords)],
                "target_rule": self.target_rule, "benchmark_dimension": self.benchmark_dimension,
                "min_std": self.min_std}

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the canonical JSON: equal schemas, equal fingerprints."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the schema as JSON to ``path`` (a ``.json`` file, or a folder: ``folder/rating_schema.json``)."""
        p = Path(path)
        if p.suffix.lower() != ".json":
            p = p / SCHEMA_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, p)
        return p

    def __repr__(self) -> str:
        return (f"RatingSchema({self.name!r}: {self.n_dims} dimension(s) {list(self.keys)}, "
                f"{self.n_levels} levels {list(self.strings)}, target {self.target_rule!r})")


def _is_number_text(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return s.strip() == s and not any(c in s for c in "eE_ +") and s.lower() not in ("nan", "inf", "infinity")


def _check_key(key: str, where: str) -> None:
    if not key or not all(c.islower() or c.isdigit() or c == "_" for c in key) or key[0].isdigit():
        raise SchemaError(f"{where}: dimension key {key!r} must be lower case letters, digits and '_' "
                          "(not starting with a digit), e.g. 'overall_quality'")


def make_schema(name: str, dimensions: Iterable[Dimension | Mapping[str, Any] | str], values: Sequence[float],
                strings: Sequence[str] | None = None, keywords: Sequence[str] | None = None,
                target_rule: str = "nearest", benchmark_dimension: str | None = None, min_std: float = 0.0,
                where: str = "schema") -> RatingSchema:
    """Build and check a schema. ``dimensions`` are :class:`Dimension` objects, dicts of their fields,
    or display names (the key is derived: ``"Overall Quality"`` -> ``overall_quality``); ``strings``
    default to the values as written (``3.5`` -> ``"3.5"``, ``4.0`` -> ``"4.0"`` on a 0.5 grid, ``4`` on
    an integer grid); ``keywords`` default to the strings.

    Raises :class:`SchemaError` naming the field: fewer than 2 levels, values not strictly ascending,
    duplicate or empty strings, strings with a line break or ``:``, a numeric string that does not
    read back as its value, duplicate keys or names, an unknown target rule, a bad raw range."""
    dims = []
    for i, d in enumerate(dimensions):
        if isinstance(d, str):
            d = Dimension(key=d.strip().lower().replace(" ", "_").replace("-", "_"), name=d.strip())
        elif isinstance(d, Mapping):
            known = {"key", "name", "description", "tags", "raw_range", "higher_is_better", "quality"}
            unknown = sorted(set(d) - known)
            if unknown:
                raise SchemaError(f"{where}: dimensions[{i}] has unknown field(s) {unknown}; known: {sorted(known)}")
            if "name" not in d:
                raise SchemaError(f"{where}: dimensions[{i}] needs a 'name' (what the model writes before the score)")
            rr = d.get("raw_range")
            d = Dimension(key=str(d.get("key") or str(d["name"]).strip().lower().replace(" ", "_").replace("-", "_")),
                          name=str(d["name"]).strip(), description=str(d.get("description") or ""),
                          tags=tuple(d.get("tags") or ()), raw_range=None if rr is None else (float(rr[0]), float(rr[1])),
                          higher_is_better=bool(d.get("higher_is_better", True)), quality=bool(d.get("quality", True)))
        _check_key(d.key, f"{where}: dimensions[{i}]")
        if not d.name or any(c in d.name for c in ":\n"):
            raise SchemaError(f"{where}: dimensions[{i}] name {d.name!r} must be non-empty, without ':' or a line break")
        if d.raw_range is not None and not (np.isfinite(d.raw_range).all() and d.raw_range[0] < d.raw_range[1]):
            raise SchemaError(f"{where}: dimension {d.key!r} raw_range {d.raw_range} must be (lo, hi) with lo < hi; "
                              "for DMOS keep lo < hi and set higher_is_better: false")
        dims.append(d)
    if not dims:
        raise SchemaError(f"{where}: at least one dimension is needed")
    for attr in ("key", "name"):
        seen = [getattr(d, attr).lower() for d in dims]
        dup = sorted({s for s in seen if seen.count(s) > 1})
        if dup:
            raise SchemaError(f"{where}: duplicate dimension {attr}(s) {dup}")
    vals = tuple(float(v) for v in values)
    if len(vals) < 2:
        raise SchemaError(f"{where}: at least 2 levels are needed, got {len(vals)}")
    if not all(np.isfinite(vals)) or any(b <= a for a, b in zip(vals, vals[1:])):
        raise SchemaError(f"{where}: level values {list(vals)} must be finite and strictly ascending")
    if strings is None:
        integral = all(float(v).is_integer() for v in vals)
        strings = [str(int(v)) if integral else f"{v:g}" if len(f"{v:g}") >= len(f"{v:.1f}") else f"{v:.1f}" for v in vals]
    strs = tuple(str(s) for s in strings)
    if len(strs) != len(vals):
        raise SchemaError(f"{where}: {len(strs)} level strings for {len(vals)} values")
    for s, v in zip(strs, vals):
        if not s or s != s.strip() or any(c in s for c in ":\n"):
            raise SchemaError(f"{where}: level string {s!r} must be non-empty, without surrounding spaces, ':' or a line break")
        if _is_number_text(s) and not math.isclose(float(s), v):
            raise SchemaError(f"{where}: level string {s!r} reads as {float(s)} but its value is {v}")
    low = [s.lower() for s in strs]
    dup = sorted({s for s in low if low.count(s) > 1})
    if dup:
        raise SchemaError(f"{where}: duplicate level string(s) {dup}")
    kws = tuple(str(k) for k in (keywords if keywords is not None else strs))
    if len(kws) != len(vals):
        raise SchemaError(f"{where}: {len(kws)} keywords for {len(vals)} levels")
    if target_rule not in TARGET_RULES:
        raise SchemaError(f"{where}: target_rule {target_rule!r}; use one of {TARGET_RULES}")
    keys = [d.key for d in dims]
    if benchmark_dimension is not None and benchmark_dimension not in keys:
        raise SchemaError(f"{where}: benchmark_dimension {benchmark_dimension!r} is not one of {keys}")
    if not (min_std >= 0):
        raise SchemaError(f"{where}: min_std must be >= 0")
    return RatingSchema(name=str(name), dimensions=tuple(dims), values=vals, strings=strs, keywords=kws,
                        target_rule=target_rule, benchmark_dimension=benchmark_dimension, min_std=float(min_std))


def schema_from_dict(data: Mapping[str, Any], where: str = "schema") -> RatingSchema:
    """Read :meth:`RatingSchema.to_dict`'s form (also hand-written: ``levels`` may be a list of values,
    with optional ``strings`` and ``keywords`` lists beside it). Raises :class:`SchemaError` naming the field."""
    if not isinstance(data, Mapping):
        raise SchemaError(f"{where}: expected a mapping with 'name', 'dimensions' and 'levels', got {type(data).__name__}")
    if "preset" in data:
        base = get_schema(str(data["preset"]))
        merged = {**base.to_dict(), **{k: v for k, v in data.items() if k != "preset"}}
        return schema_from_dict(merged, where)
    missing = [k for k in ("dimensions", "levels") if k not in data]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {missing}; see vqalib.schema.rating.RatingSchema.to_dict")
    lv = list(data["levels"])
    if lv and isinstance(lv[0], Mapping):
        values = [x["value"] for x in lv]
        strings = [x.get("string") for x in lv]
        strings = None if all(s is None for s in strings) else [s if s is not None else repr(v) for s, v in zip(strings, values)]
        keywords = [x.get("keyword") for x in lv]
        keywords = None if all(k is None for k in keywords) else keywords
    else:
        values, strings, keywords = lv, data.get("strings"), data.get("keywords")
    known = {"name", "dimensions", "levels", "strings", "keywords", "target_rule", "benchmark_dimension", "min_std"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    return make_schema(str(data.get("name") or "custom"), data["dimensions"], values, strings, keywords,
                       target_rule=str(data.get("target_rule") or "nearest"),
                       benchmark_dimension=data.get("benchmark_dimension"), min_std=float(data.get("min_std") or 0.0),
                       where=where)


def load_schema(path: str | os.PathLike) -> RatingSchema:
    """Read a schema from a JSON or YAML file, or from ``folder/rating_schema.json``.

    Raises ``FileNotFoundError`` naming the path, :class:`SchemaError` naming the file and field."""
    p = Path(path)
    if p.is_dir():
        p = p / SCHEMA_FILE
    if not p.is_file():
        raise FileNotFoundError(f"no rating schema at {p}: give a .json/.yaml schema file, a folder holding "
                                f"{SCHEMA_FILE}, or a preset name ({list(PRESETS)})")
    text = p.read_text()
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SchemaError(f"{p}: not valid YAML ({e})") from e
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{p}: not valid JSON ({e})") from e
    return schema_from_dict(data, where=str(p))


def get_schema(spec: "RatingSchema | str | os.PathLike | Mapping[str, Any] | None" = None) -> RatingSchema:
    """A schema from a preset name, a file or folder path, a dict, a schema (returned as is) or
    ``None`` (the paper's). Raises naming the presets when a name is neither a preset nor a file."""
    if spec is None:
        return PAPER
    if isinstance(spec, RatingSchema):
        return spec
    if isinstance(spec, Mapping):
        return schema_from_dict(spec)
    s = str(spec)
    if s in PRESETS:
        return PRESETS[s]
    if Path(s).exists():
        return load_schema(s)
    import difflib

    close = difflib.get_close_matches(Path(s).name, list(PRESETS), n=1)
    raise ValueError(f"unknown rating schema {Path(s).name!r}: no preset of that name"
                     + (f" (did you mean {close[0]!r}?)" if close else "") + f" and no file at {s}; use a preset "
                     f"({list(PRESETS)}) or the path of a .json/.yaml file or of a folder holding {SCHEMA_FILE}")


def resolve(schema: "RatingSchema | str | None") -> RatingSchema:
    """What every ``schema=None`` keyword argument goes through: ``None`` is the paper's schema."""
    return get_schema(schema)


def schema_of_folder(folder: str | os.PathLike) -> RatingSchema:
    """The schema saved in a dataset or checkpoint folder; the paper's when the folder has none
    (data and checkpoints written before schemas were saved)."""
    p = Path(folder) / SCHEMA_FILE
    return load_schema(p) if p.is_file() else PAPER


# ------------------------------------------------------------------------------------------------
# presets

PAPER = make_schema(
    "paper",
    [Dimension(key=k, name=n, tags=_L.TAGS[k], quality=(k != "motion_amplitude"))
     for k, n in zip(_L.DIMENSION_KEYS, _L.DIMENSIONS)],
    values=[float(v) for v in _L.LEVELS], strings=_L.LEVEL_STRINGS,
    keywords=[_L.KEYWORDS[float(v)] for v in _L.LEVELS],
)

_OVERALL = Dimension(key="overall_quality", name="Overall Quality",
                     description="the overall perceptual quality of the video")

#: One overall score on the paper's nine-level grid.
MOS9 = make_schema("mos9", [_OVERALL], values=PAPER.values, strings=PAPER.strings, keywords=PAPER.keywords,
                   benchmark_dimension="overall_quality")

#: One overall score in Q-Align's five rating words (Wu et al., 2024: bad, poor, fair, good, excellent,
#: weighted 1..5).
QALIGN5 = make_schema("qalign5", [_OVERALL], values=[1, 2, 3, 4, 5],
                      strings=["bad", "poor", "fair", "good", "excellent"],
                      keywords=["Bad", "Poor", "Fair", "Good", "Excellent"], benchmark_dimension="overall_quality")

#: Three dimensions rated with integers 1..10 (VideoScore-style data; "1" is a prefix of "10").
INT10 = make_schema("int10", [Dimension("visual_quality", "Visual Quality"),
                              Dimension("temporal_consistency", "Temporal Consistency"),
                              Dimension("text_alignment", "Text Alignment", quality=False)],
                    values=list(range(1, 11)))

PRESETS: dict[str, RatingSchema] = {s.name: s for s in (PAPER, MOS9, QALIGN5, INT10)}
