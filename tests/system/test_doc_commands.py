"""Every command in README.md, CHANGELOG.md and docs/*.md, run here or skipped with the reason (issue 8, section 4).

The command blocks of README.md, CHANGELOG.md and the docs pages live in ``docs/snippets/`` (issue 22, part 5):
each block follows a ``<!-- snippet: NAME -->`` marker and equals the file (``python docs/snippets/_sync.py``
checks, ``--write`` copies); the tests run the snippet files, not the prose around them. Only
``docs/training.md`` and ``docs/benchmarks.md`` (:data:`SNIPPET_EXEMPT`) still hold blocks of their own.

The commands are read from the files themselves (fenced ``bash`` blocks, with ``\\`` continuations
joined and comments dropped, and inline code that starts like a command), so a command added to the
docs without a decision below fails :func:`test_every_doc_command_has_a_decision`.

Each decision is one of:

* ``Run(subs, extra)``: run the command as written after the listed substitutions only: paths
  (``/data/my_vqa`` -> a dataset generated here by the docs' own "your ratings" snippet, own_ratings.py,
  ``runs/...`` -> a temporary folder), ``python`` / ``.venv/bin/`` -> the interpreter running the
  tests, plus the extra arguments listed (``max_steps=1``, the smoke sample data);
* ``Check(reason, ...)``: the real run needs what this machine lacks (a CUDA GPU, the 7B model from the
  hub, several GPUs); what can be checked without it is run (the resolved training config with
  ``--print-config``, papermill's ``--prepare-only``, the parameter sets), then the test is skipped
  with the reason;
* ``Skip(reason)``: nothing useful to run here (the test suite itself, a server, an installer);
* ``InSnippet(name)``: a line of a snippet whose lines depend on each other (make clips, score them, train
  on them, score again), run in order by :func:`test_quickstart_snippets_run_in_order`.

Every subprocess has a timeout.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = ROOT / "docs" / "snippets"
#: docs pages whose command blocks are not snippets yet (kept as they are by issue 22; their commands are still
#: decided below, read from the prose)
SNIPPET_EXEMPT = ("training.md", "benchmarks.md")
COMMAND_START = ("python ", "make ", ".venv/bin/", "papermill ", "accelerate ", "OMP_NUM_THREADS=", "uv ", "conda ",
                 "jupyter ", "tensorboard ", "bench/")
TIMEOUT = 600  # seconds per subprocess
PY = sys.executable
BIN = str(Path(sys.executable).parent)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def snippet_lines(name: str) -> list[str]:
    """The commands of a shell snippet (``docs/snippets/NAME``), as :func:`doc_commands` reads them from a block."""
    text = (SNIPPETS / name).read_text().replace("\\\n", " ")
    return [c for c in (" ".join(re.sub(r"(^|\s)#.*$", "", line).split()) for line in text.splitlines()) if c]


def doc_commands() -> dict[str, list[str]]:
    """``{command: [files it appears in]}`` for every command in README.md and docs/*.md."""
    found: dict[str, list[str]] = {}
    for path in DOC_FILES:
        text = path.read_text()
        for block in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", text, flags=re.M | re.S):
            for line in block.replace("\\\n", " ").splitlines():
                cmd = " ".join(re.sub(r"(^|\s)#.*$", "", line).split())
                if cmd:
                    found.setdefault(cmd, []).append(path.name)
        prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
        for span in re.findall(r"`([^`]+)`", prose):
            cmd = " ".join(span.split())
            if cmd.startswith(COMMAND_START):
                found.setdefault(cmd, []).append(path.name)
    return found


@dataclass
class Run:
    subs: list[tuple[str, str]] = field(default_factory=list)  # (written, substituted), applied in order
    extra: list[str] = field(default_factory=list)  # arguments appended (max_steps=1, smoke data)


@dataclass
class Check:
    reason: str  # why the real run cannot happen here
    check: str  # name of the check function below


@dataclass
class Skip:
    reason: str


@dataclass
class InSnippet:
    snippet: str  # docs/snippets/<snippet>: its lines run in order in test_quickstart_snippets_run_in_order


GPU_7B = "needs a CUDA GPU (config: device cuda, bf16) and Qwen/Qwen2.5-VL-7B-Instruct from the hub"
GPU_8B = "needs a CUDA GPU (config: device cuda, bf16) and Qwen/Qwen3-VL-8B-Instruct from the hub"
MULTI_GPU = "needs several GPUs (accelerate launch with DDP / DeepSpeed ZeRO-2 / FSDP)"
BENCH = "a benchmark: minutes of timing runs; `make bench` runs it and docs/benchmarks.md records the results"
MULTI_PROC = ("run by tests/system/test_multiprocess.py (2 processes, gloo, CPU); its last test checks docs/training.md "
              "shows exactly these commands")
MULTI_NODE = "needs several machines"
MEASUREMENT = "a measurement: a 400-step training run (~30 min on 2 cores) and its pi_ref read-out"
FRAGMENT = "a fragment quoted in prose, not a whole command"
#: docs/benchmarks.md, generation settings leaking from the checkpoint (issue 19, item 5)
LEAK_SFT = ("python -m vqalib train sft --config env/train_configs/sft_tiny.yaml --set model=tiny max_steps=150 "
            "batch_size=4 max_clips=48 max_frames=4 time_jitter=1 augment=false warmup_steps=5 report_to=none "
            "output_dir=runs/leak/sft")
LEAK_MEASUREMENT = ("a measurement: a 150-step SFT run (~35 min on 2 busy cores), then greedy and sampled answers on 24 "
                    "clips four times; tests/unit/test_generation_settings.py checks the same property on the tiny model")
SMOKE_TRAIN = ["max_steps=1", "sample_size=smoke", "max_clips=4"]  # one step on 4 clips of the smoke sample data

#: docs/training.md's budgeted GRPO run: run by test_budgeted_training_command (2 s, a point every second)
BUDGETED = ("python -m vqalib train grpo --config env/train_configs/grpo_tiny.yaml --set max_train_seconds=20 "
            "lr_scheduler=constant_with_warmup eval_every_seconds=10")

#: README: the second SFT seed, and the full GRPO-vs-ASO comparison (issue 12)
SFT_SEED1 = "python -m vqalib run-notebooks --only 04 --run-dir runs/sft_seed1 -p SEED 1"
FULL_COMPARISON = ("python -m vqalib run-notebooks --only 04,05,06,07 --run-dir runs/compare3 -p SEEDS 3 -p BUDGET_S 40 "
                   "-p EVAL_EVERY_S 10 -p CURVE_LIMIT 0")

#: README: the demo's results, written from the run folder (issue 22)
REPORT_DEMO = "python -m vqalib report runs/demo --markdown -o docs/results.md"

DECISIONS: dict[str, Run | Check | Skip | InSnippet] = {
    # ---- README.md
    "make venv": Skip("creates .venv from uv.lock (uv sync, from the network); the tests run in that environment"),
    "source .venv/bin/activate": Skip("a shell builtin that changes the calling shell; the tests already run in .venv"),
    "make demo": Skip("the whole chain on the default data (~10-60 min); the smoke chain (tests/unit/test_notebooks.py) "
                      "runs the same runner over every notebook"),
    REPORT_DEMO: Check("needs runs/demo, written by `make demo`", "check_report_on_a_run_folder"),
    "make test": Skip("the test suite this test belongs to"),
    "make test-fast": Skip("the test suite this test belongs to"),
    "make test-unit": Skip("the unit tier of the test suite this test belongs to (the same as make test-fast)"),
    "make bench": Skip(BENCH),
    "bench/bench_*.py": Skip("a file pattern (what `make bench` runs), not a command"),
    "make sync-notebooks": Skip("rewrites the repository's notebooks; tests/unit/test_notebooks.py checks the pairs are in sync"),
    "python docs/snippets/_sync.py --write": Check("rewrites README.md and docs/ from the snippets",
                                                   "check_snippets_in_sync"),
    **{c: InSnippet("score_sample.sh") for c in snippet_lines("score_sample.sh")},
    **{c: InSnippet("train_own.sh") for c in snippet_lines("train_own.sh") if " run-notebooks " not in c},
    # any_schema.sh: run in order, for int10 and mos9, by tests/integration/test_schema_pipeline.py
    **{c: InSnippet("any_schema.sh") for c in snippet_lines("any_schema.sh")},
    "python -m vqalib import-labels": Skip(FRAGMENT),
    "python -m vqalib run-notebooks -p DATA_DIR runs/sample --run-dir runs/mine_notebooks": Check(
        "the whole chain on the data (~10-60 min); tests/unit/test_notebooks.py runs every notebook in smoke mode",
        "check_overrides_typed"),
    SFT_SEED1: Run(subs=[("python", PY), ("runs/sft_seed1", "{tmp}/sft_seed1")], extra=["--params", "smoke"]),
    FULL_COMPARISON: Check("about 13 minutes of training on 2 cores (SFT, then 3 seeds x 40 s of GRPO and of ASO with "
                           "held-out curves); notebooks 04-07 run in smoke mode with 2 seeds in tests/unit/test_notebooks.py",
                           "check_overrides_convert"),
    "papermill --help-notebook notebooks/NN_name.ipynb": Run(
        subs=[("papermill", f"{BIN}/papermill"),
              ("notebooks/NN_name.ipynb", "notebooks/02_annotator_agreement.ipynb")]),
    "jupyter lab": Skip("an interactive server; tests/system/test_browser.py serves JupyterLab and drives notebook 03"),
    "conda env create -f environment.yml": Skip("needs conda and the network; tests/unit/test_environment.py keeps "
                                                 "environment.yml and pyproject.toml in step"),
    "python -m vqalib run-notebooks --params qwen7b_lora -p DATA_DIR /data/my_vqa --run-dir runs/real": Check(
        GPU_7B, "check_param_set_and_overrides"),
    ".venv/bin/papermill notebooks/04_sft.ipynb runs/real/04_sft.ipynb -f notebooks/params/04_sft.qwen7b_lora.yaml "
    "-p DATA_DIR /data/my_vqa -p RUN_DIR runs/real": Check(GPU_7B, "check_papermill_prepare_only"),
    "mkdir -p runs/real": Run(subs=[("runs/real", "{tmp}/real")]),
    "python -m vqalib train sft --config env/train_configs/sft_7b_lora.yaml --set data_dir=/data/my_vqa": Check(
        GPU_7B, "check_print_config"),
    "python -m vqalib train grpo --config env/train_configs/grpo_7b_lora.yaml --set data_dir=/data/my_vqa": Check(
        GPU_7B, "check_print_config"),
    "python -m vqalib train aso --config env/train_configs/aso_7b.yaml --set data_dir=/data/my_vqa finetune=lora "
    "lr=5e-5 grad_accum=32": Check(GPU_7B, "check_print_config"),
    "accelerate launch --config_file env/accelerate_ddp.yaml -m vqalib train sft --config "
    "env/train_configs/sft_7b_lora.yaml": Check(MULTI_GPU, "check_accelerate"),
    "accelerate launch --config_file env/accelerate_deepspeed_zero2.yaml -m vqalib train sft --config "
    "env/train_configs/sft_7b.yaml": Check(MULTI_GPU, "check_accelerate"),
    "accelerate launch --config_file env/accelerate_fsdp.yaml -m vqalib train aso --config "
    "env/train_configs/aso_7b.yaml": Check(MULTI_GPU, "check_accelerate"),
    # ---- README, model families (issue 24)
    "bench/bench_family_level_pass.py": Skip(BENCH),
    "OMP_NUM_THREADS=2 .venv/bin/python bench/bench_family_level_pass.py --clips 2 --frames 8": Skip(BENCH),
    "python -m vqalib score runs/sample/clips --model tiny-qwen3-vl -o runs/scores/tiny_qwen3vl.csv": Run(
        subs=[("python", PY), ("runs/sample/clips", "{sample}/clips"), ("runs/scores/tiny_qwen3vl.csv", "{tmp}/q3vl.csv")],
        extra=["--limit", "4"]),
    "python -m vqalib score runs/sample/clips --model tiny-qwen3.5 -o runs/scores/tiny_qwen35.csv": Run(
        subs=[("python", PY), ("runs/sample/clips", "{sample}/clips"), ("runs/scores/tiny_qwen35.csv", "{tmp}/q35.csv")],
        extra=["--limit", "4"]),
    "python -m vqalib run-notebooks --params qwen3vl8b_lora -p DATA_DIR /data/my_vqa --run-dir runs/real_qwen3vl": Check(
        GPU_8B, "check_param_set_and_overrides"),
    "python -m vqalib train sft --config env/train_configs/sft_qwen3vl_8b_lora.yaml --set data_dir=/data/my_vqa": Check(
        GPU_8B, "check_print_config"),
    "python -m vqalib train sft --config env/train_configs/sft_7b_lora.yaml --set data_dir=/data/my_vqa "
    "model=Qwen/Qwen3.5-9B output_dir=runs/qwen35/checkpoints/sft": Check(
        "needs a CUDA GPU and Qwen/Qwen3.5-9B from the hub", "check_print_config"),
    # ---- docs/results.md (generated) and docs/scoring.md
    REPORT_DEMO.removesuffix(" -o docs/results.md"): Check("needs runs/demo, written by `make demo`",
                                                           "check_report_on_a_run_folder"),
    "python -m vqalib score runs/sample/clips --model tiny -o runs/scores/tiny_fast.csv": Run(
        subs=[("python", PY), ("runs/sample/clips", "{sample}/clips"), ("runs/scores/tiny_fast.csv", "{tmp}/tiny_fast.csv")]),
    "python -m vqalib score runs/sample/clips --model tiny --mode generate --max-new-tokens 32 "
    "-o runs/scores/tiny_gen.parquet": Run(
        subs=[("python", PY), ("runs/sample/clips", "{sample}/clips"),
              ("runs/scores/tiny_gen.parquet", "{tmp}/tiny_gen.parquet")], extra=["--limit", "4"]),
    "python -m vqalib benchmark KoNViD --videos /data/KoNViD_1k_videos --model tiny --n-boot 200": Run(
        subs=[("python", PY), ("/data/KoNViD_1k_videos", "{shared}/videos/konvid")],
        extra=["--output", "{tmp}/konvid.csv"]),
    # ---- docs/training.md, "ASO where the model decides" (issue 20)
    ".venv/bin/python bench/bench_aso_decides.py --sft-steps 800 --aso-steps 120 --seeds 3": Skip(BENCH),
    ".venv/bin/python bench/bench_aso_decides.py --seeds 2": Skip(BENCH),
    # ---- docs/benchmarks.md
    "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_video.py": Skip(BENCH),
    ".venv/bin/python bench/bench_video_memory.py": Skip(BENCH),
    "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_scoring.py --clips 2 --threads 1 --frames 8 32 --train-batch 16":
        Skip(BENCH),
    "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_train_steps.py --batch 4 --repeats 5": Skip(BENCH),
    "OMP_NUM_THREADS=2 .venv/bin/python bench/bench_grpo_compute.py": Skip(BENCH),
    "bench/bench_grpo_compute.py": Skip(FRAGMENT),
    "OMP_NUM_THREADS=1 python bench/bench_train_steps.py --batch 4 --repeats 5": Skip(BENCH),
    "bench/bench_train_steps.py --config ../shared/data/qwen2_5_vl/config.json --lora --bf16 --device cuda":
        Skip("needs a CUDA GPU (--device cuda); " + BENCH),
    # ---- docs/training.md
    "python -m vqalib train sft --config env/train_configs/sft_tiny.yaml": Run(
        subs=[("python", PY)], extra=["--set", *SMOKE_TRAIN, "output_dir={tmp}/sft"]),
    "python -m vqalib train grpo --config env/train_configs/grpo_tiny.yaml": Run(
        subs=[("python", PY)], extra=["--set", *SMOKE_TRAIN, "init_from={tmp}/sft", "output_dir={tmp}/grpo"]),
    BUDGETED: Run(subs=[("python", PY), ("max_train_seconds=20", "max_train_seconds=2"),
                        ("eval_every_seconds=10", "eval_every_seconds=1")],
                  extra=["sample_size=smoke", "max_clips=4", "eval_limit=3", "batch_size=1", "num_generations=2",
                         "max_new_tokens=12", "init_from={tmp}/sft", "output_dir={tmp}/grpo_budget"]),
    "python -m vqalib train aso --config env/train_configs/aso_tiny.yaml": Run(
        subs=[("python", PY)], extra=["--set", *SMOKE_TRAIN, "init_from={tmp}/sft", "output_dir={tmp}/aso"]),
    "python -m vqalib train sft --config env/train_configs/sft_7b_lora.yaml --set data_dir=data/ultravqa": Check(
        GPU_7B, "check_print_config"),
    "python -m vqalib train aso --print-config --set lam=0.5": Run(subs=[("python", PY)]),
    "tensorboard --logdir runs/": Skip("a server (TensorBoard); the trainers' logs are checked in tests/integration/test_train_runs.py"),
    "uv pip install deepspeed": Skip("installs and compiles DeepSpeed from the network"),
    "uv sync --extra multigpu": Skip("installs and compiles DeepSpeed from the network"),
    # ---- docs/training.md: several processes, several machines, the pi_ref measurement
    **{c: Skip(MULTI_PROC) for c in (
        "python -m vqalib train sft --set sample_size=smoke --set device=cpu --set report_to=none --set augment=false "
        "--set warmup_steps=0 --set lr_scheduler=constant --set logging_steps=1 --set max_steps=1 --set seed=0 "
        "--set num_workers=0 --set optim=sgd --set model=tiny --set rationale=none --set lr=0.1 --set batch_size=4 "
        "--set output_dir=runs/mp/sft_1proc",
        "torchrun --standalone --nproc_per_node 2 -m vqalib train sft --set sample_size=smoke --set device=cpu "
        "--set report_to=none --set augment=false --set warmup_steps=0 --set lr_scheduler=constant --set logging_steps=1 "
        "--set max_steps=1 --set seed=0 --set num_workers=0 --set optim=sgd --set model=tiny --set rationale=none --set lr=0.1 "
        "--set batch_size=2 --set output_dir=runs/mp/sft",
        "torchrun --standalone --nproc_per_node 2 -m vqalib train aso --set sample_size=smoke --set device=cpu "
        "--set report_to=none --set augment=false --set warmup_steps=0 --set lr_scheduler=constant --set logging_steps=1 "
        "--set max_steps=1 --set seed=0 --set num_workers=0 --set optim=sgd --set init_from= --set model=tiny "
        "--set rationale=short --set rationale_loss=none --set lr=0.1 --set batch_size=2 --set output_dir=runs/mp/aso",
        "accelerate launch --config_file env/accelerate_cpu_ddp.yaml -m vqalib train grpo --set sample_size=smoke "
        "--set device=cpu --set report_to=none --set augment=false --set warmup_steps=0 --set lr_scheduler=constant "
        "--set logging_steps=1 --set seed=0 --set num_workers=0 --set optim=sgd --set init_from= --set model=tiny "
        "--set batch_size=1 --set num_generations=2 --set max_new_tokens=16 --set max_steps=2 "
        "--set output_dir=runs/mp/grpo")},
    "accelerate launch --config_file env/accelerate_ddp.yaml --num_machines 2 --num_processes 16 "
    "--machine_rank $NODE_RANK --main_process_ip 10.0.0.1 --main_process_port 29500 -m vqalib train sft "
    "--config env/train_configs/sft_7b_lora.yaml": Skip(MULTI_NODE),
    "torchrun --nnodes 2 --nproc_per_node 8 --node_rank $NODE_RANK --master_addr 10.0.0.1 --master_port 29500 "
    "-m vqalib train sft --config env/train_configs/sft_7b_lora.yaml": Skip(MULTI_NODE),
    "python -m vqalib train sft --config env/train_configs/sft_tiny.yaml --set rationale=full --set max_steps=400 "
    "--set output_dir=runs/probe/sft_full": Skip(MEASUREMENT),
    ".venv/bin/python bench/pi_ref_sharpness.py --checkpoint runs/demo/checkpoints/sft --max-clips 64": Skip(MEASUREMENT),
    # ---- docs/scoring.md: several processes
    "torchrun --standalone --nproc_per_node 4 -m vqalib score /data/LSVQ/videos --model Qwen/Qwen2.5-VL-7B-Instruct "
    "-o runs/scores/lsvq_q7b.parquet": Skip("needs 4 GPUs, the LSVQ videos and the 7B weights from the hub; "
                                           "tests/system/test_sharded_scoring.py runs score under torchrun with 2 CPU "
                                           "processes on generated clips"),
    "torchrun --standalone --nproc_per_node 4 -m vqalib benchmark LSVQ --split 1080p --videos /data/LSVQ/videos "
    "--model Qwen/Qwen2.5-VL-7B-Instruct": Skip("needs 4 GPUs, the LSVQ videos and labels and the 7B weights; "
                                                "tests/system/test_sharded_scoring.py runs benchmark under torchrun "
                                                "with 2 CPU processes on generated clips and a KoNViD-layout file"),
    ".venv/bin/python bench/bench_sharded_scoring.py --clips 24 --processes 2": Skip(BENCH),
    **{c: Skip("needs the videos of the five benchmarks and a trained checkpoint; "
               "tests/integration/test_suite_runs.py runs benchmark-suite on the shared KoNViD clips and label files")
       for c in ("python -m vqalib benchmark-suite --model runs/demo/checkpoints/aso --videos-root /data/vqa",
                 "python -m vqalib benchmark-suite --model runs/demo/checkpoints/aso --videos-root /data/vqa "
                 "--videos KoNViD=/data/KoNViD_1k_videos")},
    # ---- docs/benchmarks.md
    ".venv/bin/python bench/bench_pi_ref.py --nproc 2 --sample-size default --max-clips 256": Skip(BENCH),
    ".venv/bin/python bench/notebook_loop.py --only 03 --runs 20 --cell-timeout 120 --stock": Skip(BENCH),
    ".venv/bin/python bench/notebook_loop.py --only 03 --runs 20 --cell-timeout 300": Skip(BENCH),
    ".venv/bin/python bench/notebook_loop.py --runs 3 --cell-timeout 900": Skip(BENCH),
    "OMP_NUM_THREADS=2 .venv/bin/python bench/bench_score.py --clips 16 --batch-size 4 --workers 1 --no-generate":
        Skip(BENCH),
    "OMP_NUM_THREADS=2 .venv/bin/python bench/bench_score.py --clips 8 --batch-size 4 --workers 2": Skip(BENCH),
    "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frame_cache.py": Skip(BENCH),
    "bench/bench_frame_cache.py": Skip(FRAGMENT),
    LEAK_SFT: Skip(LEAK_MEASUREMENT),
    ".venv/bin/python bench/bench_generation_leak.py --checkpoint runs/leak/sft --clips 24": Skip(LEAK_MEASUREMENT),
    "bash bench/gpu_check.sh": Skip("needs a CUDA GPU; tests/system/test_gpu_check.py runs its argument handling and its "
                                    "no-CUDA error"),
    "bash bench/gpu_check.sh --dry-run": Skip("run from a bare copy of the checkout by tests/system/test_gpu_check.py::"
                                              "test_dry_run_runs_every_stage_end_to_end_from_a_bare_checkout"),
    ".venv/bin/python bench/gpu_check.py --from-json <files_at>/gpu_check.json":
        Skip("needs the JSON of a GPU run; tests/system/test_gpu_check.py::test_docs_are_written_from_a_runs_json runs it "
             "on the dry run's JSON"),
    # ---- fragments quoted in prose (not whole commands)
    **{c: Skip(FRAGMENT) for c in (".venv/bin/", "OMP_NUM_THREADS=1", "accelerate launch", "bench/bench_score.py",
                                   "uv sync", "bench/gpu_check.py", "python -m vqalib ...", "python -m vqalib report",
                                   "python -m vqalib report RUN_DIR [--markdown]", "python -m vqalib score",
                                   "python -m vqalib benchmark", "python -m vqalib train", "python docs/snippets/_sync.py",
                                   "python -m vqalib benchmark-suite", "bench/bench_sharded_scoring.py")},
    "python -m vqalib sample-data --size smoke --root runs/sample": InSnippet("score_sample.sh"),
}


def test_every_doc_command_has_a_decision():
    found = doc_commands()
    undecided = sorted(set(found) - set(DECISIONS))
    assert not undecided, f"commands in the docs with no decision in {__file__}: {undecided}"
    stale = sorted(set(DECISIONS) - set(found))
    assert not stale, f"decisions for commands no longer in the docs: {stale}"
    wrong = [c for c, d in DECISIONS.items() if isinstance(d, InSnippet) and c not in snippet_lines(d.snippet)]
    assert not wrong, f"InSnippet decisions for commands that are not lines of their snippet: {wrong}"


# --------------------------------------------------------------------------- snippets (issue 22, part 5)


def _sync_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("snippet_sync", SNIPPETS / "_sync.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_doc_blocks_equal_their_snippets():
    assert _sync_tool().out_of_sync() == [], "run: python docs/snippets/_sync.py --write"


def test_every_command_block_is_a_snippet_and_every_snippet_is_used():
    tool = _sync_tool()
    loose, used = [], set()
    for path in DOC_FILES:
        text = path.read_text()
        used |= {m["name"] for m in tool.includes(text)}
        if path.name in SNIPPET_EXEMPT:
            continue
        for m in re.finditer(r"^(.*)\n```(?:bash|sh|console|python)\n", text, flags=re.M):
            if not m.group(1).startswith("<!-- snippet: "):
                loose.append(f"{path.name} line {text[:m.start(1)].count(chr(10)) + 2}")
    assert not loose, f"command blocks without a snippet (move them to docs/snippets/, include with a marker): {loose}"
    unused = sorted(set(tool.snippet_files()) - used)
    assert not unused, f"snippets no doc includes: {unused}"


def test_architecture_doc_draws_the_enforced_layers():
    """docs/architecture.md's layer table is tests/unit/test_layers.py's LAYERS (rank and package, every package)."""
    from test_layers import LAYERS, TOP

    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `?(\w+)`? \|", text, flags=re.M)
    drawn = {pkg: int(rank) for rank, pkg in rows}
    assert drawn == {**LAYERS, "top": TOP}, f"docs/architecture.md's table differs from tests/unit/test_layers.py: {drawn}"


def test_aso_quickstart_snippet():
    """README's "ASO in 30 seconds", run as it is: π* is the closed form, training on the soft target reaches it."""
    import contextlib
    import io

    import torch

    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile((SNIPPETS / "aso_quickstart.py").read_text(), "docs/snippets/aso_quickstart.py", "exec"), ns)
    levels = torch.tensor([1.0 + 0.5 * i for i in range(9)], dtype=torch.float64)
    want = ns["pi_ref"] * torch.exp(-(levels - 2.5).abs())  # lam = beta = 1, s* = 2.5
    assert torch.allclose(ns["pi_star"], want / want.sum(), atol=1e-12)
    pi_theta = ns["logits"].softmax(-1).detach()
    assert (pi_theta - ns["pi_star"]).abs().max() < 1e-3, "500 steps of ASO did not reach pi*"
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["pi_ref", "pi*", "pi_theta"]
    assert float(lines[1].split()[2]) == pytest.approx(float(ns["pi_star"] @ levels), abs=0.005)


def _run(argv: list[str], timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{shlex.join(argv)} failed ({res.returncode}):\n{res.stderr[-4000:]}"
    return res


def _substituted(cmd: str, decision: Run, tmp: Path, data: Path | None = None) -> list[str]:
    """The command with the decision's substitutions (whole arguments) and extra arguments, as an argv."""
    subs = dict(decision.subs)
    argv = [subs.get(a, a) for a in shlex.split(cmd)] + decision.extra
    out = [a.replace("{tmp}", str(tmp)) for a in argv]
    return [a.replace("/data/my_vqa", str(data)) for a in out] if data else out


# --------------------------------------------------------------------------- README's own dataset snippet


@pytest.fixture(scope="module")
def my_vqa(tmp_path_factory) -> Path:
    """Run the "your own ratings" snippet (docs/snippets/own_ratings.py), substituting only its paths: a generated
    per-rater CSV on a 0-100 scale for ``my_scores.csv``, generated clips for ``/data/my_videos``,
    a temporary folder for ``/data/my_vqa``. The result stands in for ``/data/my_vqa`` below."""
    from vqalib.schema.levels import DIMENSION_KEYS
    from vqalib.data.synth import write_mp4

    tmp = tmp_path_factory.mktemp("byod")
    videos = tmp / "my_videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    table = {"clip": [f"clip{i:02d}" for i in range(12)]}
    dims = ["sharpness" if k == "clarity_quality" else k for k in DIMENSION_KEYS]
    for clip in table["clip"]:
        write_mp4(videos / f"{clip}.mp4", rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), fps=4)
    for r in range(3):
        for d in dims:
            table[f"r{r + 1}_{d}"] = np.round(rng.uniform(0, 100, len(table["clip"])), 1)
    pd.DataFrame(table).to_csv(tmp / "my_scores.csv", index=False)
    snippet = (SNIPPETS / "own_ratings.py").read_text()
    subs = {'"my_scores.csv"': repr(str(tmp / "my_scores.csv")), '"/data/my_videos"': repr(str(videos)),
            '"/data/my_vqa"': repr(str(tmp / "my_vqa"))}
    for old, new in subs.items():
        assert old in snippet, f"docs/snippets/own_ratings.py no longer contains {old}; update the substitutions"
        snippet = snippet.replace(old, new)
    exec(compile(snippet, "docs/snippets/own_ratings.py", "exec"), {})
    from vqalib.data.dataset import load_dataset

    ds = load_dataset(tmp / "my_vqa")
    assert len(ds.videos) == 12 and set(ds.ratings["dimension"]) == set(DIMENSION_KEYS)
    assert ds.info["scale"] == [0.0, 100.0] and ds.ratings["raw_score"].notna().all()
    return tmp / "my_vqa"


# --------------------------------------------------------------------------- checks for what cannot run here


def check_print_config(cmd: str, tmp: Path, data: Path) -> None:
    """The training config the command resolves (all --set items applied and typed) without training."""
    argv = [PY if a == "python" else a for a in shlex.split(cmd)] + ["--print-config"]
    argv = [a.replace("/data/my_vqa", str(data)) for a in argv]
    cfg = json.loads(_run(argv).stdout)
    sets = dict(a.split("=", 1) for a in shlex.split(cmd.split("--set", 1)[1])) if "--set" in cmd else {}
    for key, value in sets.items():
        want = str(data) if value == "/data/my_vqa" else value
        assert str(cfg[key]) == want or cfg[key] == type(cfg[key])(want), (key, cfg[key], want)


def check_param_set_and_overrides(cmd: str, tmp: Path, data: Path) -> None:
    """Every notebook has the parameter set, its values have the declared types, and the -p values
    convert to the declared types (what run-notebooks does before running anything)."""
    from vqalib.notebook_runner import convert_parameter, declared_parameters, list_notebooks, load_params, typed_overrides

    argv = shlex.split(cmd)
    params_set = argv[argv.index("--params") + 1]
    overrides = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "-p"}
    notebooks = list_notebooks()
    for nb in notebooks:
        declared = declared_parameters(nb)
        for key, value in load_params(nb, params_set).items():
            assert convert_parameter(key, value, declared[key], nb.name) == value
    typed = typed_overrides(notebooks, overrides)
    assert all(t == {"DATA_DIR": "/data/my_vqa"} for t in typed.values())


def check_overrides_convert(cmd: str, tmp: Path, data: Path) -> None:
    """The notebooks of ``--only`` exist and every ``-p`` value converts to the type each notebook
    that declares it declares (what run-notebooks checks before running anything); the GRPO and ASO
    notebooks get the same seeds and budget."""
    from vqalib.notebook_runner import list_notebooks, typed_overrides

    argv = shlex.split(cmd)
    only = argv[argv.index("--only") + 1].split(",")
    notebooks = [nb for nb in list_notebooks() if nb.name[:2] in only]
    assert [nb.name[:2] for nb in notebooks] == only
    overrides = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "-p"}
    typed = typed_overrides(notebooks, overrides)
    assert typed["05_grpo.ipynb"] == typed["06_aso.ipynb"] == {"SEEDS": 3, "BUDGET_S": 40.0, "EVAL_EVERY_S": 10.0,
                                                                "CURVE_LIMIT": 0}


def check_papermill_prepare_only(cmd: str, tmp: Path, data: Path) -> None:
    """papermill parses the command and writes the parameterised notebook without executing it."""
    argv = shlex.split(cmd)
    argv[0] = f"{BIN}/papermill"
    argv = [a.replace("/data/my_vqa", str(data)).replace("runs/real", str(tmp / "real")) for a in argv]
    (tmp / "real").mkdir()  # the README's `mkdir -p runs/real` before it
    _run([*argv, "--prepare-only"])
    nb = json.loads((tmp / "real" / "04_sft.ipynb").read_text())
    injected = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    src = "".join(injected["source"])
    assert f'DATA_DIR = "{data}"' in src and 'MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"' in src


def check_accelerate(cmd: str, tmp: Path, data: Path) -> None:
    """The accelerate config file exists and names a multi-process setup; the training part resolves."""
    import yaml

    argv = shlex.split(cmd)
    acc = yaml.safe_load((ROOT / argv[argv.index("--config_file") + 1]).read_text())
    assert acc["distributed_type"] in {"MULTI_GPU", "DEEPSPEED", "FSDP"} and acc["num_processes"] >= 2
    train = argv[argv.index("-m") + 1:]
    _run([PY, "-m", *train, "--print-config"])


def check_overrides_typed(cmd: str, tmp: Path, data: Path) -> None:
    """Every ``-p`` value converts to the type of each notebook that declares it (what run-notebooks checks
    before running anything), and the training notebooks declare them."""
    from vqalib.notebook_runner import list_notebooks, typed_overrides

    argv = shlex.split(cmd)
    overrides = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "-p"}
    typed = typed_overrides(list_notebooks(), overrides)
    users = {nb for nb, t in typed.items() if t}
    assert {"04_sft.ipynb", "05_grpo.ipynb", "06_aso.ipynb"} <= users
    assert all(typed[nb] == overrides for nb in users)


def check_report_on_a_run_folder(cmd: str, tmp: Path, data: Path) -> None:
    """The report command on a synthetic run folder in place of runs/demo (tests/unit/test_report_results.py
    builds it): it writes the Markdown of docs/results.md, with the run's numbers. docs/results.md itself
    is that command's output."""
    from test_report_results import make_run

    run = make_run(tmp / "runs" / "demo")
    out = tmp / "results.md"
    argv = [{"python": PY, "runs/demo": str(run), "docs/results.md": str(out)}.get(a, a) for a in shlex.split(cmd)]
    res = _run(argv)
    text = out.read_text() if "-o" in argv else res.stdout
    assert text.startswith("# Results of the embedded default") and "| 0.77 [0.68, 0.85] | 0.71 [0.58, 0.81] |" in text
    committed = (ROOT / "docs" / "results.md").read_text()
    assert committed.startswith("# Results of the embedded default\n\nGenerated by `python -m vqalib report ")


def check_snippets_in_sync(cmd: str, tmp: Path, data: Path) -> None:
    """The tool's check mode (no --write): every block equals its snippet, so --write would change nothing."""
    _run([PY, "docs/snippets/_sync.py"])


CHECKS = {f.__name__: f for f in (check_print_config, check_param_set_and_overrides, check_papermill_prepare_only,
                                  check_overrides_convert, check_overrides_typed, check_report_on_a_run_folder,
                                  check_snippets_in_sync, check_accelerate)}


def _short(cmd: str) -> str:
    """A readable test id: the command without the common prefixes, at most 70 characters."""
    return re.sub(r"^(python -m vqalib |\.venv/bin/|OMP_NUM_THREADS=1 )", "", cmd)[:70]


def _ids(kind):
    return [c for c, d in DECISIONS.items() if isinstance(d, kind)]


@pytest.mark.parametrize("cmd", _ids(Check), ids=_short)
def test_commands_that_need_a_gpu_are_checked_then_skipped(cmd, my_vqa, tmp_path):
    decision = DECISIONS[cmd]
    CHECKS[decision.check](cmd, tmp_path, my_vqa)
    pytest.skip(f"checked with {decision.check}; the run itself {decision.reason}")


@pytest.mark.parametrize("cmd", _ids(Skip), ids=_short)
def test_commands_skipped_with_the_reason(cmd):
    pytest.skip(DECISIONS[cmd].reason)


# --------------------------------------------------------------------------- commands that run here


@pytest.fixture(scope="module")
def sample_root() -> Path:
    """The smoke sample dataset (cached; generated in seconds when not): clips the project makes."""
    from vqalib.data.synth import ensure_sample_dataset

    return ensure_sample_dataset("smoke", progress=False)


def _placeholders(decision: Run, request) -> Run:
    """``{sample}`` -> the smoke sample dataset, ``{shared}`` -> ../shared/data (skips without it)."""
    text = repr(decision)
    subs = {}
    if "{shared}" in text:
        from conftest import shared_data_or_skip

        subs["{shared}"] = str(shared_data_or_skip())
    if "{sample}" in text:
        subs["{sample}"] = str(request.getfixturevalue("sample_root"))

    def fill(a: str) -> str:
        for k, v in subs.items():
            a = a.replace(k, v)
        return a

    return Run([(w, fill(n)) for w, n in decision.subs], [fill(a) for a in decision.extra])


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in _ids(Run) if " train " not in c], ids=_short)
def test_run_command(cmd, tmp_path, request):
    if "../shared/data" in cmd:
        from conftest import shared_data_or_skip

        shared_data_or_skip()
    decision = _placeholders(DECISIONS[cmd], request)
    res = _run(_substituted(cmd, decision, tmp_path))
    if "--print-config" in cmd:
        assert json.loads(res.stdout)["lam"] == 0.5
    if "--help-notebook" in cmd:
        assert "RAW_TOLERANCE: float" in res.stdout
    if cmd.startswith("mkdir"):
        assert (tmp_path / "real").is_dir()
    if cmd.startswith("python -m vqalib score "):
        out = next(a for a in _substituted(cmd, decision, tmp_path) if a.startswith(str(tmp_path)))
        table = pd.read_parquet(out) if out.endswith(".parquet") else pd.read_csv(out)
        n_videos = 4 if "--limit" in decision.extra else len(list((request.getfixturevalue("sample_root") / "clips").glob("*.mp4")))
        assert len(table) == n_videos and (table["status"] == "ok").all(), table[["status"]].value_counts()
    if cmd.startswith("python -m vqalib benchmark "):
        assert "SRCC" in res.stdout and "KoNViD" in res.stdout, res.stdout[-2000:]
    if "--only 04" in cmd:
        assert json.loads((tmp_path / "sft_seed1" / "manifest.json").read_text())["notebooks"][0]["status"] == "ok"


@pytest.mark.slow
def test_quickstart_snippets_run_in_order(tmp_path):
    """README's quickstart as a user on a fresh clone runs it, from the project root: make clips
    (score_sample.sh), score them from the command line and from Python (score_api.py), train SFT then ASO
    on their ratings and score with the result (train_own.sh). Substituted: ``runs/`` -> a temporary
    ``runs/``, ``python`` -> this interpreter, and training stops after one step (``max_steps=1``)."""
    runs = tmp_path / "runs"

    def argv(cmd: str) -> list[str]:
        out = [PY if a == "python" else a.replace("runs/", f"{runs}/") for a in shlex.split(cmd)]
        return out + (["max_steps=1"] if " train " in cmd else [])

    for cmd in snippet_lines("score_sample.sh"):
        _run(argv(cmd))
    clips = sorted((runs / "sample" / "clips").glob("*.mp4"))
    sample = pd.read_csv(runs / "scores" / "sample.csv", dtype={"video_id": str})
    assert len(clips) == 32 and sorted(sample["video_id"]) == [c.stem for c in clips] and (sample["status"] == "ok").all()

    code = (SNIPPETS / "score_api.py").read_text().replace('"runs/', f'"{runs}/')
    ns: dict = {}
    exec(compile(code, "docs/snippets/score_api.py", "exec"), ns)
    api = pd.read_csv(runs / "scores" / "api.csv", dtype={"video_id": str})
    assert ns["run"].n_failed == 0
    pd.testing.assert_frame_equal(api.filter(like="_expected"), sample.filter(like="_expected"), atol=1e-4)  # same model, clips

    for cmd in [c for c in snippet_lines("train_own.sh") if " run-notebooks " not in c]:
        _run(argv(cmd))
    for stage in ("sft", "aso"):
        man = json.loads((runs / "mine" / stage / "vqalib_train_manifest.json").read_text())
        assert man["status"] == "done" and man["config"]["data_dir"] == f"{runs}/sample"
    mine = pd.read_csv(runs / "scores" / "mine.csv", dtype={"video_id": str})
    assert len(mine) == 32 and (mine["status"] == "ok").all()


TRAIN = {stage: next(c for c in _ids(Run) if f"train {stage} " in c and "tiny" in c and c != BUDGETED)
         for stage in ("sft", "grpo", "aso")}


@pytest.fixture(scope="module")
def train_tmp(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("doc_train")
    # sft_tiny.yaml trains tiny-pretrained: build it here (once per cache, ~1.5 min on an idle 2-core
    # machine; tests/unit/test_pretrain.py tests the build) rather than inside the command's subprocess timeout,
    # which a busy machine exceeded on a fresh cache
    from vqalib.model.loading import resolve_model_path

    resolve_model_path("tiny-pretrained")
    _run(_substituted(TRAIN["sft"], DECISIONS[TRAIN["sft"]], tmp))
    return tmp


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "grpo", "aso"])
def test_training_commands_run_one_step(stage, train_tmp):
    if stage != "sft":
        _run(_substituted(TRAIN[stage], DECISIONS[TRAIN[stage]], train_tmp))
    man = json.loads((train_tmp / stage / "vqalib_train_manifest.json").read_text())
    assert man["status"] == "done" and man["stage"] == stage and man["config"]["max_steps"] == 1


@pytest.mark.slow
def test_budgeted_training_command(train_tmp):
    """The budgeted GRPO command, its budget and curve interval shortened: stopped by the budget, with
    held-out points from step 0 to the end."""
    _run(_substituted(BUDGETED, DECISIONS[BUDGETED], train_tmp))
    out = train_tmp / "grpo_budget"
    man = json.loads((out / "vqalib_train_manifest.json").read_text())
    assert man["budget"]["stopped_by"] == "max_train_seconds" and man["budget"]["train_seconds"] >= 2
    curve = pd.read_csv(out / "curve.csv")
    assert curve["step"].iloc[0] == 0 and curve["point"].iloc[-1] == "end" and (curve["n_clips"] == 3).all()
