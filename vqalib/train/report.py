"""What notebooks 04-06 show after training: predictions files for notebook 07, loss / reward
curves, per-dimension changes with bootstrap intervals, and ASO's pi_ref -> pi* -> pi_theta.

Pure functions over checkpoints and logs; the notebooks only choose what to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from vqalib.levels import DIMENSION_KEYS, LEVEL_STRINGS, LEVELS, NAME_OF, level_index
from vqalib.runs import resolve_path
from vqalib.train.common import CommonConfig, read_manifest


def write_stage_predictions(run_dir: str, name: str, checkpoint: str | Path, cfg: CommonConfig, split: str = "test",
                            limit: int = 0, max_new_tokens: int = 96, batch_size: int = 16,
                            progress: bool = True) -> tuple[Path, pd.DataFrame]:
    """Predict ``split`` with a trained checkpoint (or ``"tiny"`` / a hub id, for the untrained base
    model) through :func:`vqalib.predict.predict_to_file`, with the data, sampling settings and
    instruction of ``cfg``, into ``RUN_DIR/predictions/<name>.jsonl`` (its manifest also holds the
    checkpoint's training manifest). Returns (path, rows as written)."""
    from vqalib.predict import predict_to_file
    from vqalib.predictions import read_predictions
    from vqalib.train.base import sampling_config
    from vqalib.train.common import resolve_device

    ckpt = resolve_path(checkpoint)
    path = predict_to_file(
        resolve_path(run_dir) / "predictions" / f"{name}.jsonl", model=str(checkpoint), data_dir=cfg.data_dir,
        sample_size=cfg.sample_size, seed=cfg.data_seed, split=split, device=resolve_device(cfg.device), max_videos=limit,
        sampling=sampling_config(cfg),
        max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress, instruction=cfg.instruction or None,
        extra_manifest={"stage": name, "training": read_manifest(ckpt) if ckpt.exists() else {}})
    rows, _ = read_predictions(path)
    return path, rows


def log_frame(log_history: Sequence[dict[str, Any]], keys: Sequence[str] = ("loss",)) -> pd.DataFrame:
    """The logged training rows (step + the requested keys that were logged) as a DataFrame."""
    rows = [{"step": r["step"], **{k: r[k] for k in keys if k in r}} for r in log_history
            if "step" in r and any(k in r for k in keys)]
    return pd.DataFrame(rows)


def plot_curves(frame: pd.DataFrame, keys: Sequence[str], title: str = "", x: str = "step", hue: str | None = None,
                errorbar: Any = ("ci", 95), xlabel: str = "", units: str | None = None, col_wrap: int = 0,
                hue_order: Sequence[str] | None = None):
    """One ``seaborn.lineplot`` panel per key (the long form ``x, [hue], [units], metric, value`` of
    ``frame``) against ``x`` (default the optimisation step; e.g. ``"seconds"`` for wall clock).

    ``hue``: a column to compare (``"method"``, ``"seed"``); several rows with the same ``x`` and
    ``hue`` (seeds) are drawn as their mean with a ``errorbar`` band (seaborn's bootstrap 95 % CI
    by default; ``("pi", 100)`` for the range; ``None`` for no band). ``units``: a column (``"seed"``)
    whose groups are drawn as separate lines instead (no aggregation: for x values that differ
    between seeds, such as the step an evaluation happened at). ``col_wrap``: panels per row (0: one
    row). Keys missing from ``frame`` are skipped.
    """
    import math

    import seaborn as sns

    from vqalib import plots

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
            extra = {"units": units, "estimator": None} if units else {"errorbar": errorbar}
            sns.lineplot(data=long[long["metric"] == k], x=x, y="value", hue=hue, hue_order=hue_order,
                         marker="." if not hue or units else None, legend=bool(hue) and i == len(keys) - 1, ax=ax,
                         **extra)
            ax.set(title=k, xlabel=xlabel or x, ylabel="")
        for ax in flat[len(keys):]:
            ax.set_visible(False)
        if hue and keys and flat[len(keys) - 1].get_legend() is not None:
            sns.move_legend(flat[len(keys) - 1], "upper left", bbox_to_anchor=(1.02, 1))
        if title:
            fig.suptitle(title)
    return fig


def compare_stages(preds: dict[str, pd.DataFrame], readout: str = "parsed_score", n_boot: int = 300,
                   seed: int = 0, metrics: Sequence[str] = ("srcc", "acc", "mae")) -> pd.DataFrame:
    """Per dimension and metric, each model's value with its 95 % bootstrap interval (``vqalib.evaluation``)."""
    from vqalib.evaluation import metrics_long

    long = metrics_long(preds, readout, metrics=list(metrics), n_boot=n_boot, seed=seed)
    return long[["model", "dimension", "metric", "value", "ci_low", "ci_high", "n", "n_failed", "reason"]]


def paired_change(a: pd.DataFrame, b: pd.DataFrame, readout: str = "parsed_score", n_boot: int = 300,
                  seed: int = 0) -> pd.DataFrame:
    """SRCC(b) - SRCC(a) per dimension on the clips both scored, with a paired bootstrap 95 % interval
    (the same resampled clips for both models), so "what changed" is read with its uncertainty."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    rows = []
    for dim in DIMENSION_KEYS:
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
def aso_distributions(pi_ref_path: str | Path, aso_checkpoint: str | Path, cfg: Any, video_ids: Sequence[str],
                      lam: float, beta: float) -> dict[str, dict[str, np.ndarray]]:
    """For a few training clips: pi_ref (cached SFT distribution), pi* (closed form) and pi_theta
    (the trained ASO model, same teacher-forced answer) per dimension, as probabilities [5, 9]."""
    from vqalib.aso import optimal_policy, reward_abs
    from vqalib.models import load_model_and_processor
    from vqalib.train.aso_trainer import level_logprobs
    from vqalib.train.base import sampling_config
    from vqalib.train.collator import FrameCache, VideoCollator, load_examples

    cached = torch.load(resolve_path(pi_ref_path), weights_only=True)["pi_ref"]
    model, processor = load_model_and_processor(str(resolve_path(aso_checkpoint)))
    model.eval()
    examples = {e.video_id: e for e in load_examples(cfg.data_dir, cfg.split, cfg.sample_size, cfg.data_seed)}
    chosen = [examples[v] for v in video_ids]
    batch = VideoCollator(processor, FrameCache(sampling_config(cfg)), rationale=cfg.rationale,
                          instruction=cfg.instruction)(chosen)
    logp_theta, _ = level_logprobs(model, batch, processor.tokenizer)
    out = {}
    for i, ex in enumerate(chosen):
        lr = cached[ex.video_id].double()
        target = optimal_policy(lr, reward_abs(torch.tensor(ex.targets(), dtype=torch.float64), beta), lam)
        out[ex.video_id] = {"pi_ref": lr.exp().numpy(), "pi_star": target.numpy(),
                            "pi_theta": logp_theta[i].double().exp().numpy(), "target": np.asarray(ex.targets())}
    return out


def plot_aso_distributions(dists: dict[str, dict[str, np.ndarray]], dims: Sequence[str] = DIMENSION_KEYS):
    """Grid of ``seaborn.barplot`` panels: rows = clips, columns = dimensions; probability per
    level with ``hue`` = pi_ref / pi* / pi_theta (long form ``clip, dimension, level, policy,
    probability``), the human level marked by a dashed line."""
    import seaborn as sns

    from vqalib import plots

    names = {"pi_ref": "π_ref (SFT)", "pi_star": "π* (target)", "pi_theta": "π_θ (ASO)"}
    long = pd.DataFrame([{"clip": vid, "dimension": dim, "level": LEVEL_STRINGS[i], "policy": names[key],
                          "probability": float(d[key][DIMENSION_KEYS.index(dim)][i])}
                         for vid, d in dists.items() for dim in dims for key in names for i in range(len(LEVELS))])
    palette = dict(zip(names.values(), ("0.6", "C1", "C0")))
    with plots.theme():
        n = len(dists)
        fig, axes = plots.subplots(n, len(dims), figsize=(3.1 * len(dims), 2.3 * n + 0.4), sharey=True)
        for r, (vid, d) in enumerate(dists.items()):
            for c, dim in enumerate(dims):
                ax = axes[r][c]
                sub = long[(long["clip"] == vid) & (long["dimension"] == dim)]
                sns.barplot(data=sub, x="level", y="probability", hue="policy", order=list(LEVEL_STRINGS),
                            hue_order=list(names.values()), palette=palette, errorbar=None, legend=r == c == 0, ax=ax)
                target = float(d["target"][DIMENSION_KEYS.index(dim)])
                ax.axvline(int(level_index(target)), color="k", ls="--", lw=1,
                           label="human level" if r == c == 0 else None)
                ax.set(title=NAME_OF[dim] if r == 0 else "", xlabel="level (score points)" if r == n - 1 else "",
                       ylabel=f"{vid}\nprobability" if c == 0 else "")
                ax.tick_params(axis="x", rotation=90)
        handles, labels = axes[0][0].get_legend_handles_labels()
        axes[0][0].get_legend().remove()
        fig.legend(handles, labels, loc="outside right upper")
    return fig
