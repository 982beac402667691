"""The training config a notebook (04 SFT, 05 GRPO, 06 ASO) trains with, from its few parameters.

One order, so a notebook's parameters cell holds only what its story varies::

    cfg = stage_config("aso", "env/train_configs/aso_tiny.yaml", "runs/demo", "lr=1e-3 batch_size=4",
                       data_dir="", sample_size="default", seed=0, device="cpu")

1. ``config``: the YAML training config (the demo's values live in ``env/train_configs/*_tiny.yaml``,
   the same file ``python -m vqalib train STAGE`` reads);
2. the run folder: ``output_dir = RUN_DIR/checkpoints/<stage>``; GRPO and ASO start from
   ``RUN_DIR/checkpoints/sft``; ASO caches π_ref at ``RUN_DIR/checkpoints/aso/pi_ref.pt`` (every seed
   reads the first seed's file);
3. ``fields``: the notebook's own settings (``data_dir=DATA_DIR``, a time budget, ...); ``None`` skips one;
4. the notebook conventions, derived from the values so far: about ``points`` log rows per run, at most
   every ``every`` steps (:data:`LOGGING`); warm-up shorter than a run of ``max_steps`` steps; with a
   time budget (``max_train_seconds > 0``) the schedule ``constant_with_warmup`` (a schedule that decays
   over ``max_steps`` would be cut at a step not known in advance);
5. ``overrides``: ``"key=value key=value"`` as ``python -m vqalib train --set`` takes them (the
   notebooks' ``SET`` parameter; shell quoting for a value with spaces: ``instruction='Rate it.'``), applied last: a key given there is not changed by step 4.

The result is validated (:func:`vqalib.train.common.load_config`); an unknown key or a bad value raises
``ValueError`` naming the source and the key.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any, Iterable

from vqalib.report.compare import seed_run_name
from vqalib.train.common import CommonConfig, load_config, parse_overrides

#: Per stage ``(every, points)``: log every ``max(1, min(every, max_steps // points))`` steps.
LOGGING: dict[str, tuple[int, int]] = {"sft": (20, 10), "grpo": (5, 6), "aso": (10, 8)}
#: The learning-rate schedule of a run with a time budget.
BUDGET_SCHEDULER = "constant_with_warmup"


def run_folder_fields(stage: str, run_dir: str) -> dict[str, str]:
    """Step 2: where a stage reads and writes inside the run folder ``run_dir``."""
    out = {"output_dir": f"{run_dir}/checkpoints/{stage}"}
    if stage in ("grpo", "aso"):
        out["init_from"] = f"{run_dir}/checkpoints/sft"
    if stage == "aso":
        out["pi_ref_path"] = f"{run_dir}/checkpoints/aso/pi_ref.pt"
    return out


def notebook_conventions(stage: str, values: dict[str, Any]) -> dict[str, Any]:
    """Step 4: logging cadence, warm-up and budget schedule from the resolved ``values`` (a config as a
    dict: ``max_steps``, ``warmup_steps``, ``max_train_seconds``)."""
    every, points = LOGGING[stage]
    steps = int(values["max_steps"])
    out: dict[str, Any] = {"logging_steps": max(1, min(every, steps // points))}
    if steps > 0:
        out["warmup_steps"] = min(int(values["warmup_steps"]), steps - 1)
    if float(values["max_train_seconds"]) > 0:
        out["lr_scheduler"] = BUDGET_SCHEDULER
    return out


def stage_config(stage: str, config: str, run_dir: str, overrides: str = "", **fields: Any) -> CommonConfig:
    """The config notebook ``stage`` (``sft`` | ``grpo`` | ``aso``) trains with: ``config`` (YAML path, from
    the project root), the run folder ``run_dir``, ``fields`` (config keys; ``None`` values skipped), the
    conventions of :func:`notebook_conventions` and ``overrides`` (``"key=value ..."``), in the order of
    the module docstring. Raises ``ValueError`` / ``FileNotFoundError`` as ``load_config`` does."""
    if not config:
        raise ValueError(f"{stage}: CONFIG is empty; give a training config, e.g. env/train_configs/{stage}_tiny.yaml")
    user = parse_overrides(shlex.split(overrides))
    values = {**run_folder_fields(stage, run_dir), **{k: v for k, v in fields.items() if v is not None}}
    # a first read gives the values the conventions derive from (with the budget schedule, so that a budget
    # does not fail validation before step 4 sets it; a user's lr_scheduler is checked as given)
    base = dataclasses.asdict(load_config(stage, config, {"lr_scheduler": BUDGET_SCHEDULER, **values, **user}))
    derived = {k: v for k, v in notebook_conventions(stage, base).items() if k not in user}
    return load_config(stage, config, {**values, **derived, **user})


def seed_configs(cfg: CommonConfig, run_dir: str, seeds: Iterable[int]) -> dict[int, CommonConfig]:
    """One config per seed, ``cfg`` but for the seed and the output folder: the first seed writes
    ``RUN_DIR/checkpoints/<stage>``, seed ``k`` writes ``RUN_DIR/checkpoints/<stage>_seed<k>``
    (:func:`vqalib.report.compare.seed_run_name`)."""
    seeds = list(seeds)
    return {s: dataclasses.replace(cfg, seed=s, output_dir=f"{run_dir}/checkpoints/{seed_run_name(cfg.stage, s, seeds[0])}")
            for s in seeds}
