"""The notebooks on a rating schema other than the paper's: the smoke chain's notebooks 01, 02 and 04-07
with ``SCHEMA=int10`` (three dimensions rated 1-10) through the project's runner (``run-notebooks``, the
command ``make demo`` uses; a subprocess with a timeout). What each notebook logged and wrote names the
schema's dimensions and levels, never the paper's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vqalib.eval.predictions_file import read_predictions
from vqalib.schema.rating import INT10, schema_from_dict

ROOT = Path(__file__).resolve().parents[2]
#: The six notebooks take ~5 min on 2 idle cores; a hung kernel fails the test at this limit.
TIMEOUT_S = 2400


@pytest.mark.notebooks
@pytest.mark.slow
def test_notebooks_run_on_the_int10_schema(tmp_path):
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "vqalib", "run-notebooks", "--run-dir", str(run), "--params", "smoke",
                          "--only", "01,02,04,05,06,07", "-p", "SCHEMA", "int10"],
                         cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    m01 = json.loads((run / "01_data_statistics" / "metrics.json").read_text())
    assert set(m01["levels_used"]) == set(INT10.keys) and max(m01["levels_used"].values()) <= INT10.n_levels
    m02 = json.loads((run / "02_annotator_agreement" / "metrics.json").read_text())
    assert any(k.startswith("final_visual_quality_alpha") for k in m02)
    for stage in ("sft", "grpo", "aso"):
        man = json.loads((run / "checkpoints" / stage / "vqalib_train_manifest.json").read_text())
        assert schema_from_dict(man["rating_schema"]) == INT10, stage
    for name in ("base", "sft"):
        pred, manifest = read_predictions(run / "predictions" / f"{name}.jsonl")
        assert schema_from_dict(manifest["rating_schema"]) == INT10 and set(pred["dimension"]) == set(INT10.keys)
    executed = (run / "notebooks" / "07_evaluation.ipynb").read_text()
    assert "visual_quality" in executed or "Visual Quality" in executed
