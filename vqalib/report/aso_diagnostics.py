"""What notebook 06 measures around an ASO run: how sharp π_ref is after each rationale mode, the cached
π_ref's health, what mass off the K levels (the paper: nine) costs, π* under the raters' own scores, and the short run
with a floor ε under π_ref (the paper's limitation, Appendix E; the figures and counts are
:func:`vqalib.report.training.zero_mass_case`).

Every number is computed from the run's config, cache and logs; the sentences only put them in words.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import pandas as pd
import torch

from vqalib.method import aso as aso_math
from vqalib.schema import rating
from vqalib.train.common import CommonConfig, resolve_device, validate_config


def skip_reason(cfg: Any, verb: str = "draw", *, schema: rating.RatingSchema | None = None) -> str | None:
    """``None`` when ``cfg`` (an ASO config) caches π_ref over the K score levels (the paper: nine), else why
    the sections that read that cache are skipped (``verb``: what the section would do with it: draw,
    search, check)."""
    if cfg.on_policy:
        return f"on-policy ASO: pi_ref depends on the sampled rationale, so there is no cached pi_ref to {verb}"
    if cfg.target_position != "score":
        return (f"target_position=keyword: the cached pi_ref is over the {aso_math.n_levels_words(schema)} keywords, "
                "not the score lines drawn here")
    return None


def sharpness_table(cfg: CommonConfig, n_clips: int) -> tuple[pd.DataFrame, list]:
    """π_ref of the SFT model (``cfg.init_from``) on the first ``n_clips`` training clips after each rationale
    mode (:func:`vqalib.train.aso_trainer.pi_ref_sharpness`: mean max probability, entropy in nats, π_ref(s*),
    π*(s*), clips whose text names the score). Loads a measuring copy of the policy and frees it (and the
    CUDA cache) before returning ``(table, the clips measured)``."""
    from vqalib.train.aso_trainer import pi_ref_sharpness
    from vqalib.train.base import load_policy
    from vqalib.train.collator import FrameCache, examples_for
    from vqalib.train.common import sampling_config

    device = resolve_device(cfg.device)
    model, processor = load_policy(cfg)
    examples = examples_for(cfg, n_clips)
    table = pi_ref_sharpness(model.to(device), processor, examples, FrameCache(sampling_config(cfg)), device=device,
                             instruction=cfg.instruction)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()  # free the measuring copy before training loads the policy again
    return table, examples


def cached_health(cfg: Any) -> dict[str, Any] | None:
    """The health report stored beside the cached π_ref (``cfg.pi_ref_path``, written by the trainer before
    training: :func:`vqalib.method.aso.pi_ref_health`); ``None`` for on-policy ASO, which caches none."""
    from vqalib.core.runs import resolve_path

    if cfg.on_policy:
        return None
    return torch.load(resolve_path(cfg.pi_ref_path), weights_only=True).get("health")


def health_text(health: dict[str, Any], *, schema: rating.RatingSchema | None = None) -> str:
    """:func:`vqalib.method.aso.format_health`, then ``problems:`` with one ``- `` line each, or ``no problem found``."""
    problems = aso_math.pi_ref_health_problems(health, schema=schema)
    return aso_math.format_health(health, schema=schema) + "\n" + ("\n- ".join(["problems:", *problems]) if problems
                                                    else "no problem found")


def health_metrics(health: dict[str, Any]) -> dict[str, Any]:
    """``aso/pi_ref_health/<key>`` for every number of a health report."""
    return {f"aso/pi_ref_health/{k}": v for k, v in health.items() if isinstance(v, (int, float))}


def outside_mass_table(outside: Sequence[float], *, schema: rating.RatingSchema | None = None) -> pd.DataFrame:
    """What mass off the K levels costs the score loss: for each outside mass ``o``, the soft-target CE of
    a fixed K-level shape against π* (uniform π_ref, s* = the middle level (the paper: 3), λ = β = 1)
    renormalised over the levels (the same for every ``o``) and raw, as trained (``+ −log(1 − o)``).
    Columns ``outside mass``, ``loss, renormalised``, ``loss, raw (used)`` in nats; ``o`` must be < 1."""
    schema = rating.resolve(schema)
    k = schema.n_levels
    shape = torch.log_softmax(torch.linspace(-1, 1, k, dtype=torch.float64), -1)
    target = aso_math.optimal_policy(torch.full((k,), 1 / k, dtype=torch.float64),
                                     aso_math.reward_abs(float(schema.levels[k // 2]), schema=schema), 1.0,
                                     probs=True, schema=schema)
    return pd.DataFrame([{"outside mass": o, "loss, renormalised": float(aso_math.aso_loss(shape, target)),
                          "loss, raw (used)": float(aso_math.aso_loss(shape + math.log(1 - o), target))}
                         for o in outside])


def multi_rater_case(examples: Sequence[Any], lam: float, beta: float, *,
                     schema: rating.RatingSchema | None = None) -> tuple[str, pd.DataFrame]:
    """Among ``examples`` (training clips with ``ratings``), the (clip, dimension) whose raters disagree most
    (largest max − min; ties: the larger clip id, then dimension; dimensions without a label are skipped):
    ``(caption, table)`` with π* under the mean label and under the raters' own scores
    (:func:`vqalib.method.aso.reward_multi_rater`), both from a uniform π_ref, one row each, one column per
    level of the schema (``None``: the paper's)."""
    schema = rating.resolve(schema)
    spread = [(max(v) - min(v), ex.video_id, k, v, ex.scores[k]) for ex in examples
              for k, v in ex.ratings.items() if v and ex.scores.get(k) is not None and not math.isnan(ex.scores[k])]
    if not spread:
        raise ValueError("no clip among the examples has rater scores; multi_rater needs the raters' own scores")
    _, vid, dim, votes, label = max(spread)
    k = schema.n_levels
    uniform = torch.full((k,), 1 / k, dtype=torch.float64)
    mean_label = aso_math.optimal_policy(uniform, aso_math.reward_abs(label, beta, schema=schema), lam, probs=True,
                                         schema=schema)
    raters = aso_math.optimal_policy(uniform, aso_math.reward_multi_rater([votes], beta, schema=schema)[0], lam,
                                     probs=True, schema=schema)
    table = pd.DataFrame({"mean label": mean_label.numpy(), "multi-rater": raters.numpy()}, index=list(schema.strings))
    return f"clip {vid}, {dim}: raters {votes}, label {label}", table.T


def floor_config(cfg: CommonConfig, eps: float, steps: int, run_dir: str) -> CommonConfig:
    """The short ASO run with the floor ``eps`` under π_ref: ``cfg`` for ``steps`` steps (no time budget, no
    held-out curve, no TensorBoard) into ``RUN_DIR/checkpoints/aso_eps``, reading the same cached π_ref
    (same SFT model, clips and rationale). Raises ``ValueError`` naming ``EPS`` / ``EPS_STEPS`` for a bad value."""
    out = dataclasses.replace(cfg, eps=eps, max_steps=steps, output_dir=f"{run_dir}/checkpoints/aso_eps",
                              warmup_steps=min(cfg.warmup_steps, steps - 1), max_train_seconds=0.0,
                              eval_every_seconds=0.0, logging_steps=max(1, min(10, steps // 4)), report_to="none")
    validate_config(out, "notebook 06 (EPS, EPS_STEPS)")
    return out


def floor_models(cfg: Any, eps_cfg: Any, aso_steps: int) -> dict[str, str]:
    """``{legend name: checkpoint}`` of the ASO model trained above (``aso_steps`` steps) and the floored run."""
    return {f"π_θ after ASO ({aso_steps} steps)": cfg.output_dir,
            f"π_θ after ASO, ε={eps_cfg.eps:g} ({eps_cfg.max_steps} steps)": eps_cfg.output_dir}


def zero_mass_metrics(zm: Any, models: dict[str, str]) -> dict[str, Any]:
    """``aso/zero_mass/at_label/<pi_ref | pi_star | aso | aso_eps | pi_star_eps>`` (probability of the human
    level on the chosen pair) and ``aso/zero_mass/n_below_<t>`` (pairs with π_ref(s*) < t) of a
    :class:`vqalib.report.training.ZeroMassCase`; ``models`` as :func:`floor_models` names them."""
    from vqalib.report.training import REF, STAR0, star_name

    short = dict(zip([REF, STAR0, *models, star_name(zm.eps)], ["pi_ref", "pi_star", "aso", "aso_eps", "pi_star_eps"]))
    return {**{f"aso/zero_mass/at_label/{short[k]}": v for k, v in zm.at_label().items()},
            **{f"aso/zero_mass/n_below_{r.threshold:g}": int(r.n_pairs) for r in zm.counts.itertuples()}}


def floor_reading(zm: Any, models: dict[str, str], eps_steps: int, aso_steps: int) -> str:
    """The floor in training, in words: the human level's probability under the floored model against the
    model trained on the paper's target, on the chosen pair and over the widest threshold's pairs, with the
    caveat that the two runs also differ in steps."""
    at = zm.at_label()
    aso_name, eps_name = models
    low = zm.counts.sort_values("threshold").iloc[-1]  # the widest threshold: most pairs
    return (f"The floor in training: on the pair shown, the model trained {eps_steps} steps on the floored target "
            f"gives the human level {at[eps_name]:.1e}, {at[eps_name] / at[aso_name]:.2f}x what the model trained "
            f"{aso_steps} steps on the paper's target gives ({at[aso_name]:.1e})"
            + (f"; over the {int(low.n_pairs)} pairs with π_ref(s*) < {low.threshold:g}: {low[eps_name]:.1e} vs "
               f"{low[aso_name]:.1e} ({low[eps_name] / low[aso_name]:.2f}x)." if low.n_pairs else ".")
            + f" The two runs also differ in steps ({eps_steps} vs {aso_steps}), so this ratio is not the floor's "
              "effect alone; the floor's own effect is π* with and without it, above.")
