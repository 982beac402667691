"""One-step SFT -> ASO -> GRPO runs through the CLI on a three-dimension 1-10 integer (INT10) dataset with a
missing label, and a MOS9 dataset with Gaussian soft labels (issue 23): the checkpoints carry the schema,
the manifests the missing-label counts, and a stage refuses a dataset of another schema than its init_from
checkpoint. Each run is a subprocess with a timeout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_schema_train import _dataset
from vqalib.schema import rating
from vqalib.schema.rating import INT10

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600
COMMON = ["model=tiny", "max_steps=1", "batch_size=2", "report_to=none", "logging_steps=1", "warmup_steps=0",
          "augment=false", "time_jitter=1", "frame_disk_cache_mb=0"]


def _train(stage: str, *sets: str) -> subprocess.CompletedProcess:
    code = "import sys; from vqalib.train.cli import main; sys.exit(main(sys.argv[1:]))"
    merged = dict(it.split("=", 1) for it in (*COMMON, *sets))  # an item overrides COMMON's value of its key
    args = [sys.executable, "-c", code, stage, "--config", f"env/train_configs/{stage}_tiny.yaml", "--set",
            *(f"{k}={v}" for k, v in merged.items())]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "vqalib_train_manifest.json").read_text())


@pytest.fixture(scope="module")
def int10_data(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("int10") / "data", INT10, {
        "v1": {"visual_quality": [7, 8, 9], "temporal_consistency": [1, 2, 2], "text_alignment": [10, 10, 9]},
        "v2": {"visual_quality": [3, 3, 4], "temporal_consistency": None, "text_alignment": [5, 6, 7]},
        "v3": {"visual_quality": [10, 9, 10], "temporal_consistency": [6, 6, 5], "text_alignment": [2, 1, 1]},
        "v4": {"visual_quality": [5, 5, 5], "temporal_consistency": [4, 3, 4], "text_alignment": None}})


@pytest.fixture(scope="module")
def int10_sft(int10_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sft"
    _ok(_train("sft", f"data_dir={int10_data}", f"output_dir={out}", "rationale=short"))
    return out


def test_sft_checkpoint_carries_the_schema_and_the_missing_counts(int10_sft):
    assert rating.schema_of_folder(int10_sft) == INT10
    man = _manifest(int10_sft)
    assert man["status"] == "done" and rating.schema_from_dict(man["rating_schema"]) == INT10
    assert man["missing_labels"]["by_dimension"] == {"visual_quality": 0, "temporal_consistency": 1, "text_alignment": 1}
    assert man["missing_labels"]["n_clips_with_missing"] == 2 and man["train_metrics"]["train_loss"] > 0


def test_aso_and_grpo_one_step_from_the_int10_sft(int10_data, int10_sft, tmp_path):
    aso = tmp_path / "aso"
    _ok(_train("aso", f"data_dir={int10_data}", f"init_from={int10_sft}", f"output_dir={aso}", "rationale=short",
               "pi_ref_health=off"))
    assert rating.schema_of_folder(aso) == INT10
    saved = __import__("torch").load(aso / "pi_ref.pt", weights_only=True)
    assert saved["pi_ref"]["v1"].shape == (3, 10)  # D = 3 dimensions x K = 10 levels
    step = [r for r in _manifest(aso)["log_history"] if "loss_score" in r][0]
    assert step["loss_score"] > 0 and step["n_dims_masked"] >= 1  # batch of 2 of the first clips: v2 lacks a label
    grpo = tmp_path / "grpo"
    _ok(_train("grpo", f"data_dir={int10_data}", f"init_from={int10_sft}", f"output_dir={grpo}",
               "num_generations=2", "max_new_tokens=12"))
    assert rating.schema_of_folder(grpo) == INT10
    step = [r for r in _manifest(grpo)["log_history"] if "reward" in r][0]
    assert step["n_completions"] == 4


def test_a_stage_refuses_data_of_another_schema_than_its_checkpoint(int10_sft, tmp_path):
    mos = _dataset(tmp_path / "mos9", rating.MOS9, {"v1": {"overall_quality": [3.0, 3.5, 4.0]},
                                                    "v2": {"overall_quality": [1.5, 2.0, 2.0]}})
    res = _train("aso", f"data_dir={mos}", f"init_from={int10_sft}", f"output_dir={tmp_path / 'aso'}")
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "int10" in text and "mos9" in text and "init_from" in text
    res = _train("sft", f"data_dir={mos}", f"output_dir={tmp_path / 'sft'}", "rating_schema=int10")
    assert res.returncode != 0 and "rating_schema" in (res.stdout + res.stderr)


def test_sft_and_aso_on_gaussian_soft_labels(tmp_path):
    gauss = rating.schema_from_dict({"preset": "mos9", "name": "mos9-gauss", "target_rule": "gaussian"})
    data = _dataset(tmp_path / "g", gauss, {"v1": {"overall_quality": [3.3]}, "v2": {"overall_quality": [4.6]},
                                            "v3": {"overall_quality": [1.8]}},
                    mos_std={"v1": 0.6, "v2": 0.3, "v3": 0.5})
    sft = tmp_path / "sft"
    _ok(_train("sft", f"data_dir={data}", f"output_dir={sft}", "rationale=none"))
    aso = tmp_path / "aso"
    _ok(_train("aso", f"data_dir={data}", f"init_from={sft}", f"output_dir={aso}", "rationale=none",
               "pi_ref_health=off"))
    assert rating.schema_of_folder(aso) == gauss
    step = [r for r in _manifest(aso)["log_history"] if "loss_score" in r][0]
    assert step["target_entropy"] > 0  # pi* over the nine levels from the soft labels (values: the unit test)
