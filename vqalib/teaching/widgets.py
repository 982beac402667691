"""The ASO explorer: sliders for λ, β, s*, the reward and the shape of π_ref; plots of π_ref, R, π*; and
π* on any rating schema's grid (:func:`grid_pistar`: notebook 03 shows the paper's nine levels, Q-Align's
five words and ten integers).

Thin on purpose.  Every number shown comes from :func:`explorer_state`, which only calls
``vqalib.method.aso`` (unit-tested); :func:`plot_state` draws a state; :class:`Explorer` wires ipywidgets
to the two.  Widget callbacks swallow exceptions in a live kernel, so notebooks also call
:func:`explorer_state` directly once (a headless run then fails loudly if it breaks).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from vqalib.method import aso
from vqalib.schema import rating

REF_SHAPES: tuple[str, ...] = ("peaked_truth", "peaked_elsewhere", "flat", "bimodal", "zero_mass")
LAMBDA_GRID: np.ndarray = np.logspace(-2, 2, 41)


def _bump(centre: float, width: float, levels: np.ndarray) -> np.ndarray:
    w = np.exp(-0.5 * ((levels - centre) / width) ** 2)
    return w / w.sum()


def reference_policy(shape: str, s_star: float, width: float | None = None, *,
                     schema: rating.RatingSchema | None = None) -> np.ndarray:
    """A teaching π_ref over the schema's K levels (probabilities; ``None``: the paper's 9) for the target ``s_star``.

    Distances are in units of the scale's span (``hi − lo``; the paper's: 4): ``width`` (sd of a bump)
    defaults to ``0.15 span`` (0.6 on the paper's grid). ``peaked_truth``: a discretised Gaussian bump
    at s*; ``peaked_elsewhere``: the bump ``span / 2`` away from s* (above it when s* is in the lower
    half, else below; the paper: 2 points); ``flat``: uniform; ``bimodal``: equal bumps at a quarter
    and seven eighths of the scale (the paper: 2.0 and 4.5; raters split); ``zero_mass``: the bump at s*
    with the level nearest s* set to exactly 0 (the paper's limitation: ASO cannot put mass back there).
    """
    schema = rating.resolve(schema)
    lo, span, levels = schema.lo, schema.span, schema.levels
    width = 0.6 * (span / 4.0) if width is None else width
    if shape == "peaked_truth":
        return _bump(s_star, width, levels)
    if shape == "peaked_elsewhere":
        return _bump(s_star + span / 2 if s_star <= lo + span / 2 else s_star - span / 2, width, levels)
    if shape == "flat":
        return np.full(schema.n_levels, 1.0 / schema.n_levels)
    if shape == "bimodal":
        return 0.5 * _bump(lo + span / 4, width, levels) + 0.5 * _bump(lo + 7 * span / 8, width, levels)
    if shape == "zero_mass":
        p = _bump(s_star, width, levels)
        p[schema.index(schema.snap(s_star))] = 0.0
        return p / p.sum()
    raise ValueError(f"unknown reference shape {shape!r}; use one of {REF_SHAPES}")


def grid_pistar(schema: "rating.RatingSchema | str", s_star: float | None = None, lam: float = 1.0,
                beta: float = 1.0, ref_shape: str = "peaked_elsewhere") -> tuple[Figure, pd.DataFrame]:
    """π* on a rating schema's own grid (notebook 03: the paper's nine levels, Q-Align's five words, ten
    integers), for the label ``s_star`` (default: the level just above the middle), reward
    ``−β|s − s*|`` on the schema's values, λ, and a teaching π_ref of shape ``ref_shape``
    (:func:`reference_policy`, distances scaled to the scale's span), next to a
    uniform π_ref. ``schema``: a schema or a preset name. Returns the bar figure (levels labelled with
    the schema's strings) and a table, one row per level string: the schema's value, R, π_ref and π*
    for each reference."""
    schema = rating.get_schema(schema)
    k = schema.n_levels
    s_star = float(schema.levels[k // 2]) if s_star is None else float(schema.snap(s_star))
    refs = {"uniform π_ref": torch.full((k,), 1.0 / k, dtype=torch.float64),
            f"π_ref = {ref_shape}": torch.as_tensor(reference_policy(ref_shape, s_star, schema=schema))}
    R = aso.reward_abs(s_star, beta, schema=schema)
    fig = Figure(figsize=(10, 3.0))
    axes = fig.subplots(1, len(refs), sharey=True, squeeze=False)[0]
    cols: dict[str, Any] = {"value": schema.levels, "R": R.numpy()}
    for ax, (name, ref) in zip(axes, refs.items()):
        star = aso.optimal_policy(ref, R, lam, probs=True, schema=schema)
        ax.bar(np.arange(k), star.numpy(), 0.6, color="C0", label="π*")
        ax.plot(np.arange(k), ref.numpy(), "k.--", lw=0.8, label="π_ref")
        ax.set_xticks(range(k), schema.strings, fontsize=8, rotation=30 if max(map(len, schema.strings)) > 3 else 0)
        ax.set_title(f"{schema.name}: π* for s* = {schema.string(s_star)}, {name} (λ={lam:g}, β={beta:g})", fontsize=9)
        cols[f"π_ref ({name})"] = ref.numpy()
        cols[f"π* ({name})"] = star.numpy()
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig, pd.DataFrame(cols, index=pd.Index(schema.strings, name="level"))


@dataclass
class ExplorerParams:
    """The explorer's inputs (the sliders)."""

    lam: float = 1.0             # λ, KL strength (paper 1.0)
    beta: float = 1.0            # β, reward scale for 'abs' / 'sq' (paper 1.0)
    s_star: float = 3.0          # ground-truth score s*
    reward: str = "abs"          # one of aso.REWARD_KINDS
    ref_shape: str = "peaked_elsewhere"  # one of REF_SHAPES
    eps: float = 0.0             # optional floor on π_ref (0 = off)


def explorer_state(params: ExplorerParams | None = None, *, schema: rating.RatingSchema | None = None,
                   **overrides: Any) -> dict[str, Any]:
    """Everything the explorer shows, as plain numpy values, computed with ``vqalib.method.aso`` on the
    schema's K levels (``None``: the paper's 9).

    Keys: ``params``, ``schema``, ``pi_ref``, ``R``, ``pi_star``, ``log_z``, ``expected_reward``,
    ``kl_star_ref`` (KL(π*‖π_ref)), ``objective`` (J(π*) = λ log Z), ``expected_score``,
    ``argmax_score``, ``zero_levels`` (level strings with π_ref = 0), ``curve`` (the λ trade-off
    curve on :data:`LAMBDA_GRID`).
    """
    schema = rating.resolve(schema)
    p = ExplorerParams(**{**asdict(params or ExplorerParams()), **overrides})
    pi_ref = reference_policy(p.ref_shape, p.s_star, schema=schema)
    R = aso.reward(p.reward, p.s_star, p.beta, schema=schema)
    logp_ref = aso.as_log_probs(pi_ref, probs=True, eps=p.eps, schema=schema)
    pi_star = aso.optimal_policy(logp_ref, R, p.lam, schema=schema)
    mask = aso.zero_mass(logp_ref).numpy()
    return {
        "params": p,
        "schema": schema,
        "pi_ref": logp_ref.exp().numpy(),
        "R": R.numpy(),
        "pi_star": pi_star.numpy(),
        "log_z": float(aso.log_partition(logp_ref, R, p.lam)),
        "expected_reward": float(aso.expected_reward(pi_star, R)),
        "kl_star_ref": float(aso.kl(pi_star, logp_ref.exp())),
        "objective": float(aso.objective(pi_star, R, logp_ref.exp(), p.lam)),
        "expected_score": float(aso.expected_score(pi_star, schema=schema)),
        "argmax_score": float(aso.argmax_score(pi_star, schema=schema)),
        "zero_levels": [schema.strings[i] for i in np.flatnonzero(mask)],
        "curve": aso.tradeoff_curve(logp_ref, R, LAMBDA_GRID, schema=schema),
    }


def plot_state(state: dict[str, Any]) -> Figure:
    """Three panels: π_ref vs π* (bars), the reward R(s, s*), and the λ trade-off curve with the current point."""
    p: ExplorerParams = state["params"]
    schema = rating.resolve(state.get("schema"))
    fig = Figure(figsize=(12, 3.4))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    x = np.arange(schema.n_levels)
    ax1.bar(x - 0.2, state["pi_ref"], 0.4, label="π_ref", color="0.6")
    ax1.bar(x + 0.2, state["pi_star"], 0.4, label="π*", color="C0")
    step = schema.step
    at = (p.s_star - schema.lo) / step if step is not None else float(np.interp(p.s_star, schema.levels, x))
    ax1.axvline(at, color="C3", ls="--", lw=1, label="s*")
    ax1.set_xticks(x, schema.strings, fontsize=8)
    ax1.set_title(f"λ={p.lam:.3g}: E[s]={state['expected_score']:.2f}, argmax={state['argmax_score']:.1f}")
    ax1.legend(fontsize=8)
    if state["zero_levels"]:
        ax1.text(0.02, 0.95, "π_ref = 0 at " + ", ".join(state["zero_levels"]), transform=ax1.transAxes,
                 fontsize=8, va="top", color="C3")
    ax2.plot(x, state["R"], "o-", color="C2")
    ax2.set_xticks(x, schema.strings, fontsize=8)
    ax2.set_title(f"reward '{p.reward}' (β={p.beta:g}, s*={p.s_star:g})")
    c = state["curve"]
    ax3.plot(c["kl"], c["reward"], "-", color="0.4")
    ax3.plot([state["kl_star_ref"]], [state["expected_reward"]], "o", color="C0", ms=9, label=f"λ={p.lam:.3g}")
    ax3.set_xlabel("KL(π* ‖ π_ref)")
    ax3.set_ylabel("E_π*[R]")
    ax3.set_title("trade-off as λ moves (0.01 … 100)")
    ax3.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class Explorer:
    """ipywidgets front end: sliders → :func:`explorer_state` → :func:`plot_state` into an Output.

    ``Explorer().widget`` is the box to display; ``.state`` and ``.png`` hold the last result
    (tests drive the sliders headless and compare ``.state`` with :func:`explorer_state`).
    """

    def __init__(self, params: ExplorerParams | None = None, *, schema: rating.RatingSchema | None = None) -> None:
        import ipywidgets as w

        self.schema = rating.resolve(schema)
        p = params or ExplorerParams()
        style = {"description_width": "60px"}
        self.lam = w.FloatLogSlider(value=p.lam, base=10, min=-2, max=2, step=0.05, description="λ", style=style,
                                    continuous_update=False)
        self.beta = w.FloatSlider(value=p.beta, min=0.1, max=5.0, step=0.1, description="β", style=style,
                                  continuous_update=False)
        self.s_star = w.FloatSlider(value=p.s_star, min=self.schema.lo, max=self.schema.hi,
                                    step=0.1 if self.schema.span <= 5 else round(self.schema.span / 40, 2),
                                    description="s*", style=style, continuous_update=False)
        self.reward = w.Dropdown(options=list(aso.REWARD_KINDS), value=p.reward, description="reward", style=style)
        self.ref_shape = w.Dropdown(options=list(REF_SHAPES), value=p.ref_shape, description="π_ref", style=style)
        self.eps = p.eps
        self.summary = w.HTML()
        self.out = w.Output()
        self.state: dict[str, Any] = {}
        self.png: bytes = b""
        for c in (self.lam, self.beta, self.s_star, self.reward, self.ref_shape):
            c.observe(self._on_change, names="value")
        controls = w.HBox([w.VBox([self.lam, self.beta, self.s_star]), w.VBox([self.reward, self.ref_shape, self.summary])])
        self.widget = w.VBox([controls, self.out])
        self.update()

    def params(self) -> ExplorerParams:
        """The current slider values."""
        return ExplorerParams(self.lam.value, self.beta.value, self.s_star.value, self.reward.value,
                              self.ref_shape.value, self.eps)

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state, redraw the figure into the Output and refresh the summary line."""
        from IPython.display import Image, clear_output, display

        self.state = explorer_state(self.params(), schema=self.schema)
        s = self.state
        self.summary.value = (f"<b>E_π*[R]</b> = {s['expected_reward']:.3f} &nbsp; <b>KL(π*‖π_ref)</b> = "
                              f"{s['kl_star_ref']:.3f} &nbsp; <b>λ log Z</b> = {s['params'].lam * s['log_z']:.3f}")
        self.png = figure_png(plot_state(s))
        with self.out:
            clear_output(wait=True)
            display(Image(data=self.png, format="png"))


def live_explorer(params: ExplorerParams | None = None, *, schema: rating.RatingSchema | None = None) -> Any:
    """What notebook 03 displays for the explorer: :class:`Explorer`'s widget, or in a headless run
    (:func:`vqalib.core.runs.headless`: ``$VQALIB_HEADLESS=1``, set by ``python -m vqalib run-notebooks``
    and the tests) a one-line note and no widget at all.

    Why: nbclient, which papermill runs on, can wait forever on a cell that displays widgets after the
    kernel has finished it (jupyter/nbclient#312, papermill#723; seen here on notebook 03 under ``make
    demo``, kernel idle and the client still waiting), and a headless run has no one to move the sliders.
    The executed copy keeps the explorer's starting state as the static figure drawn just before."""
    from vqalib.core.runs import HEADLESS_ENV, headless

    if headless():
        from IPython.display import Markdown

        return Markdown(f"*Headless run (`{HEADLESS_ENV}=1`): the live λ explorer is built when this notebook is "
                        "opened in JupyterLab; the figure above is its starting state.*")
    return Explorer(params, schema=schema).widget
