"""What notebooks 04-06 show after training: predictions files for notebook 07, loss / reward
curves, per-dimension changes with bootstrap intervals, and ASO's pi_ref -> pi* -> pi_theta.

Pure functions over checkpoints and logs; the notebooks only choose what to draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from vqalib.schema import rating
from vqalib.schema.rating import RatingSchema
from vqalib.core.runs import resolve_path
from vqalib.train.common import CommonConfig
from vqalib.core.runs import read_manifest


def write_stage_predictions(run_dir: str, name: str, checkpoint: str | Path, cfg: CommonConfig, split: str = "test",
                            limit: int = 0, max_new_tokens: int = 96, batch_size: int = 16,
                            progress: bool = True) -> tuple[Path, pd.DataFrame]:
    """Predict ``split`` with a trained checkpoint (or ``"tiny"`` / a hub id, for the untrained base
    model) through :func:`vqalib.eval.predict.predict_to_file`, with the data, rating schema, sampling settings
    and instruction of ``cfg``, into ``RUN_DIR/predictions/<name>.jsonl`` (its manifest also holds the
    checkpoint's training manifest). Returns (path, rows as written)."""
    from vqalib.eval.predict import predict_to_file
    from vqalib.eval.predictions_file import read_predictions
    from vqalib.train.common import sampling_config
    from vqalib.train.common import resolve_device

    ckpt = resolve_path(checkpoint)
    path = predict_to_file(
        resolve_path(run_dir) / "predictions" / f"{name}.jsonl", model=str(checkpoint), data_dir=cfg.data_dir,
        sample_size=cfg.sample_size, seed=cfg.data_seed, split=split, device=resolve_device(cfg.device), max_videos=limit,
        sampling=sampling_config(cfg),
        max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress, instruction=cfg.instruction or None,
        extra_manifest={"stage": name, "training": read_manifest(ckpt) if ckpt.exists() else {}},
        schema=getattr(cfg, "rating_schema", "") or None)
    rows, _ = read_predictions(path)
    return path, rows


def log_frame(log_history: Sequence[dict[str, Any]], keys: Sequence[str] = ("loss",)) -> pd.DataFrame:
    """The logged training rows (step + the requested keys that were logged) as a DataFrame."""
    rows = [{"step": r["step"], **{k: r[k] for k in keys if k in r}} for r in log_history
            if "step" in r and any(k in r for k in keys)]
    return pd.DataFrame(rows)


def plot_curves(frame: pd.DataFrame, keys: Sequence[str], title: str = "", x: str = "step", hue: str | None = None,
                errorbar: Any = ("ci", 95), xlabel: str = "", units: str | None = None, col_wrap: int = 0,
                hue_order: Sequence[str] | None = None, ylabel: str | dict[str, str] = ""):
    """One ``seaborn.lineplot`` panel per key (the long form ``x, [hue], [units], metric, value`` of
    ``frame``) against ``x`` (default the optimisation step; e.g. ``"seconds"`` for wall clock).

    ``hue``: a column to compare (``"method"``, ``"seed"``); several rows with the same ``x`` and
    ``hue`` (seeds) are drawn as their mean with a ``errorbar`` band (seaborn's bootstrap 95 % CI
    by default; ``("pi", 100)`` for the range; ``None`` for no band). ``units``: a column (``"seed"``)
    whose groups are drawn as separate lines instead, one dash pattern each (no aggregation: for x values that differ
    between seeds, such as the step an evaluation happened at). ``col_wrap``: panels per row (0: one
    row). ``ylabel``: one label for every panel, or a label per key. Keys missing from ``frame`` are
    skipped.
    """
    import seaborn as sns

    from vqalib.eval import plots

    keys = [k for k in keys if k in frame.columns]
    ids = list(dict.fromkeys([x] + ([hue] if hue else []) + ([units] if units else [])))
    long = frame.melt(id_vars=ids, value_vars=keys, var_name="metric", value_name="value").dropna(subset=["value"])
    n = max(len(keys), 1)
    ncols = min(n, col_wrap) if col_wrap else n
    nrows = math.ceil(n / ncols)
    with plots.theme():
        fig, axes = plots.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.1 * nrows))
        flat = list(axes.ravel())
        for i, (ax, k) in enumerate(zip(flat, keys)):
            # units (seeds) drawn as separate lines get a dash pattern each, so crossing lines stay apart
            extra = {"units": units, "estimator": None, "style": units} if units else {"errorbar": errorbar}
            sns.lineplot(data=long[long["metric"] == k], x=x, y="value", hue=hue, hue_order=hue_order,
                         marker="." if not hue or units else None, legend=bool(hue) and i == len(keys) - 1, ax=ax,
                         **extra)
            ax.set(title=k, xlabel=xlabel or x, ylabel=ylabel.get(k, "") if isinstance(ylabel, dict) else ylabel)
        for ax in flat[len(keys):]:
            ax.set_visible(False)
        last = flat[len(keys) - 1] if keys else None
        if hue and last is not None and last.get_legend() is not None:
            if len(flat) > len(keys):  # an empty grid cell: the legend goes there, the columns keep one width
                legend = last.get_legend()
                spare = flat[len(keys)]
                spare.set_visible(True)
                spare.axis("off")
                spare.legend(legend.legend_handles, [t.get_text() for t in legend.get_texts()],
                             title=legend.get_title().get_text(), loc="center left", frameon=False)
                legend.remove()
            else:
                sns.move_legend(last, "upper left", bbox_to_anchor=(1.02, 1))
        if title:
            fig.suptitle(title)
    return fig


