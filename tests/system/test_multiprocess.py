"""Real multi-process training on CPU: 2 processes under ``torchrun`` (gloo), the tiny model, 1-2 steps.

What is proven, per stage:

* SFT and ASO, one step: 2 ranks x per-device batch B/2 give the same logged loss and the same
  updated weights as 1 process x batch B. Why it is exact up to float rounding: the Trainer's
  sampler draws the same seeded permutation in both runs and hands rank r the r-th block of B/2
  (so the union of the rank batches is the single-process batch); each rank's loss is a mean over
  its samples with equal weight per sample (SFT with ``rationale=none``: every answer has the same
  number of tokens; ASO: mean over clips x dimensions, ``rationale_loss=none``); DDP averages the
  rank gradients, which is then the gradient of the full-batch mean; the logged loss is the mean
  over ranks. With variable-length answers SFT's token mean becomes a mean of per-rank token means
  (documented in docs/training.md). Augmentation is off (its draws differ per rank), warm-up 0.
  The step is plain SGD (``optim=sgd``) so the weight update is lr x the gradient itself.
  Tolerance: |Δloss| <= 1e-5 and the two updates w - w0 differ by <= 1e-5 of their L2 norm: the
  gradients differ only in the order of float32 sums. (With AdamW the first step lr·g/(|g|+eps)
  amplifies those rounding differences for gradients near eps = 1e-8: measured max |Δw| 1.6e-6 for SFT
  and a relative update difference of 7e-4 for ASO, whose score-only loss leaves many gradients tiny.)
* ASO's π_ref is scored in shards (each rank prints its share, N/2 clips) and gathered: the file
  equals the single-process one and is written once.
* GRPO: 2 ranks sample, reward and step, launched by ``accelerate launch`` with
  ``env/accelerate_cpu_ddp.yaml`` (sampling differs per rank, so no equivalence check).
* FSDP2 (``fully_shard``, 2 processes on gloo, a script of its own): one sharded step of the tiny model,
  the full state dict gathered and saved as ``save_final`` does under FSDP, equal to the unsharded step.
* Every run: "saved" is printed once, the manifest records 2 processes, no temporary file is left in
  the fresh cache that both ranks filled at the same time (sample dataset, tiny model, frames).

Each launch has a timeout (``LAUNCH_TIMEOUT_S``); the tests are marked ``multiprocess`` and ``slow``
and run in ``make test``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_S = 900
COMMON = ["sample_size=smoke", "device=cpu", "report_to=none", "augment=false", "warmup_steps=0",
          "lr_scheduler=constant", "logging_steps=1", "max_steps=1", "seed=0", "num_workers=0", "optim=sgd"]


SFT = COMMON + ["model=tiny", "rationale=none", "lr=0.1"]  # the all-random tiny model, as for ASO and GRPO
ASO = COMMON + ["init_from=", "model=tiny", "rationale=short", "rationale_loss=none", "lr=0.1"]
GRPO = [o for o in COMMON if not o.startswith("max_steps=")] + ["init_from=", "model=tiny", "batch_size=1", "num_generations=2", "max_new_tokens=16", "max_steps=2"]


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(VQALIB_CACHE=str(cache), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


ACCELERATE_CPU = "env/accelerate_cpu_ddp.yaml"


def train_cmd(launcher: str, stage: str, overrides: list[str]) -> list[str]:
    """``python -m vqalib train`` under ``launcher``: "python" (1 process), "torchrun" (2 processes,
    ``torchrun --standalone --nproc_per_node 2``) or "accelerate" (``accelerate launch`` with
    :data:`ACCELERATE_CPU`, 2 processes). docs/training.md shows these commands (see the last test)."""
    sets = [a for o in overrides for a in ("--set", o)]
    head = {"python": [sys.executable],
            "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
            "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--config_file", ACCELERATE_CPU]}[launcher]
    return [*head, "-m", "vqalib", "train", stage, *sets]


def as_documented(cmd: list[str]) -> str:
    """The command as docs/training.md writes it (console scripts instead of ``python -m``)."""
    text = " ".join(cmd[1:])
    return (text.replace("-m torch.distributed.run", "torchrun").replace("-m accelerate.commands.launch", "accelerate launch")
            if cmd[1] == "-m" and cmd[2] != "vqalib" else "python " + text)


def launch(launcher: str, stage: str, overrides: list[str], cache: Path) -> str:
    """Run one training job under ``launcher`` (see :func:`train_cmd`); returns its stdout."""
    cmd = train_cmd(launcher, stage, overrides)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=_env(cache), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} ran past {LAUNCH_TIMEOUT_S} s\n{(exc.stdout or '')[-3000:]}{(exc.stderr or '')[-3000:]}")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


def manifest(out: Path) -> dict:
    return json.loads((out / "vqalib_train_manifest.json").read_text())


def first_loss(out: Path) -> float:
    return next(r["loss"] for r in manifest(out)["log_history"] if "loss" in r)


def assert_same_update(a: Path, b: Path, cache: Path) -> None:
    """The weights after the step agree: the two updates w - w0 differ by <= 1e-5 of their L2 norm;
    w0 is the tiny model both runs started from."""
    from safetensors.torch import load_file

    (w0_dir,) = [p for p in (cache / "models").iterdir() if p.name.startswith("tiny-")]
    w0, wa, wb = (load_file(d / "model.safetensors") for d in (w0_dir, a, b))
    assert wa.keys() == wb.keys() == w0.keys()
    da = torch.cat([(wa[k].double() - w0[k].double()).flatten() for k in w0])
    db = torch.cat([(wb[k].double() - w0[k].double()).flatten() for k in w0])
    assert float(da.norm()) > 1e-3  # the step moved the weights: the comparison means something
    rel = float((da - db).norm() / da.norm())
    assert rel <= 1e-5, f"updates differ by {rel:.2e} of their norm"


def assert_written_once(stdout: str, stage: str, out: Path, cache: Path) -> None:
    assert stdout.count(f"{stage}: saved to") == 1, stdout[-2000:]
    assert manifest(out)["n_processes"] == 2
    leftovers = [p for p in cache.rglob("*") if ".tmp" in p.name]
    assert not leftovers, f"temporary files left by concurrent ranks: {leftovers[:5]}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A fresh cache, filled concurrently by the two ranks of the first 2-process launch."""
    return tmp_path_factory.mktemp("mp_cache")


