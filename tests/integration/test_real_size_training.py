"""Issue 19, items 1-3: the real-size training paths train, save and chain without silent failure.

* bf16 full fine-tuning trains: through the real ``train_sft`` path on the tiny model (constant lr
  1e-6 = ``sft_7b.yaml``, no weight decay), a ``bf16: true`` run changes about as many language-model
  weights, by about as much, as a float32 run (before the fix: 0.43 % of the weights changed at all,
  against 76 %), and every parameter the optimiser holds is float32 for ``full`` and ``lora`` with
  ``bf16=True``; the manifest records the dtypes.
* A stage never writes ``status: done`` without weights that load: :func:`vqalib.train.base.verify_saved`
  refuses a folder without weights, with a missing shard, a truncated file, a missing tensor or an
  empty adapter, and ``save_final`` behind a ``Trainer`` whose ``save_model`` writes nothing (what
  transformers 5.23 does under FSDP with ``SHARDED_STATE_DICT``) raises and writes ``save_failed``.
* An adapter-only checkpoint (what a QLoRA SFT writes; 4-bit needs CUDA, so here a LoRA SFT with the
  merged model removed) starts GRPO and ASO, whose reference policy is the checkpoint itself
  (first-step KL 0), and their outputs score a clip with the ``Scorer``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

SMOKE = ["sample_size=smoke", "report_to=none", "logging_steps=1", "warmup_steps=0", "device=cpu",
         "augment=false", "num_workers=0", "seed=0"]


def _cfg(stage: str, config: str, *items: str):
    from vqalib.train.common import load_config

    merged = dict(it.split("=", 1) for it in (*SMOKE, *items))
    return load_config(stage, config, merged)


def _lm_weights(path: Path) -> dict[str, torch.Tensor]:
    """The language-model tensors of a saved folder, in their saved dtype."""
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path / "model.safetensors")).items() if "visual" not in k}


# --------------------------------------------------------------------------- 1. fp32 master weights


@pytest.fixture(scope="module")
def sft_bf16_and_fp32(tmp_path_factory):
    """Two SFT runs of the tiny model, identical but for ``bf16``: 2 steps, constant lr 1e-6."""
    from vqalib.train.sft import train_sft

    root = tmp_path_factory.mktemp("precision")
    outs = {}
    for bf16 in (False, True):
        out = root / f"bf16_{bf16}"
        train_sft(_cfg("sft", "env/train_configs/sft_tiny.yaml", "model=tiny", "finetune=full", "freeze_vision=false",
                       "max_clips=2", "batch_size=1", "max_steps=2", "lr=1e-6", "lr_scheduler=constant",
                       "weight_decay=0", f"bf16={bf16}", f"output_dir={out}"), progress=False)
        outs[bf16] = out
    return outs


def test_bf16_full_finetuning_updates_the_weights_like_fp32(sft_bf16_and_fp32):
    from vqalib.model.loading import resolve_model_path

    w0 = _lm_weights(Path(resolve_model_path("tiny")))
    n = sum(v.numel() for v in w0.values())
    changed, size = {}, {}
    for bf16, out in sft_bf16_and_fp32.items():
        w = _lm_weights(out)
        assert set(w) == set(w0)
        # against the start as the run held it (the fp32 preset rounded to the saved dtype), so that a
        # bf16 load's own rounding does not count as an update
        start = {k: w0[k].to(w[k].dtype).float() for k in w0}
        changed[bf16] = sum(int((w[k].float() != start[k]).sum()) for k in w0) / n
        size[bf16] = sum(float((w[k].float() - start[k]).abs().sum()) for k in w0) / n
    # measured: fp32 0.76 of the weights change, bf16 (fixed) 0.76; before the fix bf16 changed 0.0043
    assert changed[False] > 0.5
    assert changed[True] > 0.9 * changed[False], changed
    assert 0.8 < size[True] / size[False] < 1.25, size  # the same update magnitude, not only more nonzero ones
    man = json.loads((sft_bf16_and_fp32[True] / "vqalib_train_manifest.json").read_text())
    assert man["status"] == "done"
    assert man["precision"]["trainable_dtype"] == "float32" and man["precision"]["compute_dtype"] == "bfloat16"
    assert man["saved_weights"]["model"]["n_params"] > 0


@pytest.mark.parametrize("finetune", ["full", "full_frozen_vision", "lora"])
def test_optimizer_holds_float32_parameters_under_bf16(finetune, tmp_path):
    from transformers import Trainer

    from vqalib.model.loading import vision_tower
    from vqalib.train.base import load_policy, precision_info
    from vqalib.train.common import training_arguments

    mode = "lora" if finetune == "lora" else "full"
    cfg = _cfg("sft", "env/train_configs/sft_tiny.yaml", "model=tiny", f"finetune={mode}", "bf16=true",
               f"freeze_vision={finetune == 'full_frozen_vision'}", f"output_dir={tmp_path}")
    model, _ = load_policy(cfg)
    trainer = Trainer(model=model, args=training_arguments(cfg))
    assert trainer.args.bf16  # autocast compute on CPU too
    opt = trainer.create_optimizer()
    params = [p for g in opt.param_groups for p in g["params"]]
    assert params and all(p.dtype == torch.float32 for p in params), {p.dtype for p in params}
    assert sum(p.numel() for p in params) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    info = precision_info(model, cfg)
    assert info["trainable_dtype"] == "float32" and info["compute_dtype"] == "bfloat16"
    if finetune == "full_frozen_vision":  # frozen parts may stay bf16 (half the memory)
        assert {p.dtype for p in vision_tower(model).parameters()} == {torch.bfloat16}
    if finetune == "lora":  # the frozen base in bf16, the adapter in fp32
        assert info["frozen_dtypes"].get("bfloat16", 0) > 0


# --------------------------------------------------------------------------- 2. no "done" without weights


@pytest.fixture(scope="module")
def tiny_saved(tmp_path_factory):
    """The tiny model saved by ``save_pretrained`` (a complete folder), and the model."""
    from vqalib.model.loading import load_model_and_processor

    model, processor = load_model_and_processor("tiny")
    out = tmp_path_factory.mktemp("saved") / "ok"
    model.save_pretrained(str(out))
    return out, model


def test_verify_saved_accepts_a_complete_folder(tiny_saved):
    from vqalib.train.base import verify_saved

    out, model = tiny_saved
    checked = verify_saved(out, model)
    assert checked["model"]["n_params"] == sum(p.numel() for p in model.parameters())


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_verify_saved_refuses_folders_without_loadable_weights(tiny_saved, tmp_path):
    from safetensors.torch import load_file, save_file

    from vqalib.train.base import SaveCheckError, verify_saved

    out, model = tiny_saved
    no_weights = _copy(out, tmp_path / "none")
    (no_weights / "model.safetensors").unlink()  # what a SHARDED_STATE_DICT save leaves: config, no weights
    with pytest.raises(SaveCheckError, match="no model.safetensors"):
        verify_saved(no_weights, model)

    missing_shard = _copy(out, tmp_path / "shard")
    (missing_shard / "model.safetensors").rename(missing_shard / "model-00001-of-00002.safetensors")
    keys = list(load_file(str(missing_shard / "model-00001-of-00002.safetensors")))
    index = {"metadata": {}, "weight_map": {k: f"model-0000{1 + i % 2}-of-00002.safetensors" for i, k in enumerate(keys)}}
    (missing_shard / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(SaveCheckError, match="1 missing"):
        verify_saved(missing_shard, model)

    truncated = _copy(out, tmp_path / "truncated")
    blob = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SaveCheckError, match="not a readable safetensors"):
        verify_saved(truncated, model)

    one_less = _copy(out, tmp_path / "one_less")
    tensors = load_file(str(one_less / "model.safetensors"))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(one_less / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(SaveCheckError, match="do not load"):
        verify_saved(one_less, model)


def test_save_final_without_weights_raises_and_never_writes_done(tmp_path):
    """A Trainer whose ``save_model`` writes nothing - transformers 5.23 under FSDP with
    ``SHARDED_STATE_DICT`` (``Trainer.save_model`` saves only for ``FULL_STATE_DICT``) - must not end
    with a manifest that says ``done``."""
    from transformers import Trainer

    from vqalib.train.base import SaveCheckError, load_policy, save_final
    from vqalib.train.common import training_arguments
    from vqalib.core.runs import read_manifest

    class ShardedOnlyTrainer(Trainer):
        def save_model(self, output_dir=None, _internal_call=False):  # the FSDP + SHARDED_STATE_DICT branch
            return None

    cfg = _cfg("sft", "env/train_configs/sft_tiny.yaml", "model=tiny", f"output_dir={tmp_path}")
    model, processor = load_policy(cfg)
    trainer = ShardedOnlyTrainer(model=model, args=training_arguments(cfg))
    with pytest.raises(SaveCheckError, match="no config.json.*weights were not saved"):
        save_final(trainer, model, processor, cfg, tmp_path, status="done")
    man = read_manifest(tmp_path)  # processor and manifest written, as before; the manifest now says so
    assert man["status"] == "save_failed" and "no config.json" in man["save_error"]

    # the same through the ordinary Trainer: weights written, checked, done
    good = tmp_path / "good"
    trainer = Trainer(model=model, args=training_arguments(cfg))
    save_final(trainer, model, processor, cfg, good, status="done")
    assert read_manifest(good)["status"] == "done" and (good / "model.safetensors").is_file()


def test_verify_saved_refuses_an_adapter_without_weights(tmp_path):
    from vqalib.model.loading import LoraSettings, load_model_and_processor
    from vqalib.train.base import SaveCheckError, verify_saved

    model, _ = load_model_and_processor("tiny", lora=LoraSettings(r=2, alpha=4))
    model.save_pretrained(str(tmp_path / "adapter"))
    assert verify_saved(tmp_path, model, adapter_only=True)["adapter"]["n_tensors"] > 0
    (tmp_path / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(SaveCheckError, match="adapter_model"):
        verify_saved(tmp_path, model, adapter_only=True)


# --------------------------------------------------------------------------- 3. adapter-only SFT -> GRPO / ASO -> score


@pytest.fixture(scope="module")
def adapter_only_sft(tmp_path_factory):
    """A LoRA SFT checkpoint reduced to what a QLoRA SFT writes: ``adapter/``, processor, manifest.
    LoRA dropout 0, so that policy and reference compute the same thing before the first update."""
    from vqalib.train.sft import train_sft

    out = tmp_path_factory.mktemp("qlora_like") / "sft"
    train_sft(_cfg("sft", "env/train_configs/sft_tiny.yaml", "model=tiny", "finetune=lora", "lora_r=4",
                   "lora_alpha=8", "lora_dropout=0", "lr=1e-2", "max_clips=2", "batch_size=2", "max_steps=1", f"output_dir={out}"),
              progress=False)
    for f in ["config.json", "generation_config.json", *[p.name for p in out.glob("model*.safetensors*")]]:
        (out / f).unlink()
    assert not (out / "config.json").exists() and (out / "adapter" / "adapter_model.safetensors").is_file()
    # SFT moved the adapter (LoRA B starts at 0), so the checkpoint differs from its base model
    assert any(float(v.abs().max()) > 0 for k, v in _adapter_tensors(out).items() if "lora_B" in k)
    return out


def _score_one_clip(model_dir: Path, tmp: Path) -> float:
    from model_helpers import write_clip
    from vqalib.inference.scorer import Scorer
    from vqalib.schema.levels import DIMENSION_KEYS

    clip = write_clip(tmp / "clip.mp4", n_frames=16, seed=0)
    rows = Scorer(str(model_dir), device="cpu", batch_size=1, num_workers=0).score([str(clip)]).rows
    assert list(rows["status"]) == ["ok"], rows[["status", "error"]]
    return float(rows[f"{DIMENSION_KEYS[0]}_expected"].iloc[0])


def _adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


@pytest.mark.parametrize("stage", ["grpo", "aso"])
def test_adapter_only_checkpoint_starts_grpo_and_aso_and_scores(adapter_only_sft, stage, tmp_path):
    from vqalib.train.aso_trainer import train_aso
    from vqalib.core.runs import read_manifest
    from vqalib.train.grpo import train_grpo

    out = tmp_path / stage
    common = ["finetune=lora", "lora_r=4", "lora_alpha=8", "lr=1e-2", "max_clips=2", "batch_size=1", "max_steps=1",
              "lr_scheduler=constant", f"init_from={adapter_only_sft}", f"output_dir={out}"]
    if stage == "grpo":
        train_grpo(_cfg("grpo", "env/train_configs/grpo_tiny.yaml", *common, "num_generations=2", "max_new_tokens=12",
                        "kl_coef=0.1"), progress=False)
    else:
        train_aso(_cfg("aso", "env/train_configs/aso_tiny.yaml", *common, "rationale=short", "rationale_loss=kl"),
                  progress=False)
    man = read_manifest(out)
    assert man["status"] == "done" and man["continued_adapter"] == str(adapter_only_sft / "adapter")
    assert man["precision"]["trainable_dtype"] == "float32"
    # the reference policy is the SFT checkpoint itself (not its base: the SFT adapter is non-zero), so
    # before the first update policy == reference and the KL is 0 up to float rounding
    key = "kl" if stage == "grpo" else "loss_rationale"  # GRPO's k3 KL; ASO's rationale KL to the reference
    first = [r for r in man["log_history"] if key in r][0]
    assert abs(first[key]) < 1e-6, first
    # the adapter trained on (and only it is saved: no copy of the frozen reference adapter)
    before, after = _adapter_tensors(adapter_only_sft), _adapter_tensors(out)
    assert set(before) == set(after) and not (out / "adapter" / "vqalib_reference").exists()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    merged = _score_one_clip(out, tmp_path)  # a LoRA stage writes the merged model too: scored as a plain model
    assert 1.0 <= merged <= 5.0
    # what a QLoRA stage writes (adapter only): the scorer loads it onto its base with the trainers' loader
    for f in ["config.json", "generation_config.json", *[p.name for p in out.glob("model*.safetensors*")]]:
        (out / f).unlink()
    assert abs(_score_one_clip(out, tmp_path) - merged) < 1e-4


def test_aso_full_bf16_with_frozen_bf16_vision_and_reference(tmp_path):
    """aso_7b.yaml's kind of run on the tiny model: full fine-tuning, bf16, frozen vision tower, rationale
    KL to the frozen reference copy. The tower and the copy are bf16, the trained weights float32, π_ref
    read under the training autocast; the run trains and saves."""
    from vqalib.train.aso_trainer import train_aso
    from vqalib.core.runs import read_manifest

    out = tmp_path / "aso"
    train_aso(_cfg("aso", "env/train_configs/aso_tiny.yaml", "init_from=", "model=tiny", "finetune=full",
                   "freeze_vision=true", "bf16=true", "rationale=short", "rationale_loss=kl", "max_clips=2",
                   "batch_size=1", "max_steps=1", "lr=1e-3", f"output_dir={out}"), progress=False)
    man = read_manifest(out)
    prec = man["precision"]
    assert man["status"] == "done" and prec["trainable_dtype"] == "float32" and prec["compute_dtype"] == "bfloat16"
    assert prec["reference_dtype"] == "bfloat16" and prec["frozen_dtypes"].get("bfloat16", 0) > 0
    step = [r for r in man["log_history"] if "loss_rationale" in r][0]
    assert abs(step["loss_rationale"]) < 0.05  # policy (fp32 weights, bf16 compute) vs its bf16 copy: rounding only