def compare_stages(preds: dict[str, pd.DataFrame], readout: str = "parsed_score", n_boot: int = 300,
                   seed: int = 0, metrics: Sequence[str] = ("srcc", "acc", "mae")) -> pd.DataFrame:
    """Per dimension and metric, each model's value with its 95 % bootstrap interval (``vqalib.eval.tables``)."""
    from vqalib.eval.tables import metrics_long

    long = metrics_long(preds, readout, metrics=list(metrics), n_boot=n_boot, seed=seed)
    return long[["model", "dimension", "metric", "value", "ci_low", "ci_high", "n", "n_failed", "reason"]]


def paired_change(a: pd.DataFrame, b: pd.DataFrame, readout: str = "parsed_score", n_boot: int = 300,
                  seed: int = 0, *, schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """SRCC(b) - SRCC(a) per dimension of the rating schema (None: the one the frames carry, else the
    paper's) on the clips both scored, with a paired bootstrap 95 % interval (the same resampled clips for
    both models), so "what changed" is read with its uncertainty."""
    from scipy.stats import spearmanr

    from vqalib.eval.predictions_file import schema_of_frames

    schema = schema_of_frames([a, b], schema)
    rng = np.random.default_rng(seed)
    rows = []
    for dim in schema.keys:
        x = a[a["dimension"] == dim].set_index("video_id")
        y = b[b["dimension"] == dim].set_index("video_id")
        common = x.index.intersection(y.index)
        x, y = x.loc[common], y.loc[common]
        ok = (x[readout].notna() & y[readout].notna() & x["target"].notna()).to_numpy()
        t, px, py = x["target"].to_numpy(float)[ok], x[readout].to_numpy(float)[ok], y[readout].to_numpy(float)[ok]

        def srcc(tt, pp):
            if len(tt) < 3 or np.ptp(pp) == 0 or np.ptp(tt) == 0:
                return np.nan  # undefined: too few clips or a constant prediction
            return spearmanr(tt, pp)[0]

        delta = srcc(t, py) - srcc(t, px)
        boots = []
        for _ in range(n_boot if len(t) > 3 else 0):
            i = rng.integers(0, len(t), len(t))
            boots.append(srcc(t[i], py[i]) - srcc(t[i], px[i]))
        boots = np.asarray([v for v in boots if np.isfinite(v)])
        lo, hi = (np.percentile(boots, [2.5, 97.5]) if len(boots) else (np.nan, np.nan))
        rows.append({"dimension": dim, "srcc_before": srcc(t, px), "srcc_after": srcc(t, py), "delta": delta,
                     "ci_low": lo, "ci_high": hi, "n": int(ok.sum())})
    return pd.DataFrame(rows)


def load_pi_ref(path: str | Path) -> dict[str, torch.Tensor]:
    """The cached pi_ref of an ASO run: ``{video_id: log-probs [5, 9]}``."""
    return torch.load(resolve_path(path), weights_only=True)["pi_ref"]


@torch.no_grad()
def level_distributions(checkpoint: str | Path, cfg: Any, video_ids: Sequence[str],
                        batch_size: int = 32) -> dict[str, np.ndarray]:
    """π_θ of a trained checkpoint over the 9 levels at each dimension's score position, for the
    training clips ``video_ids`` of ``cfg``'s data: ``{video_id: probabilities [5, 9]}``.

    Read exactly as π_ref is cached (``aso_trainer.level_logprobs`` with the reference answer
    teacher-forced under ``cfg.rationale`` and ``cfg.instruction``, no augmentation), renormalised
    over the 9 levels. An id that is not a clip of ``cfg.split`` raises ``KeyError`` naming it."""
    from vqalib.model.loading import load_model_and_processor
    from vqalib.train.aso_trainer import level_logprobs
    from vqalib.train.common import sampling_config
    from vqalib.train.collator import FrameCache, VideoCollator, examples_for

    model, processor = load_model_and_processor(str(resolve_path(checkpoint)))
    model.eval()
    loaded = examples_for(cfg)
    schema = getattr(loaded, "schema", None)  # the dataset's rating schema (its D dimensions, K levels)
    examples = {e.video_id: e for e in loaded}
    missing = [v for v in video_ids if v not in examples]
    if missing:
        raise KeyError(f"clips {missing[:3]} are not in the {cfg.split!r} split of {cfg.data_dir or cfg.sample_size!r}")
    collator = VideoCollator(processor, FrameCache(sampling_config(cfg)), rationale=cfg.rationale,
                             instruction=cfg.instruction, schema=schema)
    out: dict[str, np.ndarray] = {}
    ids = list(video_ids)
    for i in range(0, len(ids), batch_size):
        chosen = [examples[v] for v in ids[i:i + batch_size]]
        logp_theta, _ = level_logprobs(model, collator(chosen), processor.tokenizer,
                                       schema=schema)
        out.update({ex.video_id: logp_theta[j].double().exp().numpy() for j, ex in enumerate(chosen)})
    return out


def aso_distributions(pi_ref_path: str | Path, aso_checkpoint: str | Path, cfg: Any, video_ids: Sequence[str],
                      lam: float, beta: float) -> dict[str, dict[str, np.ndarray]]:
    """For a few training clips: pi_ref (cached SFT distribution), pi* (closed form) and pi_theta
    (the trained ASO model, same teacher-forced answer, :func:`level_distributions`) per dimension,
    as probabilities [D, K] of the data's rating schema (also under ``"schema"``)."""
    from vqalib.method.aso import optimal_policy, reward_abs
    from vqalib.train.collator import examples_for

    cached = load_pi_ref(pi_ref_path)
    loaded = examples_for(cfg)
    schema = getattr(loaded, "schema", None)
    examples = {e.video_id: e for e in loaded}
    theta = level_distributions(aso_checkpoint, cfg, video_ids)
    tkw = {"schema": schema} if schema is not None else {}
    out = {}
    for vid in video_ids:
        ex = examples[vid]
        lr = cached[vid].double()
        reward = reward_abs(torch.tensor(ex.targets(**tkw), dtype=torch.float64), beta, schema=schema)
        target = optimal_policy(lr, reward, lam, schema=schema)
        out[vid] = {"pi_ref": lr.exp().numpy(), "pi_star": target.numpy(), "pi_theta": theta[vid],
                    "target": np.asarray(ex.targets(**tkw)), "schema": rating.resolve(schema)}
    return out


def plot_aso_distributions(dists: dict[str, dict[str, np.ndarray]], dims: Sequence[str] | None = None, *,
                           schema: RatingSchema | str | None = None):
    """Grid of ``seaborn.barplot`` panels: rows = clips, columns = dimensions (default: every dimension of
    the rating ``schema``; None: the one :func:`aso_distributions` recorded, else the paper's); probability per level with ``hue`` = pi_ref / pi* / pi_theta
    (long form ``clip, dimension, level, policy, probability``), the human level marked by a dashed line."""
    import seaborn as sns

    from vqalib.eval import plots

    if schema is None and dists:
        schema = next(iter(dists.values())).get("schema")
    schema = rating.resolve(schema)
    keys, strings = schema.keys, schema.strings
    dims = list(keys) if dims is None else list(dims)
    names = {"pi_ref": "π_ref (SFT)", "pi_star": "π* (target)", "pi_theta": "π_θ (ASO)"}
    long = pd.DataFrame([{"clip": vid, "dimension": dim, "level": strings[i], "policy": names[key],
                          "probability": float(d[key][keys.index(dim)][i])}
                         for vid, d in dists.items() for dim in dims for key in names for i in range(schema.n_levels)])
    palette = dict(zip(names.values(), ("0.6", "C1", "C0")))
    with plots.theme():
        n = len(dists)
        fig, axes = plots.subplots(n, len(dims), figsize=(3.1 * len(dims), 2.3 * n + 0.4), sharey=True)
        for r, (vid, d) in enumerate(dists.items()):
            for c, dim in enumerate(dims):
                ax = axes[r][c]
                sub = long[(long["clip"] == vid) & (long["dimension"] == dim)]
                sns.barplot(data=sub, x="level", y="probability", hue="policy", order=list(strings),
                            hue_order=list(names.values()), palette=palette, errorbar=None, legend=r == c == 0, ax=ax)
                target = float(d["target"][keys.index(dim)])
                ax.axvline(int(schema.index(schema.snap(target))), color="k", ls="--", lw=1,
                           label="human level" if r == c == 0 else None)
                ax.set(title=schema.name_of(dim) if r == 0 else "", xlabel="level (score points)" if r == n - 1 else "",
                       ylabel=f"{vid}\nprobability" if c == 0 else "")
                ax.tick_params(axis="x", rotation=90)
        handles, labels = axes[0][0].get_legend_handles_labels()
        axes[0][0].get_legend().remove()
        fig.legend(handles, labels, loc="outside right upper")
    return fig


# ------------------------------------------------------------------ the paper's limitation (Appendix E)

#: π_ref(s*) below which a (clip, dimension) pair counts as "π_ref rules the human level out".
LOW_MASS_THRESHOLDS: tuple[float, ...] = (1e-3, 1e-2)
REF, STAR0 = "π_ref", "π* (ε=0)"


def star_name(eps: float) -> str:
    """Column / legend name of π* with the floor ``eps``: ``"π* (ε=0.05)"``."""
    return f"π* (ε={eps:g})"


def label_mass_table(pi_ref: dict[str, torch.Tensor], targets: dict[str, Sequence[float]], eps: float,
                     lam: float = 1.0, beta: float = 1.0,
                     pi_theta: dict[str, dict[str, np.ndarray]] | None = None, *,
                     schema: RatingSchema | str | None = None) -> pd.DataFrame:
    """One row per (clip, dimension) of the cached π_ref: the probability each distribution gives the
    human level s*, sorted from the smallest π_ref(s*) up (ties: clip id, then dimension order).

    ``pi_ref``: ``{video_id: log π_ref [5, 9]}`` (:func:`load_pi_ref`); ``targets``: ``{video_id: the
    five labels s* on the 0.5 grid}``, which must hold every clip of ``pi_ref`` (a missing one raises
    ``KeyError`` naming it; clips without π_ref are not part of the ASO training set and are ignored);
    ``eps``: the floor of :func:`vqalib.method.aso.as_log_probs` (0 < eps < 1/9); ``pi_theta``: optional
    ``{model name: {video_id: probabilities [5, 9]}}`` (:func:`level_distributions`), one column per
    model, NaN on clips it was not read on.
    Columns: ``video_id, dimension, label, π_ref, π* (ε=0), π* (ε=eps)`` (probabilities of s*, π*
    by paper Eq. 8 with R = −β|s − s*|) and the model names. ``schema``: the rating schema (its D
    dimensions and K levels: π_ref is ``[D, K]``, ``0 < eps < 1/K``; None: the paper's 5 x 9)."""
    from vqalib.method.aso import label_mass, optimal_policy, reward_abs

    schema = rating.resolve(schema)
    k_levels, dim_keys = schema.n_levels, list(schema.keys)
    if not 0 < eps < 1 / k_levels:
        raise ValueError(f"eps={eps}: the floor compared with the paper's π* must satisfy 0 < eps < 1/{k_levels}")
    ids = sorted(pi_ref)
    missing = [v for v in ids if v not in targets]
    if missing:
        raise KeyError(f"clips {missing[:3]} ({len(missing)} in all) have a cached π_ref but no labels; "
                       f"pass the labels of the split π_ref was cached on")
    lp = torch.stack([pi_ref[v].double() for v in ids])  # [N, 5, 9]
    s_star = torch.tensor([list(targets[v]) for v in ids], dtype=torch.float64)  # [N, 5]
    R = reward_abs(s_star, beta, schema=schema)
    mass_kw = {"schema": schema}
    pol_kw = {"schema": schema}
    cols = {REF: label_mass(lp.exp(), s_star, **mass_kw),
            STAR0: label_mass(optimal_policy(lp, R, lam, **pol_kw), s_star, **mass_kw),
            star_name(eps): label_mass(optimal_policy(lp, R, lam, eps=eps, **pol_kw), s_star, **mass_kw)}
    n = len(dim_keys)
    frame = pd.DataFrame({"video_id": np.repeat(ids, n), "dimension": dim_keys * len(ids),
                          "label": s_star.reshape(-1).numpy(), **{k: v.reshape(-1).numpy() for k, v in cols.items()}})
    for name, dists in (pi_theta or {}).items():
        have = [v for v in ids if v in dists]
        p = torch.as_tensor(np.stack([dists[v] for v in have])) if have else torch.zeros(0, n, k_levels)
        got = dict(zip(have, label_mass(p, s_star[[ids.index(v) for v in have]], **mass_kw).numpy())) if have else {}
        frame[name] = np.concatenate([got[v] if v in got else np.full(n, np.nan) for v in ids])
    frame["_dim"] = frame["dimension"].map(dim_keys.index)
    return frame.sort_values([REF, "video_id", "_dim"], kind="stable").drop(columns="_dim").reset_index(drop=True)


def low_mass_counts(table: pd.DataFrame, thresholds: Sequence[float] = LOW_MASS_THRESHOLDS) -> pd.DataFrame:
    """Per threshold t: how many (clip, dimension) pairs of ``table`` (:func:`label_mass_table`) have
    π_ref(s*) < t (``n_pairs`` of ``n_total``) and, over those pairs, the mean probability of s*
    under every distribution (one column per distribution column of ``table``, same name; NaN where
    no pair is below t or a model was not read there; ``n read: <model>`` counts the pairs a model
    was read on)."""
    dists = [c for c in table.columns if c not in {"video_id", "dimension", "label"}]
    rows = []
    for t in thresholds:
        low = table[table[REF] < t]
        row: dict[str, Any] = {"threshold": t, "n_pairs": len(low), "n_total": len(table)}
        for c in dists:
            vals = low[c].dropna()
            row[c] = float(vals.mean()) if len(vals) else float("nan")
        for c in dists:
            if c != REF and not c.startswith("π* "):
                row[f"n read: {c}"] = int(low[c].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class ZeroMassCase:
    """What :func:`zero_mass_case` found: ``table`` (every pair, :func:`label_mass_table`), ``counts``
    (:func:`low_mass_counts`), ``case`` (the chosen pair's distributions in long form: ``level,
    distribution, probability``), the chosen ``video_id``, ``dimension``, ``label`` and ``eps``."""

    table: pd.DataFrame
    counts: pd.DataFrame
    case: pd.DataFrame
    video_id: str
    dimension: str
    label: float
    eps: float
    thresholds: tuple[float, ...]
    lam: float = 1.0
    beta: float = 1.0
    schema: RatingSchema = rating.PAPER

    def at_label(self) -> dict[str, float]:
        """The probability of the human level under each distribution, for the chosen pair."""
        row = self.case[self.case["level"] == self.schema.string(self.label)]
        return dict(zip(row["distribution"], row["probability"].astype(float)))

    def verdict(self) -> str:
        """The finding in words, every number taken from ``case`` and ``counts``."""
        p = self.at_label()
        models = [k for k in p if k not in {REF, STAR0, star_name(self.eps)}]
        lo = float(min(self.thresholds))
        n_low = int(self.counts.loc[self.counts["threshold"] == lo, "n_pairs"].iloc[0])
        total = int(self.counts["n_total"].iloc[0])
        far = max(self.label - self.schema.lo, self.schema.hi - self.label)  # the largest |s - s*|
        head = (f"{n_low} of {total} (clip, dimension) pairs of the training set have π_ref(s*) < {lo:g}. "
                if n_low else
                f"No (clip, dimension) pair of the {total} in the training set has π_ref(s*) < {lo:g}, so this "
                f"model shows the limitation only in its weak form. ")
        text = (head + f"On the pair with the smallest π_ref(s*) (clip {self.video_id}, {self.schema.name_of(self.dimension)}, "
                f"human level {self.label:.1f}) π_ref gives the human level {p[REF]:.1e} and π* gives it {p[STAR0]:.1e} "
                + (f"({p[STAR0] / p[REF]:.1f}× π_ref; re-weighting by exp(R/λ) raises no level more than "
                   f"exp(β·{far:g}/λ) = {math.exp(self.beta * far / self.lam):.0f}×)" if p[REF] > 0
                   else "(exactly 0: re-weighting by exp(R/λ) cannot create mass)"))
        text += "".join(f"; {m} gives it {p[m]:.1e}" for m in models)
        text += f"; with the floor ε={self.eps:g}, π* gives it {p[star_name(self.eps)]:.2f}."
        for r in self.counts.sort_values("threshold").to_dict("records"):
            if not r["n_pairs"]:
                continue
            means = [(c, r[c]) for c in self.table.columns
                     if c not in {"video_id", "dimension", "label"} and np.isfinite(r.get(c, np.nan))]
            text += (f" Over the {r['n_pairs']} pairs with π_ref(s*) < {r['threshold']:g}, the mean probability of "
                     f"the human level is " + ", ".join(f"{v:.1e} under {c}" for c, v in means) + ".")
        return text


def zero_mass_case(pi_ref_path: str | Path, cfg: Any, eps: float, checkpoints: dict[str, str | Path] | None = None,
                   lam: float = 1.0, beta: float = 1.0, thresholds: Sequence[float] = LOW_MASS_THRESHOLDS,
                   max_read: int = 256, *, schema: RatingSchema | str | None = None) -> ZeroMassCase:
    """The paper's limitation (Appendix E) on a real run: the training pair where the cached π_ref puts
    the least mass on the human level s*, with π_ref, π* (ε=0), π* (ε=``eps``) and π_θ of each
    checkpoint in ``checkpoints`` (``{legend name: folder}``, read by :func:`level_distributions`)
    there, plus the counts of :func:`low_mass_counts` over the whole cached training set.

    ``cfg``: the ASO config whose data, split, sampling, rationale and instruction π_ref was cached
    with. The checkpoints are read on the chosen clip and on the clips of the pairs below
    ``max(thresholds)``, lowest π_ref(s*) first, at most ``max_read`` clips (``n_read`` in
    ``counts`` says how many pairs that covered). λ, β: those of the run (paper: 1, 1). ``schema``: the rating
    schema of the run's data (None: the one the data folder holds, the paper's without one)."""
    from vqalib.method.aso import optimal_policy, reward_abs
    from vqalib.train.collator import examples_for

    loaded = examples_for(cfg)
    schema = rating.resolve(schema if schema is not None else getattr(loaded, "schema", None))
    pi_ref = load_pi_ref(pi_ref_path)
    targets = {e.video_id: (e.targets() if schema.is_paper else e.targets(schema)) for e in loaded}
    table = label_mass_table(pi_ref, targets, eps, lam, beta, schema=schema)
    first = table.iloc[0]
    vid, dim, label = str(first["video_id"]), str(first["dimension"]), float(first["label"])
    low = table[table[REF] < max(thresholds)]
    read = list(dict.fromkeys([vid, *low["video_id"]]))[:max(1, max_read)]
    theta = {name: level_distributions(path, cfg, read) for name, path in (checkpoints or {}).items()}
    table = label_mass_table(pi_ref, targets, eps, lam, beta, theta, schema=schema)
    d = schema.keys.index(dim)
    lp = pi_ref[vid][d].double()
    R = reward_abs(label, beta, schema=schema)
    pol_kw = {"schema": schema}
    dists = {REF: lp.exp().numpy(), STAR0: optimal_policy(lp, R, lam, **pol_kw).numpy(),
             **{name: th[vid][d] for name, th in theta.items()},
             star_name(eps): optimal_policy(lp, R, lam, eps=eps, **pol_kw).numpy()}
    case = pd.DataFrame([{"level": schema.strings[i], "distribution": name, "probability": float(p[i])}
                         for name, p in dists.items() for i in range(schema.n_levels)])
    return ZeroMassCase(table, low_mass_counts(table, thresholds), case, vid, dim, label, eps, tuple(thresholds),
                        lam, beta, schema)


def plot_zero_mass_case(zm: ZeroMassCase):
    """The chosen pair of :func:`zero_mass_case`: probability per level with ``hue`` = distribution,
    on a linear axis (left, ``seaborn.barplot``) and a log axis (right, ``seaborn.pointplot``, where
    near-zero masses stay visible); the human level marked by a dashed line."""
    import seaborn as sns

    from vqalib.eval import plots

    order = list(dict.fromkeys(zm.case["distribution"]))
    c = sns.color_palette(plots.THEME["palette"])  # explicit colours: bars and points must match
    palette = dict(zip(order, [(0.6, 0.6, 0.6), c[1], *[c[i] for i in (0, 2, 4, 5)][:len(order) - 3], c[3]]))
    k = zm.schema.index(zm.label)
    floor = max(float(zm.case["probability"][zm.case["probability"] > 0].min()) / 3, 1e-12)
    logged = zm.case.assign(probability=zm.case["probability"].clip(lower=floor))
    with plots.theme():
        fig, axes = plots.subplots(1, 2, figsize=(11, 3.4))
        sns.barplot(data=zm.case, x="level", y="probability", hue="distribution", order=list(zm.schema.strings),
                    hue_order=order, palette=palette, saturation=1, errorbar=None, legend=False, ax=axes[0][0])
        sns.pointplot(data=logged, x="level", y="probability", hue="distribution", order=list(zm.schema.strings),
                      hue_order=order, palette=palette, errorbar=None, dodge=0.5, linestyle="none",
                      markers="o", ax=axes[0][1])
        axes[0][1].set_yscale("log")
        for ax, scale in zip(axes[0], ("linear", f"log; 0 drawn at {floor:.0e}")):
            ax.axvline(k, color="k", ls="--", lw=1)
            ax.set(xlabel="level (score points)", ylabel=f"probability ({scale})")
        sns.move_legend(axes[0][1], "upper left", bbox_to_anchor=(1.02, 1), title="")
        fig.suptitle(f"clip {zm.video_id}, {zm.schema.name_of(zm.dimension)}: human level {zm.label:.1f} (dashed)")
    return fig


# ------------------------------------------------------------------ what notebooks 04-06 draw and log after training

@dataclass(frozen=True)
class CurveSpec:
    """What a stage's notebook reads from the Trainer's log: ``keys`` (logged values kept), ``panels``
    (key -> y label, one panel each, in order), the figure ``title`` and ``col_wrap`` (panels per row; 0: one row)."""

    keys: tuple[str, ...]
    panels: dict[str, str]
    title: str
    col_wrap: int = 0


STAGE_CURVES: dict[str, CurveSpec] = {
    "sft": CurveSpec(("loss", "grad_norm", "learning_rate"),
                     {"loss": "cross-entropy (nats per answer token)", "grad_norm": "gradient L2 norm",
                      "learning_rate": "learning rate"},
                     "SFT: answer-token cross-entropy"),
    "grpo": CurveSpec(("loss", "reward", "reward_acc", "reward_dist", "reward_format", "reward_std", "kl",
                       "n_unparsable", "n_completions"),
                      {"reward": "mean R_acc + R_dist + format", "reward_acc": "mean R_acc",
                       "reward_dist": "mean R_dist", "reward_format": "mean format reward",
                       "kl": "KL to π_ref (k3, nats per token)", "loss": "−clipped objective + β·KL (≈ β·KL)"},
                      "GRPO: mean reward of the sampled answers, KL to the SFT model", col_wrap=3),
    "aso": CurveSpec(("loss", "loss_score", "loss_score_levels", "target_entropy", "kl_to_target", "loss_outside",
                      "loss_rationale", "mae_expected", "outside_mass"),
                     {"loss": "total loss (nats)", "loss_score": "CE to π* (nats per score)",
                      "loss_score_levels": "nats per score", "kl_to_target": "KL(π* ‖ π_θ), nats per score",
                      "loss_outside": "nats per score", "loss_rationale": "nats per rationale token",
                      "mae_expected": "|E_θ[score] − label|, 1-5 scale"},
                     "ASO: soft-target CE on the score positions (+ rationale term)", col_wrap=4),
}

#: The clock of each seed (``vqalib.train.budget``) that notebooks 05-06 log per seed.
BUDGET_KEYS: tuple[str, ...] = ("steps", "train_seconds", "setup_s", "stopped_by")


def seed_log_frames(results: dict[int, Any], stage: str, first: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(the first seed's log, every seed's log with a text column "seed")`` of ``results`` (``{seed:
    TrainResult}``), each the :data:`STAGE_CURVES` keys of ``stage`` (:func:`log_frame`)."""
    keys = STAGE_CURVES[stage].keys
    every = pd.concat([log_frame(r.log_history, keys).assign(seed=str(s)) for s, r in results.items()])
    return log_frame(results[first].log_history, keys), every


def plot_stage_curves(stage: str, frame: pd.DataFrame):
    """The panels of :data:`STAGE_CURVES` for ``stage`` (:func:`plot_curves`): one line per seed without a
    band when ``frame`` has a ``seed`` column (:func:`seed_log_frames`), else one line with its 95 % band."""
    spec = STAGE_CURVES[stage]
    by_seed = {"hue": "seed", "errorbar": None} if "seed" in frame.columns else {}
    return plot_curves(frame, list(spec.panels), spec.title, col_wrap=spec.col_wrap, ylabel=spec.panels, **by_seed)


def budget_metrics(method: str, budgets: pd.DataFrame) -> dict[str, Any]:
    """``{"<method>/<key>/seed<k>": value}`` for the :data:`BUDGET_KEYS` of each seed's row of ``budgets``
    (the clock table of :func:`vqalib.report.compare.train_seeds`)."""
    return {f"{method}/{k}/seed{b['seed']}": b[k] for b in budgets.to_dict("records") for k in BUDGET_KEYS}


def sft_metrics(losses: pd.DataFrame, train_s: float) -> dict[str, Any]:
    """Notebook 04's training metrics from the logged ``loss`` rows (:func:`log_frame`): ``sft/train_s``,
    ``sft/steps`` (last logged step), ``sft/first_loss``, ``sft/final_loss`` (nats per answer token)."""
    return {"sft/train_s": train_s, "sft/steps": int(losses["step"].max()),
            "sft/first_loss": float(losses["loss"].iloc[0]), "sft/final_loss": float(losses["loss"].iloc[-1])}


def sft_sentence(losses: pd.DataFrame, train_s: float) -> str:
    """``trained N steps in T s; loss a -> b``."""
    return (f"trained {int(losses['step'].max())} steps in {train_s:.0f} s; "
            f"loss {losses['loss'].iloc[0]:.3f} -> {losses['loss'].iloc[-1]:.3f}")


def grpo_metrics(curves: pd.DataFrame, train_s: float, seeds: int, budget_s: float, curve_rows: int) -> dict[str, Any]:
    """Notebook 05's training metrics from the first seed's log (:func:`seed_log_frames`): steps, first and
    final logged mean reward, sampled answers (``n_completions``) and those with an unparsable score,
    plus the run's ``seeds``, ``budget_s`` (seconds per seed) and ``curve_rows`` (held-out curve rows)."""
    return {"grpo/train_s": train_s, "grpo/steps": int(curves["step"].max()),
            "grpo/first_reward": float(curves["reward"].iloc[0]), "grpo/final_reward": float(curves["reward"].iloc[-1]),
            "grpo/unparsable_completions": int(curves["n_unparsable"].sum()),
            "grpo/completions": int(curves["n_completions"].sum()),
            "grpo/seeds": seeds, "grpo/budget_s": budget_s, "grpo/curve_rows": curve_rows}


def grpo_reading(curves: pd.DataFrame, seed: int, seeds: int, train_s: float) -> str:
    """Two lines on the first seed's GRPO log: steps and unparsable answers, then the mean reward over the
    first and the last third of the logged points (each point one batch, so it moves with the clips drawn)."""
    n_bad, n_all = int(curves["n_unparsable"].sum()), int(curves["n_completions"].sum())
    third = max(1, len(curves) // 3)
    return (f"seed {seed}: {int(curves['step'].max())} steps; {n_bad} of {n_all} sampled answers had a missing or "
            f"unparsable score (no accuracy or distance reward for that dimension, no format reward for the answer); "
            f"all {seeds} seed(s) took {train_s:.0f} s with setup and evaluations\n"
            f"mean reward, first third of the logged points {curves['reward'].iloc[:third].mean():.2f}, last third "
            f"{curves['reward'].iloc[-third:].mean():.2f} (seed {seed}): each point is one batch of clips, so it moves "
            "with the clips drawn as much as with the policy; the KL to π_ref says how far the policy moved, and the "
            "held-out curve (notebook 07) says whether that helped")


def aso_metrics(curves: pd.DataFrame, train_s: float, seeds: int, budget_s: float, curve_rows: int) -> dict[str, Any]:
    """Notebook 06's training metrics from the first seed's log (:func:`seed_log_frames`): steps, the
    score loss (CE to π*, nats per score) at the first and the last logged batch, its 9-level part and
    the part off the levels, the mean target entropy H(π*) and the last KL(π* ‖ π_θ); plus ``seeds``,
    ``budget_s`` and ``curve_rows`` as in :func:`grpo_metrics`."""
    return {"aso/train_s": train_s, "aso/steps": int(curves["step"].max()), "aso/seeds": seeds,
            "aso/budget_s": budget_s, "aso/curve_rows": curve_rows,
            "aso/first_loss_score": float(curves["loss_score"].iloc[0]),
            "aso/final_loss_score": float(curves["loss_score"].iloc[-1]),
            "aso/final_loss_score_levels": float(curves["loss_score_levels"].iloc[-1]),
            "aso/final_loss_outside": float(curves["loss_outside"].iloc[-1]),
            "aso/target_entropy": float(curves["target_entropy"].mean()),
            "aso/final_kl_to_target": float(curves["kl_to_target"].iloc[-1])}


def aso_ce_reading(curves: pd.DataFrame, all_curves: pd.DataFrame) -> str:
    """The 9-level CE split into its floor H(π*) (fixed by the labels and π_ref) and the part training can
    remove, KL(π* ‖ π_θ), from the first seed's log and the range of the KL over every seed's log."""
    return (f"The 9-level CE is H(π*) + KL(π* ‖ π_θ). H(π*), fixed by the labels and π_ref, averages "
            f"{curves['target_entropy'].mean():.3f} nats per score over the logged batches: the CE cannot go below "
            f"it, so a flat loss_score near {curves['loss_score_levels'].iloc[-1]:.2f} is mostly that floor. The part "
            f"training can remove, KL(π* ‖ π_θ), was {curves['kl_to_target'].iloc[0]:.3f} at the first logged batch "
            f"and {curves['kl_to_target'].iloc[-1]:.3f} at the last, within {all_curves['kl_to_target'].min():.3f}–"
            f"{all_curves['kl_to_target'].max():.3f} over every seed's logged batches (each point is one batch).")


# ------------------------------------------------------------------ notebook 04: the tiny model's pre-training, the bar

def pretrain_record(model: str) -> dict[str, Any] | None:
    """The build record (``vqalib_pretrain.json``) of the ``tiny-pretrained`` preset, building it first
    when the cache has none (:mod:`vqalib.model.pretrain`, about 1.5 minutes); ``None`` for any other model."""
    import json

    from vqalib.model.loading import resolve_model_path
    from vqalib.model.tiny import TINY_PRETRAINED

    if model != TINY_PRETRAINED:
        return None
    return json.loads((Path(resolve_model_path(model)) / "vqalib_pretrain.json").read_text())


def pretrain_metrics(record: dict[str, Any], seconds: float) -> dict[str, Any]:
    """``pretrain/seconds`` (to build or read it), ``pretrain/steps``, ``pretrain/n_clips`` and the held-out R² of
    each rendering setting (``pretrain/heldout_r2/<setting>``) of a :func:`pretrain_record`."""
    return {"pretrain/seconds": seconds, "pretrain/steps": record["config"]["steps"],
            "pretrain/n_clips": record["config"]["n_clips"],
            **{f"pretrain/heldout_r2/{k}": v for k, v in record["heldout_r2"].items()}}


def pretrain_sentence(record: dict[str, Any]) -> str:
    """Steps, clips, build time and the loss of a :func:`pretrain_record` in one line."""
    return (f"{record['config']['steps']} steps on {record['config']['n_clips']} unrated clips "
            f"(built in {record['render_seconds'] + record['train_seconds']:.0f} s, or read from the cache); "
            f"loss {record['loss_first']:.2f} -> {record['loss_last']:.2f} (standardised targets)")


def model_srcc(table: pd.DataFrame, model: str) -> pd.Series:
    """Held-out SRCC per dimension of ``model`` in a :func:`compare_stages` table."""
    return table[(table["model"] == model) & (table["metric"] == "srcc")].set_index("dimension")["value"]


def sft_heldout_metrics(srcc: pd.Series, rows: pd.DataFrame, target: float) -> dict[str, Any]:
    """Notebook 04's held-out metrics: SRCC per dimension (``sft/test_srcc/<dim>``), the dimensions at or
    above ``target`` (``sft/n_dims_srcc_ge_<target>``), parse failures and test clips of ``rows``."""
    return {**{f"sft/test_srcc/{d}": float(v) for d, v in srcc.items()},
            f"sft/n_dims_srcc_ge_{target:g}": int((srcc >= target).sum()),
            "sft/parse_failures": int((rows["parse_status"] != "ok").sum()),
            "sft/n_test_clips": int(rows["video_id"].nunique())}


def plot_srcc_by_model(table: pd.DataFrame, target: float):
    """Held-out SRCC per dimension with its 95 % interval, one marker series per model of a
    :func:`compare_stages` table (dodged), and the bar ``target`` dotted."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    sub = table[table["metric"] == "srcc"]
    for i, (name, g) in enumerate(sub.groupby("model", sort=False)):
        ax.errorbar([j + 0.15 * i for j in range(len(g))], g["value"], capsize=3, label=name, fmt="o",
                    yerr=[g["value"] - g["ci_low"], g["ci_high"] - g["value"]])
    ax.set_xticks(range(len(g)), g["dimension"], rotation=20)
    ax.axhline(target, color="gray", ls=":")
    ax.set_ylabel("held-out SRCC (95 % CI)")
    ax.legend()
    return fig


def bar_sentence(srcc: pd.Series, target: float) -> str:
    """How many dimensions reach held-out SRCC ``target``, naming those below it (NaN counts as below)."""
    below = {d: round(float(v), 2) for d, v in srcc.items() if not v >= target}
    return (f"held-out SRCC >= {target} on {int((srcc >= target).sum())} of {len(srcc)} dimensions"
            + (f"; below it: {below}" if below else ""))
