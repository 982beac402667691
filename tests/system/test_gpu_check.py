"""bench/gpu_check.py run as a process without a GPU: the clear "no CUDA" error, ``--help``, the
``--dry-run`` (the same code path end to end on CPU, from a copy of the checkout with no ``../shared``
beside it and no virtual environment in it: what the lent GPU machine receives) and ``--from-json``.
Its parts in one process (arguments, 7B architecture, FLOP counting, the memory table):
``tests/unit/test_gpu_check_numbers.py``. The measurements need a GPU (docs/benchmarks.md, "GPU check")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402

SCRIPT = ROOT / "bench" / "gpu_check.py"


# ------------------------------------------------------------------------------------------------ the script
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("entry", ["python", "sh"])
def test_without_cuda_it_stops_at_once_saying_so(tmp_path, entry):
    docs = tmp_path / "benchmarks.md"
    head = [sys.executable, str(SCRIPT)] if entry == "python" else ["bash", str(SCRIPT.with_suffix(".sh"))]
    proc = subprocess.run([*head, "--docs", str(docs)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "no CUDA device" in proc.stderr and "torch.cuda.is_available() is False" in proc.stderr
    assert "--dry-run" in proc.stderr
    assert not docs.exists()  # nothing half-written


def test_help_names_the_stages_and_the_dry_run():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT).stdout
    for stage in gpu_check.STAGES:
        assert stage in out
    assert "--dry-run" in out and "--budget-s" in out and "docs/benchmarks.md" in out


# ------------------------------------------------------------------------------------------------ dry run
def _copy_checkout(dest: Path) -> Path:
    """What the device tool sends: tracked and untracked-not-ignored files (no .venv, no ../shared)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True, timeout=300).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file() and not src.is_symlink():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("device")
    repo = _copy_checkout(base / "repo")
    assert not (repo / ".venv").exists() and not (repo.parent / "shared").exists()
    shim = base / "bin"
    shim.mkdir()
    (shim / "python3").write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    (shim / "python3").chmod(0o755)
    blocked = base / "blocked"  # the lent GPU machine has no video decoder and no bitsandbytes
    blocked.mkdir()
    # None in sys.modules: ``import`` fails and ``importlib.util.find_spec`` answers None, as for a missing package
    (blocked / "sitecustomize.py").write_text("import sys\nfor _n in ('decord', 'av', 'bitsandbytes'):\n"
                                              "    sys.modules[_n] = None\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VQALIB_CACHE")}
    env.update(PATH=f"{shim}:{env.get('PATH', '')}", VQALIB_CACHE=str(base / "cache"), HF_HUB_OFFLINE="1",
               PYTHONPATH=str(blocked))
    out = base / "out" / "gpu_check.json"
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "--out", str(out)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1500)
    return proc, out, repo


def test_dry_run_runs_every_stage_end_to_end_from_a_bare_checkout(dry_run):
    proc, out, repo = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["dry_run"] and res["device"] == "CPU (dry run)"
    stages = {r["stage"]: r for r in res["stages"]}
    assert list(stages) == list(gpu_check.STAGES)
    for name in ("sft_lora", "sft_full", "aso", "grpo"):
        r = stages[name]
        assert r["s_per_step"] > 0 and r["tokens_per_s"] > 0 and r["timed_steps"] >= 1, r
        assert r["flops_forward"] > 0 and r["flops_backward"] > 0, r
        assert r["gradient_checkpointing"] and r["flops_recompute"] > 0, r  # as configured: recomputation counted
        assert r["video_tokens"] > 0 and r["freeze_vision"]
    # what is trained differs as configured: LoRA trains far fewer weights than full fine-tuning
    assert stages["sft_lora"]["n_trainable"] < stages["sft_full"]["n_trainable"] / 4
    assert (stages["aso"]["rationale_loss"], stages["aso"]["reference"]) == ("kl", "frozen copy")
    g = stages["grpo"]
    assert (g["G"], g["reference"]) == (8, "adapter disabled")  # G from grpo_7b_lora.yaml
    assert 0 < g["generated_tokens"] <= g["G"] * g["max_new_tokens"] and g["rollout_s"] > 0
    assert "skipped" in stages["sft_qlora"]
    tail = proc.stdout.strip().splitlines()
    head = next(i for i, line in enumerate(tail) if line.startswith("gpu_check summary"))
    assert len(tail) - head == 1 + len(gpu_check.STAGES)  # the summary ends stdout
    assert "DRY RUN" in tail[head]
    assert not (repo / "docs" / "benchmarks.md").read_text().count("measured on CPU")  # dry run writes no docs


def test_docs_are_written_from_a_runs_json(dry_run, tmp_path):
    """``--from-json`` (what the lead runs on the JSON a GPU machine sent back) writes both sections."""
    _, out, _ = dry_run
    res = json.loads(out.read_text())
    res.update(dry_run=False, device="NVIDIA H200", peak_tflops=989.4, matmul_tflops=790.0, matmul_ratio=790 / 989.4)
    for r in res["stages"]:
        r["peak_GiB"] = 1.5
        gpu_check.add_utilisation(r, 989.4)
    src = tmp_path / "gpu_check.json"
    src.write_text(json.dumps(res))
    bench, training = tmp_path / "benchmarks.md", tmp_path / "training.md"
    bench.write_text(f"# B\n\n{gpu_check.BEGIN}\n(no GPU run yet)\n{gpu_check.END}\n")
    training.write_text(f"# T\n\n{gpu_check.MEM_BEGIN}\nold\n{gpu_check.MEM_END}\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--from-json", str(src), "--docs", str(bench),
                           "--training-docs", str(training)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    b, t = bench.read_text(), training.read_text()
    assert "measured on NVIDIA H200" in b and "| sft_lora |" in b and "no GPU run yet" not in b
    assert "1.5 (sft_lora) *measured (NVIDIA H200)*" in t and "1.5 (grpo) *measured (NVIDIA H200)*" in t
    assert "old" not in t and proc.stdout.strip().splitlines()[-len(gpu_check.STAGES) - 1].startswith("gpu_check summary")
