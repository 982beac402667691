"""The config a training notebook (04-06) trains with comes from its CONFIG file, the run folder, its few
parameters, the notebook conventions and SET, in that order (``vqalib.report.stage_config``); the demo's
values live in one place, ``env/train_configs/<stage>_tiny.yaml`` (issue 22, part 4).

Before: each notebook mapped some twenty parameters to config fields by hand (28 lines in notebook 06),
with the demo's values typed a second time as parameter defaults, and ``warmup_steps = min(2, STEPS - 1)``
gave the 7B GRPO and ASO runs (``STEPS = -1``) a warm-up of -2 steps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jupytext
import pytest
import yaml

from vqalib.report.stage_config import BUDGET_SCHEDULER, seed_configs, stage_config
from vqalib.train.common import CONFIG_CLASSES, load_config

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_OF = {"sft": "04_sft", "grpo": "05_grpo", "aso": "06_aso"}
#: The fields in which a notebook's default config differs from its stage's tiny YAML, and why: the run
#: folder (every stage); the logging cadence (about ten points) and a data-loader worker (SFT); the time
#: budget with its step cap, schedule and held-out curve (GRPO, ASO).
NOTEBOOK_FIELDS = {
    "sft": {"output_dir", "logging_steps", "num_workers"},
    "grpo": {"output_dir", "init_from", "max_steps", "max_train_seconds", "eval_every_seconds", "eval_limit",
             "lr_scheduler"},
    "aso": {"output_dir", "init_from", "pi_ref_path", "max_steps", "max_train_seconds", "eval_every_seconds",
            "eval_limit", "lr_scheduler"},
}
#: Parameters of 04-06 that name a config field: the run's data and seed (every notebook has them), the model
#: of notebook 04's story, where it runs, and the held-out split; EVAL_LIMIT (the final predictions, not the
#: curve's ``eval_limit``: CURVE_LIMIT) and EPS (notebook 06's floored side run; the trained config keeps
#: CONFIG's ``eps``) only share a name. Everything else comes from CONFIG or SET.
FIELD_PARAMETERS = {"DATA_DIR", "SAMPLE_SIZE", "SEED", "MODEL", "DEVICE", "NUM_WORKERS", "EVAL_SPLIT", "EVAL_LIMIT",
                    "EPS"}


def _yaml(tmp_path, **values) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_the_order_is_config_run_folder_fields_conventions_set(tmp_path):
    cfg_file = _yaml(tmp_path, lr=1e-3, max_steps=80, warmup_steps=5, logging_steps=50, output_dir="elsewhere",
                     batch_size=4)
    cfg = stage_config("aso", cfg_file, "runs/r", "batch_size=2", batch_size=3, lr=None, data_dir="/d")
    assert cfg.lr == 1e-3  # a None field keeps the file's value
    assert (cfg.output_dir, cfg.init_from, cfg.pi_ref_path) == ("runs/r/checkpoints/aso", "runs/r/checkpoints/sft",
                                                                "runs/r/checkpoints/aso/pi_ref.pt")
    assert cfg.data_dir == "/d" and cfg.batch_size == 2  # SET beats the notebook's field, which beats the file
    assert cfg.logging_steps == 10 and cfg.warmup_steps == 5  # ASO: min(10, 80 // 8); warm-up < 80 steps
    assert cfg.lr_scheduler == "cosine" and cfg.max_train_seconds == 0


def test_conventions_follow_the_resolved_steps_and_yield_to_set(tmp_path):
    cfg_file = _yaml(tmp_path, warmup_steps=20, logging_steps=7)
    short = stage_config("sft", cfg_file, "runs/r", "max_steps=3")
    assert (short.logging_steps, short.warmup_steps) == (1, 2)  # about 10 points, at most every 20; warm-up < 3
    long = stage_config("sft", cfg_file, "runs/r", "max_steps=800")
    assert (long.logging_steps, long.warmup_steps) == (20, 20)
    epoch = stage_config("grpo", cfg_file, "runs/r", "max_steps=-1")
    assert (epoch.logging_steps, epoch.warmup_steps) == (1, 20)  # an epoch: the file's warm-up, not min(w, -2)
    assert stage_config("sft", cfg_file, "runs/r", "max_steps=3 logging_steps=2 warmup_steps=0").logging_steps == 2


def test_a_budget_brings_its_schedule_unless_set_names_one(tmp_path):
    cfg_file = _yaml(tmp_path, lr_scheduler="cosine")
    assert stage_config("grpo", cfg_file, "r", max_train_seconds=10.0).lr_scheduler == BUDGET_SCHEDULER
    assert stage_config("grpo", cfg_file, "r", "lr_scheduler=constant", max_train_seconds=10.0).lr_scheduler == "constant"
    with pytest.raises(ValueError, match="lr_scheduler='cosine' decays"):
        stage_config("grpo", cfg_file, "r", "lr_scheduler=cosine", max_train_seconds=10.0)


def test_set_takes_quoted_values_and_refuses_unknown_keys(tmp_path):
    cfg_file = _yaml(tmp_path)
    assert stage_config("sft", cfg_file, "r", "instruction='Rate it, please.'").instruction == "Rate it, please."
    with pytest.raises(ValueError, match="unknown sft config key 'learning_rate'"):
        stage_config("sft", cfg_file, "r", "learning_rate=1")
    with pytest.raises(ValueError, match="CONFIG is empty"):
        stage_config("sft", "", "r")
    with pytest.raises(FileNotFoundError, match="training config"):
        stage_config("sft", str(tmp_path / "missing.yaml"), "r")


def test_seed_configs_differ_in_seed_and_folder_only(tmp_path):
    cfg = stage_config("grpo", _yaml(tmp_path), "runs/r", seed=3)
    seeds = seed_configs(cfg, "runs/r", range(3, 5))
    assert list(seeds) == [3, 4]
    assert seeds[3].output_dir == "runs/r/checkpoints/grpo" and seeds[4].output_dir == "runs/r/checkpoints/grpo_seed4"
    assert dataclasses.replace(seeds[4], seed=3, output_dir=cfg.output_dir) == cfg


# ------------------------------------------------------------------ the notebooks themselves

def notebook_config(stem: str, params: dict):
    """The config notebook ``stem`` builds for ``params`` (with ``RUN_DIR``: the cell makes its folder): its
    parameters cell, the parameters, then its code cells up to the one that defines ``cfg`` (imports and the
    config; nothing trains)."""
    cells = [c.source for c in jupytext.read(ROOT / "notebooks" / f"{stem}.py").cells if c.cell_type == "code"]
    ns: dict = {"display": lambda *a, **k: None}
    exec(cells[0], ns)
    declared = set(ns) - {"display", "__builtins__"}
    ns.update(params)
    for src in cells[1:]:
        exec(src, ns)
        if "cfg" in ns:
            return ns["cfg"], declared
    raise AssertionError(f"{stem} defines no cfg")


def _param_sets(stem: str) -> list[str]:
    return sorted(p.name.split(".")[1] for p in (ROOT / "notebooks" / "params").glob(f"{stem}.*.yaml"))


@pytest.mark.parametrize("stage", list(NOTEBOOK_OF))
def test_the_default_notebook_config_is_the_tiny_yaml_but_for_the_notebook_fields(stage, tmp_path):
    cfg, declared = notebook_config(NOTEBOOK_OF[stage], {"RUN_DIR": str(tmp_path)})
    demo = load_config(stage, f"env/train_configs/{stage}_tiny.yaml")
    differ = {f for f in dataclasses.asdict(cfg) if getattr(cfg, f) != getattr(demo, f)}
    assert differ == NOTEBOOK_FIELDS[stage], differ ^ NOTEBOOK_FIELDS[stage]
    fields = {f.name.upper() for f in dataclasses.fields(CONFIG_CLASSES[stage])}
    assert declared & fields <= FIELD_PARAMETERS, f"{NOTEBOOK_OF[stage]} restates config fields: {declared & fields}"


@pytest.mark.parametrize("stage", list(NOTEBOOK_OF))
def test_every_parameter_set_resolves_to_a_valid_config(stage, tmp_path):
    """Each named set (smoke, qwen7b_lora, qwen3vl8b_lora) builds a config that validates; ASO reads pi_ref after score-free
    text or at the keyword (issue 9, issue 20)."""
    from vqalib.train.collator import SCORE_FREE_MODES

    stem = NOTEBOOK_OF[stage]
    assert {"smoke", "qwen7b_lora", "qwen3vl8b_lora"} <= set(_param_sets(stem))
    for name in _param_sets(stem):
        params = yaml.safe_load((ROOT / "notebooks" / "params" / f"{stem}.{name}.yaml").read_text()) or {}
        cfg, _ = notebook_config(stem, {**params, "DATA_DIR": params.get("DATA_DIR", "/data/my_vqa"),
                                        "RUN_DIR": str(tmp_path)})  # as the runner passes them
        assert cfg.output_dir == f"{tmp_path}/checkpoints/{stage}" and cfg.data_dir, name
        assert cfg.warmup_steps >= 0 and cfg.logging_steps >= 1, name
        if stage == "aso":
            assert cfg.on_policy or cfg.rationale in SCORE_FREE_MODES or cfg.target_position == "keyword", name


@pytest.mark.parametrize("stage", ["sft", "grpo", "aso"])
def test_the_qwen3_vl_parameter_set_trains_qwen3_vl(stage, tmp_path):
    """The qwen3vl8b_lora set trains Qwen3-VL-8B-Instruct (LoRA, bf16), its frames sampled at 32-pixel
    multiples; the qwen7b_lora set stays Qwen2.5-VL at 28."""
    from vqalib.train.common import config_family, sampling_config

    stem = NOTEBOOK_OF[stage]
    for name, family, factor in (("qwen3vl8b_lora", "qwen3_vl", 32), ("qwen7b_lora", "qwen2_5_vl", 28)):
        params = yaml.safe_load((ROOT / "notebooks" / "params" / f"{stem}.{name}.yaml").read_text()) or {}
        cfg, _ = notebook_config(stem, {**params, "DATA_DIR": "/data/my_vqa", "RUN_DIR": str(tmp_path)})
        assert config_family(cfg).name == family, (name, cfg.model)
        assert sampling_config(cfg).patch_factor == factor
        assert cfg.finetune == "lora" and cfg.bf16, name
