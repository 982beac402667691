"""Command lines run as a user runs them, each in a fresh interpreter (a subprocess with a timeout):
``papermill --help-notebook`` on every notebook, and ``python -m vqalib train ... --print-config``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vqalib.core.runs import project_root
from vqalib.notebook_runner import list_notebooks

NOTEBOOKS = list_notebooks()
IDS = [nb.stem for nb in NOTEBOOKS]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_help_notebook_documents_every_parameter(nb_path):
    import papermill as pm

    declared = pm.inspect_notebook(str(nb_path))
    undocumented = [n for n, p in declared.items() if not p["help"].strip() or p["inferred_type_name"] == "None"]
    assert not undocumented, f"{nb_path.name}: parameters without a type or a comment: {undocumented}"
    out = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(nb_path)],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    assert "RUN_DIR: str" in out, out


def test_several_overrides_after_one_set():
    cfg = train_config(["aso", "--config", "env/train_configs/aso_7b.yaml",
                        "--set", "data_dir=/data/my_vqa", "finetune=lora", "lr=5e-5", "grad_accum=32"])
    assert (cfg["data_dir"], cfg["finetune"], cfg["lr"], cfg["grad_accum"]) == ("/data/my_vqa", "lora", 5e-5, 32)
    cfg = train_config(["aso", "--set", "lam=0.5", "--set", "beta=2", "max_steps=3"])  # repeated --set still works
    assert (cfg["lam"], cfg["beta"], cfg["max_steps"]) == (0.5, 2.0, 3)


def train_config(argv):
    """The resolved config the train CLI prints, run as a user runs it (a subprocess)."""
    import json

    res = subprocess.run([sys.executable, "-m", "vqalib", "train", *argv, "--print-config"], cwd=project_root(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)
