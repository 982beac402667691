"""Training under a wall-clock budget, with a held-out curve: what makes GRPO and ASO comparable at
equal compute (issue 12).

Every trainer (SFT, GRPO, ASO) runs :class:`BudgetCallback` through ``base.run_stage``. It keeps a
**training clock** that starts at the first step (after the model is loaded, the data prepared and,
for ASO, π_ref precomputed: that time is recorded separately as ``setup_s``) and that **excludes the
held-out evaluations**. Config fields (``vqalib.train.common.CommonConfig``):

- ``max_train_seconds`` (0 = no limit): training stops at the end of the first optimisation step at
  which the clock reads at least this many seconds; ``max_steps`` remains a cap;
- ``eval_every_seconds`` (0 = no curve): held-out evaluation at step 0 (before any update), then at
  the first step end after every multiple of this many training seconds, and at the end;
- ``eval_limit`` (0 = all clips of ``eval_split``) and ``eval_split`` (default ``test``).

An evaluation is the held-out **greedy answers** of the current policy (:func:`vqalib.eval.predict.predict`,
the same code as the predictions files), scored per dimension by :func:`vqalib.eval.tables.metrics_long`
on the parsed scores (SRCC, PLCC, MAE) in the ``all_items`` view: a parse failure counts as the scale
midpoint (``vqalib.eval.tables.FAILURE_SCORE``), so every point of every curve uses the same clips; a
``mean`` row averages the five dimensions. Rows go to ``output_dir/curve.csv`` and the training
manifest (``curve``; the clock in ``budget``).

A decaying learning-rate schedule (cosine, linear, ...) is laid out over ``max_steps``; a time budget
cuts it at a step nobody knows in advance, so ``validate_config`` refuses it with a budget: budgeted
runs use ``lr_scheduler: constant_with_warmup`` (or ``constant``).

Several processes (``torchrun``): rank 0's clock decides when to evaluate and stop (broadcast to the
other ranks, so all stop at the same step); rank 0 evaluates the unwrapped model alone while the other
ranks wait (ZeRO-2 / DDP hold the full weights on every rank; FSDP and ZeRO-3 shard them and are refused).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import pandas as pd
from transformers import TrainerCallback

from vqalib.core.distributed import broadcast_from_main

#: Training seconds per seed of the demo's GRPO-vs-ASO comparison (notebooks 05 and 06 default to it;
#: ``tests/integration/test_budget.py`` keeps their ``BUDGET_S`` equal to it).
DEMO_BUDGET_S: float = 10.0
#: Training seconds between two held-out evaluations in the demo (notebooks 05 and 06 ``EVAL_EVERY_S``).
DEMO_EVAL_EVERY_S: float = 5.0
#: Greedy answer length of the curve's evaluations (as ``report.write_stage_predictions``).
EVAL_MAX_NEW_TOKENS: int = 96
CURVE_METRICS: tuple[str, ...] = ("srcc", "plcc", "mae")
CURVE_COLUMNS: tuple[str, ...] = ("method", "seed", "step", "train_seconds", "at_seconds", "point", "dimension",
                                  *CURVE_METRICS, "n_clips", "n_failed", "eval_s")

EvalFn = Callable[[Any], list[dict[str, Any]]]


def _now() -> float:
    """The clock of :class:`BudgetCallback` (``time.perf_counter``; one name, so a test can shift it)."""
    return time.perf_counter()


def curve_rows(preds: pd.DataFrame, readout: str = "parsed_score", failures: str = "all_items") -> list[dict[str, Any]]:
    """Per dimension (and ``mean`` over the dimensions) the SRCC, PLCC and MAE of one predictions frame
    (rows of :func:`vqalib.eval.predict.predict`), with ``n_clips`` (items used) and ``n_failed`` (parse
    failures). Metrics come from :func:`vqalib.eval.tables.metrics_long`; an undefined value is NaN."""
    from vqalib.eval.tables import metrics_long

    long = metrics_long({"m": preds}, readout, metrics=CURVE_METRICS, failures=failures)
    out = []
    for dim, sub in long.groupby("dimension", sort=False):
        vals = sub.set_index("metric")["value"]
        out.append({"dimension": dim, **{m: float(vals[m]) for m in CURVE_METRICS},
                    "n_clips": int(sub["n"].iloc[0]), "n_failed": int(sub["n_failed"].iloc[0])})
    if out:
        mean = {m: float(pd.Series([r[m] for r in out]).mean(skipna=False)) for m in CURVE_METRICS}
        out.append({"dimension": "mean", **mean, "n_clips": min(r["n_clips"] for r in out),
                    "n_failed": sum(r["n_failed"] for r in out)})
    return out


class HeldoutEvaluator:
    """``evaluate(model) -> rows``: greedy held-out answers of ``cfg.eval_split`` (at most
    ``cfg.eval_limit`` clips) with the config's data, video sampling and instruction, scored by
    :func:`curve_rows`. The model is put in eval mode and back in the mode it was in."""

    def __init__(self, cfg: Any, processor: Any, batch_size: int = 16):
        from vqalib.data.dataset import load_dataset
        from vqalib.data.synth import dataset_root
        from vqalib.train.common import sampling_config

        self.cfg, self.processor, self.batch_size = cfg, processor, batch_size
        root = dataset_root(cfg.data_dir, cfg.sample_size, cfg.data_seed)
        # the dataset's rating schema (a config's rating_schema for a folder without one, as the stage reads it);
        # predict scores on it
        rs = getattr(cfg, "rating_schema", "")
        self.dataset = load_dataset(root, schema=rs) if rs else load_dataset(root)
        self.sampling = sampling_config(cfg)

    def __call__(self, model: Any) -> list[dict[str, Any]]:
        from vqalib.eval.predict import predict

        was = model.training
        try:
            res = predict(model, self.processor, self.dataset, split=self.cfg.eval_split, sampling=self.sampling,
                          max_new_tokens=EVAL_MAX_NEW_TOKENS, batch_size=self.batch_size,
                          instruction=self.cfg.instruction or None, limit=self.cfg.eval_limit or None)
        finally:
            model.train(was)
        if res.failures:
            raise RuntimeError(f"held-out evaluation: {len(res.failures)} video(s) failed to decode, e.g. "
                               f"{res.failures[0]['path']}: {res.failures[0]['error']}")
        return curve_rows(res.rows)


def _sharded(trainer: Any) -> bool:
    """True when the weights are sharded across ranks (FSDP, DeepSpeed ZeRO-3): rank 0 alone cannot run them."""
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None) if getattr(trainer, "is_deepspeed_enabled", False) else None
    return plugin is not None and getattr(plugin, "zero_stage", 0) == 3


class BudgetCallback(TrainerCallback):
    """The training clock, the time budget and the held-out curve (module docstring).

    ``t_start``: :func:`_now` when the stage started (before the model was loaded), so
    ``setup_s`` = time until the first step. ``evaluate``: ``fn(model) -> rows`` (e.g.
    :class:`HeldoutEvaluator`) or ``None`` for no curve. After training, ``rows`` holds the curve
    (:data:`CURVE_COLUMNS`) and :meth:`summary` the clock."""

    def __init__(self, cfg: Any, t_start: float, evaluate: EvalFn | None = None):
        self.cfg, self.t_start, self.evaluate = cfg, t_start, evaluate
        self.budget = float(cfg.max_train_seconds)
        self.every = float(cfg.eval_every_seconds)
        self.trainer: Any = None  # set by run_stage: unwraps the model, tells rank 0
        self.rows: list[dict[str, Any]] = []
        self.setup_s = self.start = math.nan
        self.eval_total = 0.0
        self.n_evals = 0
        self.next_eval = math.inf
        self.last_eval_step = -1
        self.stopped_by = ""
        self.train_seconds = 0.0
        self.first_step_s = math.nan

    # ------------------------------------------------------------------ clock
    def elapsed(self) -> float:
        """Training seconds so far: since the first step, evaluations excluded."""
        return _now() - self.start - self.eval_total

    def _main(self) -> bool:
        return self.trainer is None or self.trainer.is_world_process_zero()

    def _run_eval(self, model: Any, step: int, train_s: float, at_s: float, point: str) -> None:
        if self.evaluate is None:
            return
        t0 = _now()
        rows: list[dict[str, Any]] = []
        if self._main():
            inner = self.trainer.accelerator.unwrap_model(model) if self.trainer is not None else model
            rows = self.evaluate(inner)
        if self.trainer is not None:
            self.trainer.accelerator.wait_for_everyone()
        dt = _now() - t0
        self.eval_total += dt
        self.n_evals += 1
        self.last_eval_step = step
        for r in rows:
            self.rows.append({"method": self.cfg.stage, "seed": self.cfg.seed, "step": step,
                              # floored to the ms, not rounded: a point taken under the budget (0.4996 s of
                              # 0.5) must not be recorded at it
                              "train_seconds": math.floor(train_s * 1000) / 1000, "at_seconds": at_s,
                              "point": point, **r,
                              "eval_s": round(dt, 3)})

    # ------------------------------------------------------------------ trainer events
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.evaluate is not None and self.trainer is not None and _sharded(self.trainer):
            raise ValueError("eval_every_seconds > 0 evaluates the full model on rank 0, but FSDP / DeepSpeed ZeRO-3 "
                             "shard the weights; use DDP or ZeRO-2, or eval_every_seconds=0 and predict afterwards")
        self.start = _now()
        self.setup_s = self.start - self.t_start
        self.next_eval = self.every if self.every > 0 else math.inf
        self._run_eval(model, state.global_step, 0.0, 0.0, "start")
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        train_s = self.elapsed()
        stop = self.budget > 0 and train_s >= self.budget
        due = (not stop) and train_s >= self.next_eval
        train_s, stop, due = broadcast_from_main((train_s, stop, due))  # rank 0 decides for every rank
        self.train_seconds = train_s
        if math.isnan(self.first_step_s):  # one-time costs (first batch, allocations) land here: shown apart
            self.first_step_s = train_s
        if stop:
            self.stopped_by = "max_train_seconds"
            control.should_training_stop = True
            control.should_log = True  # the last step's loss reaches the log history
        elif due:
            at = math.floor(train_s / self.every) * self.every
            self.next_eval = at + self.every
            self._run_eval(model, state.global_step, train_s, round(at, 3), "periodic")
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.train_seconds = broadcast_from_main(self.elapsed() if self.stopped_by == "" else self.train_seconds)
        if not self.stopped_by:
            self.stopped_by = "max_steps" if state.global_step >= state.max_steps else "data"
        at = self.budget if self.stopped_by == "max_train_seconds" else round(self.train_seconds, 3)
        if self.evaluate is not None:
            if self.last_eval_step == state.global_step and self.rows:  # evaluated at this step already
                for r in self.rows:
                    if r["step"] == state.global_step:
                        r["point"] = "end"
            else:
                self._run_eval(model, state.global_step, self.train_seconds, at, "end")
        if self._main() and self.rows:
            from vqalib.core.runs import resolve_path

            out = resolve_path(self.cfg.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            self.frame().to_csv(out / "curve.csv", index=False)
        return control

    # ------------------------------------------------------------------ results
    def frame(self) -> pd.DataFrame:
        """The curve rows as a DataFrame with the columns :data:`CURVE_COLUMNS`."""
        return pd.DataFrame(self.rows, columns=list(CURVE_COLUMNS))

    def summary(self, steps: int) -> dict[str, Any]:
        """The clock of the run: budget, training / setup / evaluation seconds, the training seconds of the
        first step (``first_step_s``, which carries one-time costs), steps, what stopped it."""
        return {"max_train_seconds": self.budget, "eval_every_seconds": self.every, "steps": int(steps),
                "train_seconds": round(self.train_seconds, 3), "first_step_s": round(self.first_step_s, 3),
                "setup_s": round(self.setup_s, 3),
                "eval_seconds": round(self.eval_total, 3), "n_evals": self.n_evals, "stopped_by": self.stopped_by}
