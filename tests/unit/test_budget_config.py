"""The wall-clock budget's settings (``vqalib.train.budget``): config validation, the train CLI's
``--print-config``, and the one demo budget both comparison notebooks declare. Runs under a budget:
``tests/integration/test_budget.py``."""

from __future__ import annotations

import json

import pytest

from vqalib.train.common import load_config


def test_config_validation_of_budget_fields():
    with pytest.raises(ValueError, match="lr_scheduler='cosine' decays over max_steps.*constant_with_warmup"):
        load_config("grpo", None, ["max_train_seconds=30"])
    cfg = load_config("grpo", None, ["max_train_seconds=30", "lr_scheduler=constant_with_warmup",
                                     "eval_every_seconds=10", "eval_limit=20"])
    assert (cfg.max_train_seconds, cfg.eval_every_seconds, cfg.eval_limit, cfg.eval_split) == (30.0, 10.0, 20, "test")
    for bad in ("max_train_seconds=-1", "eval_every_seconds=-5", "eval_limit=-1"):
        with pytest.raises(ValueError, match=f"{bad.split('=')[0]}=.*use 0 \\(off\\)"):
            load_config("aso", None, [bad])
    with pytest.raises(ValueError, match="max_train_seconds.*not a valid float"):
        load_config("sft", None, ["max_train_seconds=soon"])


def test_cli_accepts_the_budget_fields(capsys):
    from vqalib.train.cli import main

    assert main(["grpo", "--print-config", "--set", "max_train_seconds=45", "lr_scheduler=constant_with_warmup",
                 "eval_every_seconds=15"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["max_train_seconds"] == 45.0 and cfg["eval_every_seconds"] == 15.0
    assert main(["grpo", "--set", "max_train_seconds=45"]) == 2
    assert "use lr_scheduler=constant_with_warmup" in capsys.readouterr().err


def test_notebooks_05_and_06_share_the_demo_budget():
    """Both comparison notebooks default to the one demo budget and evaluation interval."""
    import papermill as pm

    from vqalib.notebook_runner import list_notebooks
    from vqalib.train.budget import DEMO_BUDGET_S, DEMO_EVAL_EVERY_S

    nbs = {nb.stem[:2]: nb for nb in list_notebooks()}
    for n in ("05", "06"):
        p = pm.inspect_notebook(str(nbs[n]))
        assert float(p["BUDGET_S"]["default"]) == DEMO_BUDGET_S, n
        assert float(p["EVAL_EVERY_S"]["default"]) == DEMO_EVAL_EVERY_S, n
