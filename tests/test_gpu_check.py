"""bench/gpu_check.py on a machine without CUDA: argument handling, the clear "no CUDA" error and the
docs section it writes (the measurements themselves need a GPU; see docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402

SCRIPT = ROOT / "bench" / "gpu_check.py"


def _config(tmp_path) -> str:
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    return str(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("entry", ["python", "sh"])
def test_without_cuda_it_stops_at_once_saying_so(tmp_path, entry):
    docs = tmp_path / "benchmarks.md"
    head = [sys.executable, str(SCRIPT)] if entry == "python" else ["bash", str(SCRIPT.with_suffix(".sh"))]
    proc = subprocess.run([*head, "--config", _config(tmp_path), "--docs", str(docs)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "no CUDA device" in proc.stderr and "torch.cuda.is_available() is False" in proc.stderr
    assert not docs.exists()  # nothing half-written


def test_help_names_the_parts():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT).stdout
    for part in gpu_check.PARTS:
        assert part in out
    assert "--budget-s" in out and "docs/benchmarks.md" in out


@pytest.mark.parametrize("argv, message", [
    (["--parts", "train,warp"], "unknown part(s) ['warp']"),
    (["--parts", ","], "unknown part(s) []"),
    (["--device", "cpu"], "runs on a CUDA device"),
    (["--G", "0"], "--G must be >= 1"),
    (["--config", "/nonexistent/config.json"], "no such file"),
])
def test_bad_arguments_are_named(argv, message, tmp_path, capsys):
    if "--config" not in argv:
        argv = argv + ["--config", _config(tmp_path)]
    with pytest.raises(SystemExit) as err:
        gpu_check.parse_args(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_are_the_issue_settings(tmp_path):
    args = gpu_check.parse_args(["--config", _config(tmp_path)])
    assert args.parts == list(gpu_check.PARTS) and args.G == 8 and args.budget_s <= 480


def test_section_is_replaced_not_duplicated(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nintro\n")
    gpu_check.write_section(docs, "## GPU check: A\n\nfirst")
    gpu_check.write_section(docs, "## GPU check: B\n\nsecond")
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n")
    assert text.count(gpu_check.BEGIN) == 1 and "second" in text and "first" not in text


def test_section_renders_every_part_and_names_the_device(tmp_path):
    args = gpu_check.parse_args(["--config", _config(tmp_path)])
    results = {"train": {"setting": "7B lora", "matmul_tflops": 700.0,
                         "rows": [{"method": "sft", "s_per_step": 0.5, "tokens_per_s": 2400.0, "peak_mem_GiB": 20.0,
                                   "mfu": 0.31}]},
               "qlora": {"load_s": 60.0, "s_per_step": 0.9, "tokens_per_s": 1300.0, "peak_mem_GiB": 9.0, "loss": 12.0},
               "scoring": {"tokens": 1200, "tree_s": 0.05, "stacked9_s": 0.3, "passes45_s": 2.0, "max_abs_diff": 0.01},
               "errors": {}}
    body = gpu_check.render("NVIDIA H200", args, results, ["qlora"], 400.0)
    assert body.startswith("## GPU check: NVIDIA H200")
    assert "| sft | 0.500 | 2400 | 20.0 | 31.0% |" in body
    assert "40.0x" in body and "QLoRA" in body and "Skipped" in body