def test_sft_two_ranks_equal_one_process(tmp_path, cache):
    sft = SFT
    two = tmp_path / "two"
    out2 = launch("torchrun", "sft", sft + ["batch_size=2", f"output_dir={two}"], cache)
    assert_written_once(out2, "sft", two, cache)
    one = tmp_path / "one"
    launch("python", "sft", sft + ["batch_size=4", f"output_dir={one}"], cache)
    assert abs(first_loss(one) - first_loss(two)) <= 1e-5, (first_loss(one), first_loss(two))
    assert_same_update(one, two, cache)


def test_aso_two_ranks_equal_one_process_and_share_pi_ref(tmp_path, cache):
    aso = ASO
    two = tmp_path / "two"
    out2 = launch("torchrun", "aso", aso + ["batch_size=2", f"output_dir={two}"], cache)
    assert_written_once(out2, "aso", two, cache)
    shares = re.findall(r"pi_ref: rank (\d) of 2 scores (\d+) of (\d+) clips", out2)  # the ranks' lines can interleave
    assert sorted(r for r, _, _ in shares) == ["0", "1"], out2[-2000:]
    n_total = int(shares[0][2])
    assert sorted(int(n) for _, n, _ in shares) == [n_total // 2, n_total - n_total // 2]
    one = tmp_path / "one"
    launch("python", "aso", aso + ["batch_size=4", f"output_dir={one}"], cache)
    pi1 = torch.load(one / "pi_ref.pt", weights_only=True)["pi_ref"]
    pi2 = torch.load(two / "pi_ref.pt", weights_only=True)["pi_ref"]
    assert pi1.keys() == pi2.keys() and len(pi1) == n_total
    assert max(float((pi1[k] - pi2[k]).abs().max()) for k in pi1) <= 1e-5
    assert abs(first_loss(one) - first_loss(two)) <= 1e-5, (first_loss(one), first_loss(two))
    assert_same_update(one, two, cache)


def test_grpo_two_ranks_train_and_save_once(tmp_path, cache):
    out = tmp_path / "grpo"
    stdout = launch("accelerate", "grpo", GRPO + [f"output_dir={out}"], cache)
    assert_written_once(stdout, "grpo", out, cache)
    logged = [r for r in manifest(out)["log_history"] if "loss" in r]
    assert [r["step"] for r in logged] == [1, 2]
    assert all(r["n_completions"] == 2 for r in logged)  # rank 0's group of G=2 per step


DOCUMENTED = [("torchrun", "sft", SFT + ["batch_size=2", "output_dir=runs/mp/sft"]),
              ("python", "sft", SFT + ["batch_size=4", "output_dir=runs/mp/sft_1proc"]),
              ("torchrun", "aso", ASO + ["batch_size=2", "output_dir=runs/mp/aso"]),
              ("accelerate", "grpo", GRPO + ["output_dir=runs/mp/grpo"])]


@pytest.mark.parametrize("launcher, stage, overrides", DOCUMENTED, ids=[f"{a}-{b}" for a, b, _ in DOCUMENTED])
def test_docs_show_the_commands_these_tests_run(launcher, stage, overrides):
    """docs/training.md's multi-process recipe is these tests' commands (output folders aside)."""
    docs = (ROOT / "docs" / "training.md").read_text()
    assert as_documented(train_cmd(launcher, stage, overrides)) in docs, as_documented(train_cmd(launcher, stage, overrides))


PROBE = """
from vqalib.core.distributed import gather_dict, is_main_process, num_processes, process_index, shard
mine = shard(list(range(5)))
everything = gather_dict({f"clip{i}": process_index() for i in mine})
line = f"rank {process_index()}/{num_processes()} main={is_main_process()} mine={mine} all={sorted(everything.items())}"
from pathlib import Path
Path(__file__).with_name(f"rank{process_index()}.txt").write_text(line)  # the ranks' stdout lines can interleave
"""


def test_distributed_helpers_outside_the_trainer(tmp_path):
    """shard/gather work on their own under torchrun on CPU (no Trainer has set up the process group)."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(p.read_text() for p in tmp_path.glob("rank*.txt"))
    everything = "all=[('clip0', 0), ('clip1', 1), ('clip2', 0), ('clip3', 1), ('clip4', 0)]"
    assert lines == [f"rank 0/2 main=True mine=[0, 2, 4] {everything}", f"rank 1/2 main=False mine=[1, 3] {everything}"]


# --------------------------------------------------------------------------- FSDP2 on CPU (2 processes, gloo)

FSDP_WORKER = r'''
import json, sys, copy, torch, torch.distributed as dist
from pathlib import Path
dist.init_process_group("gloo")
from torch.distributed.fsdp import fully_shard
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from vqalib.model.loading import load_model_and_processor
from vqalib.train.base import verify_saved

out = Path(sys.argv[1])
model, _ = load_model_and_processor("tiny")
plain = copy.deepcopy(model)  # the same step without sharding, for comparison
for layer in model.model.language_model.layers:  # what env/accelerate_fsdp.yaml wraps
    fully_shard(layer)
for block in model.model.visual.blocks:
    fully_shard(block)
fully_shard(model)
sharded = type(next(model.parameters())).__name__
torch.manual_seed(0)
ids = torch.randint(0, 500, (2, 12))  # the same batch on both ranks: the averaged gradient is the local one
for net in (model, plain):
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(input_ids=ids, labels=ids).loss.backward()
    opt.step()
# what Accelerator.get_state_dict does under FSDP2, and so save_final (vqalib.train.base)
sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, cpu_offload=True))
if dist.get_rank() == 0:
    model.save_pretrained(str(out), state_dict=sd)
    checked = verify_saved(out, model)
    ref = plain.state_dict()
    diff = max(float((sd[k] - ref[k]).abs().max()) for k in ref)
    moved = max(float((ref[k] - v).abs().max()) for k, v in load_model_and_processor("tiny")[0].state_dict().items())
    (out / "result.json").write_text(json.dumps({"sharded": sharded, "checked": checked, "max_diff": diff,
                                                 "n_keys": len(sd), "n_ref": len(ref), "moved": moved}))
dist.barrier()
'''


@pytest.mark.multiprocess
@pytest.mark.slow
def test_fsdp2_on_cpu_gathers_and_saves_loadable_weights(tmp_path):
    """PyTorch FSDP2 with 2 processes on gloo: the tiny model sharded as env/accelerate_fsdp.yaml wraps it,
    one step, the full state dict gathered as ``save_final`` does under FSDP, saved by rank 0 and checked
    by ``verify_saved``; the saved weights equal the same step without sharding. (Through ``accelerate
    launch`` + ``Trainer`` FSDP cannot run on CPU: accelerate 1.15 makes CPU processes plain DDP.)"""
    import os
    import subprocess
    import sys

    script = tmp_path / "fsdp_worker.py"
    script.write_text(FSDP_WORKER)
    out = tmp_path / "fsdp_out"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(out)], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "result.json").read_text())
    assert res["sharded"] == "DTensor"  # really sharded
    assert res["n_keys"] == res["n_ref"] and res["checked"]["model"]["n_params"] > 0
    assert res["moved"] > 1e-4  # the step changed the weights ...
    assert res["max_diff"] < 1e-5, res  # ... and the gathered, saved weights are the unsharded step's
