"""Notebooks run headless on data a user brings (each execution with a timeout): notebooks 01 and 02
on a converted ratings table (0-100, two dimensions, one phase; a two-rater ratings-only study; a
study with a pilot phase, grid and raw agreement side by side), notebook 07 on generated prediction
files and on the real KoNViD clips. The helpers that build the tables come from the unit tests of
the same readers (``test_rating_tables``, ``test_wild_tables``, ``test_evaluation``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from test_evaluation import simulated
from test_rating_tables import WIDE, study  # noqa: F401  (study: a module fixture used below)
from test_wild_tables import LONG
from vqalib.core.runs import project_root
from vqalib.data import agreement as A
from vqalib.data.dataset import from_ratings_csv, save_dataset

ROOT = Path(__file__).resolve().parents[2]
#: Seconds one notebook may run here before the test fails as hung (smoke-sized inputs take well under a minute).
NOTEBOOK_TIMEOUT_S = 900


@pytest.mark.notebooks
@pytest.mark.slow
def test_notebooks_01_02_run_on_a_csv_dataset_with_two_dimensions_and_one_phase(tmp_path):
    """'Works on any dataset in the schema': a bring-your-own CSV (0-100 scale, 2 dimensions, final
    phase only, no rationales, no tags) saved with save_dataset runs through notebooks 01 and 02."""
    import papermill as pm

    from vqalib.data.dataset import from_ratings_csv, save_dataset
    from vqalib.core.runs import project_root
    from vqalib.data.synth import write_mp4

    rng = np.random.default_rng(0)
    lines = ["clip,r1_sharp,r2_sharp,r3_sharp,r1_look,r2_look,r3_look"]
    (tmp_path / "media").mkdir()
    for i in range(12):
        write_mp4(tmp_path / "media" / f"c{i}.mp4", np.full((4, 16, 16, 3), 20 * i, np.uint8), fps=4)
        q, a = rng.uniform(0, 100, size=2)
        lines.append(f"c{i}," + ",".join(str(int(np.clip(v + rng.normal(0, 8), 0, 100))) for v in (q, q, q, a, a, a)))
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    ds = from_ratings_csv(tmp_path / "s.csv", video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
                          dimension_map={"sharp": "clarity_quality", "look": "aesthetic_quality"}, scale=(0, 100),
                          video_dir=tmp_path / "media", path_template="{video}.mp4")
    data = save_dataset(ds, tmp_path / "byo")
    run_dir = tmp_path / "run"
    for nb in ("01_data_statistics", "02_annotator_agreement"):
        params = {"DATA_DIR": str(data), "RUN_DIR": str(run_dir)}
        if nb.startswith("02"):
            params["N_BOOT"] = 10
        pm.execute_notebook(str(project_root() / "notebooks" / f"{nb}.ipynb"), str(tmp_path / f"{nb}.ipynb"),
                            parameters=params, cwd=str(project_root()), progress_bar=False,
                            execution_timeout=NOTEBOOK_TIMEOUT_S)
    m1 = json.loads((run_dir / "01_data_statistics" / "metrics.json").read_text())
    assert m1["n_videos"] == 12 and set(m1["levels_used"]) == {"aesthetic_quality", "clarity_quality"}
    m2 = json.loads((run_dir / "02_annotator_agreement" / "metrics.json").read_text())
    assert "final_clarity_quality_alpha_interval" in m2 and not any(k.startswith("pilot_") for k in m2)


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("only, extra", [("01", ["TOKENIZER", "whitespace"]), ("02", ["N_BOOT", "0"])])
def test_notebooks_01_02_run_on_a_ratings_only_two_rater_study(tmp_path, only, extra):
    """Converted with min_raters=2 and check_files=False, saved: notebooks 01 and 02 run on the folder.
    Before: too_few_raters (the notebooks passed their own 3), then every video 'does not exist'."""
    rng = np.random.default_rng(0)
    rows = [(f"c{i:02d}", r, round(float(rng.uniform(1, 5)), 1)) for i in range(24) for r in ("01", "1")]
    csv = tmp_path / "study.csv"
    csv.write_text("video,rater,dim,score\n" + "".join(
        f"{v},{r},{d},{s}\n" for v, r, s in rows for d in ("clarity_quality", "motion_quality")))
    ds = from_ratings_csv(csv, **LONG)
    data_dir = save_dataset(ds, tmp_path / "study")
    run_dir = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "vqalib", "run-notebooks", "--only", only, "--run-dir", str(run_dir),
                          "-p", "DATA_DIR", str(data_dir), "-p", *extra],
                         cwd=project_root(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


@pytest.mark.notebooks
@pytest.mark.slow
def test_notebook_02_reports_grid_and_raw_agreement_side_by_side(study, tmp_path):
    """The user's path: convert the table once, save it, run notebook 02 on it from the command line
    (``-p`` values converted to the declared types), read both tables it wrote."""
    import json
    import subprocess
    import sys

    from vqalib.core.runs import project_root

    root, table = study
    rng = np.random.default_rng(3)
    pilot = table.copy()
    cols = [c for c in table.columns if c.endswith("_sharpness")]
    noisy = np.clip(np.round(pilot[cols].to_numpy() + rng.normal(0, 12, pilot[cols].shape), 1), 0, 100)
    pilot[cols] = np.where(pilot[cols].to_numpy() == -1, -1, noisy)
    both = pd.concat([pilot.assign(phase="pilot"), table.assign(phase="final")])
    csv = root / "study_phases.csv"
    both.to_csv(csv, index=False)
    ds = from_ratings_csv(csv, video_dir=root / "media", na_values=[-1], phase_col="phase", **WIDE)
    data_dir = save_dataset(ds, tmp_path / "my_vqa")
    run_dir = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "vqalib", "run-notebooks", "--only", "02", "--run-dir", str(run_dir),
                          "-p", "DATA_DIR", str(data_dir), "-p", "N_BOOT", "20", "-p", "STRICT", "yes"],
                         cwd=project_root(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((run_dir / "02_annotator_agreement" / "metrics.json").read_text())
    assert metrics["has_raw_scale"] is True and metrics["raw_tolerance"] == 25.0 and metrics["raw_scale"] == [0.0, 100.0]
    side = pd.read_csv(run_dir / "02_annotator_agreement" / "tables" / "agreement_grid_vs_raw.csv")
    raw = A.agreement_table(ds.ratings, phases=["pilot", "final"], n_boot=0, tol=25.0, value="raw_score")
    got = side.set_index(["phase", "dimension", "statistic"])
    for row in raw.itertuples():
        assert got.loc[(row.phase, row.dimension, "alpha_interval"), "raw"] == pytest.approx(row.alpha_interval)
        assert metrics[f"{row.phase}_{row.dimension}_alpha_interval_raw"] == pytest.approx(row.alpha_interval)
    assert (side["raw_minus_grid"].abs() > 0).any()


@pytest.mark.notebooks
@pytest.mark.slow
def test_notebook_07_on_generated_prediction_files(tmp_path):
    """Notebook 07 headless on simulated base (no skill, many parse failures) and aso (skilled) files."""
    import json

    import papermill as pm
    import yaml

    from vqalib.eval.predictions_file import make_manifest, write_predictions
    from vqalib.video.frames import SamplingConfig

    root = Path(__file__).resolve().parents[2]
    man = make_manifest("simulated", SamplingConfig(), {"note": "test"})
    write_predictions(tmp_path / "predictions" / "base.jsonl", simulated(40, 0.0, 1, fail_every=3), man)
    write_predictions(tmp_path / "predictions" / "aso.jsonl", simulated(40, 4.0, 2, fail_every=20), man)
    params = yaml.safe_load((root / "notebooks" / "params" / "07_evaluation.smoke.yaml").read_text())
    params.update(RUN_DIR=str(tmp_path), BENCHMARK_DIR="")
    pm.execute_notebook(str(root / "notebooks" / "07_evaluation.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters=params, cwd=str(root), progress_bar=False,
                        execution_timeout=NOTEBOOK_TIMEOUT_S)
    m = json.loads((tmp_path / "07_evaluation" / "metrics.json").read_text())
    assert m["table1_parsed/aso/motion_quality/srcc"] > 0.9
    assert abs(m["table1_expected/base/motion_quality/srcc"]) < 0.5
    assert m["parse_failures/base"] == sum(len(range(k, 40, 3)) for k in range(5))
    assert m["table1_parsed/base/motion_quality/n_failed"] == 14
    assert (tmp_path / "07_evaluation" / "figures" / "reliability.png").is_file()


@pytest.mark.notebooks
def test_notebook07_cross_benchmark_section(tmp_path):
    """Notebook 07's Table 2 section runs the same code on the real KoNViD clips (skips without them)."""
    import json

    import papermill as pm
    import yaml

    konvid = SHARED_DATA / "videos" / "konvid"
    if not konvid.is_dir():
        pytest.skip(f"real clips not found at {konvid}")
    params = yaml.safe_load((ROOT / "notebooks" / "params" / "07_evaluation.smoke.yaml").read_text())
    params.update(RUN_DIR=str(tmp_path / "run"), BENCHMARK_DIR=str(konvid), BENCHMARK="KoNViD")
    pm.execute_notebook(str(ROOT / "notebooks" / "07_evaluation.ipynb"), str(tmp_path / "07.ipynb"),
                        parameters=params, cwd=str(ROOT), progress_bar=False, execution_timeout=900)
    metrics = json.loads((tmp_path / "run" / "07_evaluation" / "metrics.json").read_text())
    assert metrics["table2/KoNViD/tiny/mean_quality/n_found"] == 2
    assert metrics["table2/KoNViD/tiny/mean_quality/n_missing"] == 1198
    table = pd.read_csv(tmp_path / "run" / "07_evaluation" / "tables" / "table2_KoNViD.csv")
    assert set(table["combination"]) >= {"mean_quality", "mean5", "clarity_quality"}
