"""The pieces of a training run that SFT, GRPO and ASO share: loading the policy (full, LoRA or
QLoRA, optionally with a frozen vision tower), the reference policy, a ``Trainer`` base class that
logs extra per-step numbers, and :func:`run_stage` (data -> collator -> Trainer -> final save +
manifest).

Reference policy: under LoRA the reference is the *same* weights with the adapter switched off
(``peft``'s ``disable_adapter()``), so no second copy is held; under full fine-tuning it is a
frozen deep copy made before training starts.

Rating schema (issue 23). A stage trains on the schema of its dataset (``Examples.schema``; a config's
``rating_schema`` must agree, :func:`vqalib.train.collator.load_examples`). A stage that starts from a
checkpoint (``init_from``: ASO and GRPO from SFT) refuses a dataset of another schema than the one the
checkpoint was trained on (:func:`check_init_schema`). Every checkpoint folder a stage writes (the final
one and each ``checkpoint-N``) gets ``rating_schema.json``, and the stage manifest
``"rating_schema": schema.to_dict()`` and ``"missing_labels"`` (the clip x dimension labels left out).

Model family (issue 24): the stage manifest records ``"model_family"``
(:meth:`vqalib.model.family.ModelFamily.describe`: family, label, how frame times reach the model, the
level scorer's pass, the chat-template options) of the policy it trained; a stage that generates (GRPO,
on-policy ASO) records its rollout settings with the family's suppressed and stop token ids
(:func:`vqalib.model.generation.describe` given the processor and model).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from transformers import Trainer, TrainerCallback

from vqalib.core.runs import MANIFEST_NAME, resolve_path
from vqalib.core.runs import read_manifest
from vqalib.model.family import family_of
from vqalib.schema import rating
from vqalib.train.common import (
    CommonConfig, TrainResult, cpu_threads, resolve_device, sampling_config, seed_everything, training_arguments, write_manifest,
)


def is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


#: Name of the frozen copy of a continued adapter (an adapter-only checkpoint trained further by a later
#: stage): the reference policy pi_ref is the checkpoint as loaded, i.e. the base with this adapter active.
REFERENCE_ADAPTER = "vqalib_reference"


def _fsdp_launch() -> bool:
    """Whether this process was started by ``accelerate launch`` with an FSDP config."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() in {"1", "true", "yes"}


def compute_dtype(cfg: CommonConfig) -> torch.dtype:
    """The dtype the forward and backward passes run in: bfloat16 under ``bf16`` (autocast, set up by
    ``TrainingArguments(bf16=True)``), else float32. Trainable weights are float32 either way."""
    return torch.bfloat16 if cfg.bf16 else torch.float32


def precision_info(model: torch.nn.Module, cfg: CommonConfig, ref_model: torch.nn.Module | None = None) -> dict[str, Any]:
    """The dtypes of a training run, for the manifest: ``trainable_dtype`` (the weights the optimiser
    updates, float32 master weights), ``compute_dtype`` (autocast), ``frozen_dtypes`` (parameter count
    per dtype of the frozen weights: the base under LoRA, a frozen vision tower), ``reference_dtype``
    (the frozen full-fine-tuning copy, if any) and the parameter counts."""
    trainable: dict[str, int] = defaultdict(int)
    frozen: dict[str, int] = defaultdict(int)
    for p in model.parameters():
        (trainable if p.requires_grad else frozen)[str(p.dtype).replace("torch.", "")] += p.numel()
    return {"trainable_dtype": "+".join(sorted(trainable)) or None, "compute_dtype": str(compute_dtype(cfg)).replace("torch.", ""),
            "autocast": bool(cfg.bf16), "n_trainable": int(sum(trainable.values())), "frozen_dtypes": dict(frozen),
            "reference_dtype": str(next(ref_model.parameters()).dtype).replace("torch.", "") if ref_model is not None else None}


def check_trainable_fp32(model: torch.nn.Module) -> None:
    """Raise when a weight the optimiser would update is not float32.

    AdamW updating bfloat16 weights in place rounds away every update smaller than the weight's bf16
    spacing (|w| / 128): at lr 1e-6 only 0.43 % of the tiny model's language-model weights changed at
    all in 4 steps, against 76 % with float32 weights (issue 19). Compute runs in bf16 via autocast."""
    bad = [(n, p.dtype) for n, p in model.named_parameters() if p.requires_grad and p.dtype != torch.float32]
    if bad:
        raise RuntimeError(f"{len(bad)} trainable parameters are not float32 (e.g. {bad[0][0]}: {bad[0][1]}): the "
                           "optimiser would update them in low precision and lose small updates; load trainable "
                           "weights in float32 and compute in bf16 with autocast (TrainingArguments bf16=True)")


def optimizer_state_bytes(optim: str) -> int:
    """Bytes of optimiser state per trainable parameter: 8 for AdamW (two float32 moments), 2 for the
    8-bit variants (``*8bit*``), 4 for anything else (momentum SGD, Adafactor's factored states: an upper bound)."""
    name = optim.lower()
    if "8bit" in name:
        return 2
    if name.startswith("adam"):
        return 8
    return 4


def training_memory_bytes(model: torch.nn.Module, ref_model: torch.nn.Module | None, optim: str) -> int:
    """Device memory one process needs for weights, gradients and optimiser state, activations excluded:
    per trainable (float32) parameter 4 bytes weight + 4 gradient + :func:`optimizer_state_bytes`; every
    frozen parameter and the frozen reference copy at their own element size. Qwen2.5-VL-7B full
    fine-tuning with a frozen vision tower and AdamW: 7.62 B x 16 + 0.68 B x 2 = 123 GB (115 GiB)."""
    total = 0
    for m in [model] + ([ref_model] if ref_model is not None else []):
        for p in m.parameters():
            if p.requires_grad and m is model:
                total += p.numel() * (4 + 4 + optimizer_state_bytes(optim))
            else:
                total += p.numel() * p.element_size()
    return total


def check_fits_device(trainer: Trainer, cfg: CommonConfig, ref_model: torch.nn.Module | None = None) -> None:
    """On a CUDA device with every weight replicated (one GPU or plain DDP; DeepSpeed and FSDP shard),
    refuse a run whose weights + gradients + optimiser state alone (:func:`training_memory_bytes`)
    exceed the device's memory, naming the fixes - instead of an out-of-memory error after loading."""
    dev = trainer.args.device
    if dev.type != "cuda" or trainer.is_deepspeed_enabled or getattr(trainer, "is_fsdp_enabled", False):
        return
    need = training_memory_bytes(trainer.model, ref_model, cfg.optim)
    have = torch.cuda.get_device_properties(dev).total_memory
    if need > have:
        raise RuntimeError(
            f"finetune={cfg.finetune} needs {need / 2**30:.0f} GiB per GPU for float32 master weights, gradients and "
            f"{cfg.optim} states before activations, and {torch.cuda.get_device_name(dev)} has {have / 2**30:.0f} GiB. "
            "Fixes: shard them over several GPUs (accelerate launch --config_file env/accelerate_deepspeed_zero2.yaml), "
            "train a LoRA adapter (env/train_configs/sft_7b_lora.yaml, finetune=lora or qlora), or an 8-bit optimiser "
            "(optim=adamw_bnb_8bit, bitsandbytes); see docs/training.md 'Real size'")


def _warn_model_unused(cfg: CommonConfig, init_from: Path) -> None:
    """Warn when ``model`` names another model family than the ``init_from`` checkpoint the stage starts from
    (``init_from`` wins: ``model`` is then unused, and the manifest's ``base_model`` / ``model_family`` say what
    was trained). Silent when the families agree or ``model``'s cannot be told without loading it."""
    import warnings

    try:
        wanted, got = family_of(str(cfg.model)), family_of(init_from)  # a folder: its config, or its adapter's base
    except (TypeError, ValueError):
        return
    if wanted is not got:
        warnings.warn(f"model={cfg.model!r} ({wanted.label}) is not used: the stage starts from init_from={cfg.init_from!r}, "
                      f"a {got.label} checkpoint, and trains that; set model to a {got.label} model (or init_from to a "
                      f"{wanted.label} checkpoint) to silence this", UserWarning, stacklevel=3)


def load_policy(cfg: CommonConfig):
    """Load (model, processor) for training as the config says.

    ``init_from`` (a checkpoint written by a previous stage) takes precedence over ``model``.
    ``finetune``: ``full`` trains every weight; ``lora`` / ``qlora`` wrap the model with a LoRA
    adapter (``qlora`` loads the base in 4 bit, which needs CUDA and bitsandbytes: it raises a clear
    error on CPU). ``freeze_vision`` stops gradients into the vision tower.

    Precision: every weight the optimiser updates is float32 (master weights), whatever ``bf16`` says;
    ``bf16`` makes the forward/backward compute run in bfloat16 under autocast. Frozen weights may be
    bfloat16: the LoRA/QLoRA base, and under full fine-tuning with ``bf16`` a frozen vision tower
    (except under FSDP, which shards mixed dtypes badly; it keeps the tower in float32).

    An adapter-only checkpoint as ``init_from`` (a QLoRA stage writes only ``adapter/``,
    :func:`vqalib.model.loading.adapter_folder`) is loaded onto its base with the loader the scorer uses
    (:func:`vqalib.model.loading.load_adapter_checkpoint`): under ``lora``/``qlora`` the adapter itself trains
    on and a frozen copy of it (:data:`REFERENCE_ADAPTER`) is the reference policy; under ``full`` the
    adapter is merged into the float32 base."""
    from vqalib.model.loading import LoraSettings, adapter_folder, load_adapter_checkpoint, load_model_and_processor, vision_tower

    source = cfg.init_from or cfg.model
    if cfg.init_from:
        p = resolve_path(cfg.init_from)
        if not p.exists():
            raise FileNotFoundError(
                f"init_from={cfg.init_from!r}: no checkpoint at {p}; run the previous stage first "
                f"(e.g. `python -m vqalib train sft ...` or notebook 04) or set init_from to an existing folder")
        source = str(p)
        _warn_model_unused(cfg, p)
    device = resolve_device(cfg.device)
    if cfg.finetune == "qlora" and device == "cpu":
        raise RuntimeError("finetune=qlora loads the base model in 4 bit with bitsandbytes, which needs a CUDA GPU; "
                           "on CPU use finetune=lora or finetune=full")
    # full fine-tuning: float32 master weights (bf16 only as autocast); LoRA/QLoRA: the frozen base in bf16,
    # the adapter in float32 (peft casts adapters up: autocast_adapter_dtype)
    dtype = torch.bfloat16 if cfg.bf16 and cfg.finetune != "full" else torch.float32
    quantization = "4bit" if cfg.finetune == "qlora" else None
    adapter = adapter_folder(source) if cfg.init_from else None
    if adapter is not None and cfg.finetune != "full":
        model, processor = load_adapter_checkpoint(adapter, dtype=dtype, quantization=quantization, trainable=True,
                                                   freeze_vision=cfg.freeze_vision,
                                                   gradient_checkpointing=cfg.gradient_checkpointing)
        model.load_adapter(str(adapter), adapter_name=REFERENCE_ADAPTER, is_trainable=False)
        model.set_adapter("default")  # the continued adapter trains; the reference copy stays frozen
        for n, p in model.named_parameters():
            if REFERENCE_ADAPTER in n:
                p.requires_grad_(False)
        model.vqalib_continued_adapter = str(adapter)
    elif adapter is not None:
        model, processor = load_adapter_checkpoint(adapter, dtype=dtype)
        model = model.merge_and_unload()
        for p in model.parameters():
            p.requires_grad_(True)
        if cfg.freeze_vision:
            for p in vision_tower(model).parameters():
                p.requires_grad_(False)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.vqalib_merged_adapter = str(adapter)
    else:
        lora = None
        if cfg.finetune in {"lora", "qlora"}:
            lora = LoraSettings(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout)
        model, processor = load_model_and_processor(
            source, dtype=dtype, quantization=quantization, lora=lora,
            freeze_vision=cfg.freeze_vision, gradient_checkpointing=cfg.gradient_checkpointing,
        )
    if cfg.finetune == "full" and cfg.bf16 and cfg.freeze_vision and not _fsdp_launch():
        vision_tower(model).to(torch.bfloat16)  # frozen: half the memory, and it runs in bf16 under autocast anyway
    check_trainable_fp32(model)
    return model, processor


@contextlib.contextmanager
def _active_adapter(model: torch.nn.Module, name: str) -> Iterator[None]:
    """Make ``name`` the only active LoRA adapter of every peft layer for the block, without touching
    ``requires_grad`` (peft's ``set_adapter`` would flip it on the trained adapter mid-step)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    saved = [m._active_adapter for m in layers]
    try:
        for m in layers:
            m._active_adapter = [name]
        yield
    finally:
        for m, a in zip(layers, saved):
            m._active_adapter = a


@contextlib.contextmanager
def reference_mode(model: torch.nn.Module, ref_model: torch.nn.Module | None) -> Iterator[torch.nn.Module]:
    """Yield the module to use as the reference policy: the frozen copy if there is one, else the
    LoRA model with the frozen copy of its continued adapter active (:data:`REFERENCE_ADAPTER`, an
    adapter-only ``init_from``), else the LoRA model with its adapter disabled. Raises if none is possible."""
    if ref_model is not None:
        yield ref_model
        return
    inner = getattr(model, "module", model)
    if is_peft(inner) and REFERENCE_ADAPTER in inner.peft_config:  # a continued adapter: its frozen copy
        with _active_adapter(inner, REFERENCE_ADAPTER):
            yield inner
        return
    if is_peft(inner):
        with inner.disable_adapter():
            yield inner
        return
    raise RuntimeError("no reference policy: full fine-tuning needs a frozen copy (make_reference) and LoRA a peft model")


def make_reference(model: torch.nn.Module) -> torch.nn.Module | None:
    """A frozen copy for full fine-tuning; ``None`` under LoRA (the adapter is disabled instead)."""
    if is_peft(model):
        return None
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


class VQATrainer(Trainer):
    """``Trainer`` base: subclasses implement ``compute_loss`` returning a per-batch mean loss.

    ``self.record(name=value, ...)`` collects extra numbers (rewards, KL, parse failures) that are
    averaged (or summed, for names starting with ``n_``) into the next log line, so they reach
    TensorBoard and ``state.log_history`` next to the loss."""

    def __init__(self, *args: Any, cfg: CommonConfig | None = None, schema: rating.RatingSchema | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cfg = cfg
        self.schema = rating.resolve(schema)  # the dimensions and levels the stage trains (default the paper's)
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean
        self._extra: dict[str, list[float]] = defaultdict(list)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        """Resume the weights through ``from_pretrained`` so transformers' key conversion applies.

        transformers 5.23 saves Qwen2.5-VL checkpoints with the legacy key layout (``model.layers...``,
        ``visual...``) but ``Trainer`` reloads them with a plain ``load_state_dict`` on the new layout
        (``model.language_model...``), which silently leaves every weight at its initial value
        (only a warning). Full models are therefore reloaded with ``from_pretrained``; adapters
        (peft) and sharded FSDP/DeepSpeed states go through the Trainer's own path."""
        model = self.model if model is None else model
        inner = self.accelerator.unwrap_model(model)
        is_full = os.path.isfile(os.path.join(resume_from_checkpoint, "config.json")) and not is_peft(inner)
        if not is_full or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        # float32: the saved master weights load without rounding; load_state_dict casts each to its own dtype
        loaded = type(inner).from_pretrained(resume_from_checkpoint, dtype=torch.float32)
        missing, unexpected = inner.load_state_dict(loaded.state_dict(), strict=False)
        if missing or unexpected:
            raise RuntimeError(f"{resume_from_checkpoint}: checkpoint does not match the model "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        del loaded

    def record(self, **values: float) -> None:
        for k, v in values.items():
            self._extra[k].append(float(v))

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._extra and "loss" in logs:
            for k, vals in self._extra.items():
                logs[k] = float(sum(vals)) if k.startswith("n_") else float(sum(vals) / len(vals))
            self._extra = defaultdict(list)
        super().log(logs, *args, **kwargs)


class _SaveSchema(TrainerCallback):
    """Writes the stage's ``rating_schema.json`` into every ``checkpoint-N`` folder the Trainer saves."""

    def __init__(self, schema: rating.RatingSchema):
        self.schema = schema

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            self.schema.save(folder)


def checkpoint_schema(folder: str | os.PathLike) -> rating.RatingSchema | None:
    """The rating schema a vqalib checkpoint was trained on: its ``rating_schema.json``; the paper's for a
    stage folder written before schemas were saved (it has a stage manifest but no schema file); ``None``
    for a folder that is no stage's output (a base model), whose schema is unknown."""
    p = Path(folder)
    if (p / rating.SCHEMA_FILE).is_file():
        return rating.schema_of_folder(p)
    if (p / MANIFEST_NAME).is_file() and read_manifest(p).get("stage") in ("sft", "grpo", "aso"):
        return rating.PAPER
    return None


def check_init_schema(cfg: CommonConfig, schema: rating.RatingSchema) -> rating.RatingSchema | None:
    """Refuse a stage whose ``init_from`` checkpoint writes other answers than its data's ``schema`` (other
    dimensions, levels, strings or keywords: ``RatingSchema.same_answers``; a raw range, direction or target
    rule may differ, the data's is used) with a ``ValueError`` listing the differences and the fix; returns the checkpoint's schema (``None``: no
    ``init_from``, or a folder that is no stage's output)."""
    if not cfg.init_from:
        return None
    folder = resolve_path(cfg.init_from)
    ckpt = checkpoint_schema(folder)
    if ckpt is not None and not ckpt.same_answers(schema):
        diff = "; ".join(schema.differences(ckpt, "the data's", "the checkpoint's"))
        raise ValueError(f"init_from={cfg.init_from!r} was trained on the rating schema {ckpt.name!r} ({folder / rating.SCHEMA_FILE}), "
                         f"but the {cfg.stage} dataset ({cfg.data_dir or 'the sample dataset'}) is rated with {schema.name!r}, "
                         f"and the checkpoint writes other dimensions or levels than the data's labels ({diff}). Start from a "
                         f"checkpoint trained on this schema (run SFT on this dataset first) or use data of the "
                         f"checkpoint's schema")
    return ckpt


class _Tick(TrainerCallback):
    """Calls ``fn(state)`` after every optimisation step (used by notebooks for live numbers)."""

    def __init__(self, fn: Callable[[Any], None]):
        self.fn = fn

    def on_step_end(self, args, state, control, **kwargs):
        self.fn(state)


def _tqdm_progress(trainer: Trainer) -> None:
    """Use the tqdm progress bar instead of transformers' notebook one: ``NotebookProgressBar`` (5.23)
    divides by ``None`` at the end of a run stopped before ``max_steps`` after exactly two steps (its
    last update is not past its first), which a time budget does; tqdm renders in notebooks too."""
    from transformers.trainer_callback import ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    if any(isinstance(cb, NotebookProgressCallback) for cb in trainer.callback_handler.callbacks):
        trainer.remove_callback(NotebookProgressCallback)
        trainer.add_callback(ProgressCallback)


def find_resume_checkpoint(cfg: CommonConfig) -> str | None:
    """``resume``: "" -> None; "last" -> newest ``checkpoint-N`` in output_dir (None if none); else the folder."""
    if not cfg.resume:
        return None
    out = resolve_path(cfg.output_dir)
    if cfg.resume == "last":
        ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        return str(ckpts[-1]) if ckpts else None
    p = resolve_path(cfg.resume)
    if not p.is_dir():
        raise FileNotFoundError(f"resume={cfg.resume!r}: {p} is not a checkpoint folder")
    return str(p)


class SaveCheckError(RuntimeError):
    """A stage's output folder does not hold the weights it should (the manifest then says ``save_failed``)."""


def _safetensors_files(out: Path, stem: str) -> list[Path]:
    """The weight files ``stem.safetensors`` or the shards named by ``stem.safetensors.index.json``;
    raises :class:`SaveCheckError` when neither is there or a shard is missing."""
    single, index = out / f"{stem}.safetensors", out / f"{stem}.safetensors.index.json"
    if index.is_file():
        import json

        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        missing = [f for f in shards if not (out / f).is_file()]
        if not shards or missing:
            raise SaveCheckError(f"{index}: names {len(shards)} shards, {len(missing)} missing (e.g. {missing[:2]})")
        return [out / f for f in shards]
    if single.is_file():
        return [single]
    raise SaveCheckError(f"{out}: no {single.name} and no {index.name}")


def _read_headers(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor names -> shapes of safetensors files (headers only; a truncated or corrupt file raises)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as h:
                for k in h.keys():
                    shapes[k] = tuple(h.get_slice(k).get_shape())
        except Exception as e:  # noqa: BLE001 - any unreadable file fails the check
            raise SaveCheckError(f"{f}: not a readable safetensors file ({type(e).__name__}: {e})") from e
    return shapes


def verify_saved(out: str | os.PathLike, model: torch.nn.Module, *, adapter_only: bool = False) -> dict[str, Any]:
    """Check that a stage's output folder holds weights that load; return what was checked.

    ``model`` is the trained (unwrapped) module. A full model (``config.json`` + ``model.safetensors`` or
    its sharded index): every shard named by the index exists, every file's header reads, and the folder
    loads into the model's class on the ``meta`` device (keys and shapes, no weights in memory) with no
    missing, unexpected or mismatched keys and the same parameter count as ``model``. A LoRA adapter
    (``adapter/``: peft model, always checked; ``adapter_only``: the only weights): ``adapter_config.json``
    and ``adapter_model.safetensors`` exist and hold one tensor per trainable adapter weight of ``model``.
    Raises :class:`SaveCheckError` naming the folder and what is missing."""
    out = Path(out)
    checked: dict[str, Any] = {}
    if is_peft(model):
        a = out / "adapter"
        if not (a / "adapter_config.json").is_file():
            raise SaveCheckError(f"{a}: no adapter_config.json")
        shapes = _read_headers(_safetensors_files(a, "adapter_model"))
        n_expected = sum(1 for n, p in model.named_parameters() if p.requires_grad)
        if len(shapes) != n_expected:
            raise SaveCheckError(f"{a}: {len(shapes)} adapter tensors saved, the model trains {n_expected}")
        checked["adapter"] = {"files": sorted(f.name for f in a.glob("adapter_model*.safetensors")), "n_tensors": len(shapes)}
        if adapter_only:
            return checked
        base = model.get_base_model()
    else:
        base = model
    if not (out / "config.json").is_file():
        raise SaveCheckError(f"{out}: no config.json")
    files = _safetensors_files(out, "model")
    shapes = _read_headers(files)
    with torch.device("meta"):
        loaded, info = type(base).from_pretrained(str(out), device_map="meta", output_loading_info=True)
    bad = {k: sorted(v)[:3] for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    n_loaded = sum(p.numel() for p in loaded.parameters())
    n_model = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    if bad or n_loaded != n_model:
        raise SaveCheckError(f"{out}: the saved weights do not load into {type(base).__name__}: {bad or ''} "
                             f"(loaded {n_loaded} parameters, the model has {n_model})")
    checked["model"] = {"files": [f.name for f in files], "n_tensors": len(shapes), "n_params": n_loaded}
    return checked


def save_final(trainer: Trainer, model: torch.nn.Module, processor: Any, cfg: CommonConfig, out: Path,
               schema: rating.RatingSchema | None = None, **manifest_extra: Any) -> None:
    """Save the trained policy so that the next stage / ``predict`` can load it by path.

    Full fine-tuning: the model. LoRA: the adapter merged into the base (a plain model folder) plus
    the adapter itself under ``adapter/``. QLoRA: only the adapter (merging into a 4-bit base is
    lossy); the manifest names the base to load it onto. Full fine-tuning saves the float32 master
    weights (a 7B model: ~31 GB) so that the next stage starts from the trained values, not from
    their bf16 rounding.

    Under several processes the files are written once, by the main process; under FSDP the full
    state dict is first gathered from every rank (whatever ``fsdp_state_dict_type`` says; with only
    sharded states ``Trainer.save_model`` writes no weights at all), and under FSDP a LoRA run writes
    its adapter only (no merged copy). Every rank waits until the files are on disk.

    The weights are checked (:func:`verify_saved`) before the manifest is written: ``status`` is
    whatever the caller passes (``done``) only when they load, else ``save_failed`` with the error,
    and every rank raises :class:`SaveCheckError`.

    The rating ``schema`` (default the trainer's, else the paper's) is saved beside the weights
    (``rating_schema.json``) and in the manifest (``rating_schema``)."""
    schema = rating.resolve(schema if schema is not None else getattr(trainer, "schema", None))
    inner = trainer.accelerator.unwrap_model(model)
    main = trainer.is_world_process_zero()
    fsdp = bool(getattr(trainer, "is_fsdp_enabled", False))
    state_dict = trainer.accelerator.get_state_dict(trainer.model) if fsdp else None  # collective: every rank
    adapter_only = cfg.finetune != "lora" or fsdp
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if is_peft(inner):
        if main:
            inner.save_pretrained(str(out / "adapter"), state_dict=state_dict, selected_adapters=["default"])
            if not adapter_only:
                merged = copy.deepcopy(inner)
                if REFERENCE_ADAPTER in merged.peft_config:
                    merged.delete_adapter(REFERENCE_ADAPTER)
                merged.merge_and_unload().save_pretrained(str(out))
    elif fsdp:
        if main:
            inner.save_pretrained(str(out), state_dict=state_dict)
    else:
        trainer.save_model(str(out))
    del state_dict
    error = ""
    if main:
        processor.save_pretrained(str(out))
        schema.save(out)
        extra = dict(manifest_extra)
        extra["rating_schema"] = schema.to_dict()
        try:
            extra["saved_weights"] = verify_saved(out, inner, adapter_only=adapter_only)
        except SaveCheckError as e:
            error = str(e)
            extra.update(status="save_failed", save_error=error)
        for attr, key in (("vqalib_continued_adapter", "continued_adapter"), ("vqalib_merged_adapter", "merged_adapter")):
            if getattr(inner, attr, None):
                extra[key] = getattr(inner, attr)
        write_manifest(cfg, out, n_processes=trainer.args.world_size,
                       precision=precision_info(inner, cfg, getattr(trainer, "ref_model", None)), **extra)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [error]
        torch.distributed.broadcast_object_list(box, src=0)
        error = box[0]
    trainer.accelerator.wait_for_everyone()
    if error:
        raise SaveCheckError(f"{error}; the stage's weights were not saved (manifest status save_failed). "
                             "Under FSDP use an accelerate config that can gather the full state dict "
                             "(env/accelerate_fsdp.yaml); see docs/training.md")


def run_stage(cfg: CommonConfig, trainer_cls: type[VQATrainer], *, with_answers: bool, repeat: int = 1,
              progress: bool = True, on_step: Callable[[Any], None] | None = None,
              prepare: Callable[..., dict[str, Any]] | None = None,
              collator_factory: Callable[[Any, Any], Any] | None = None,
              evaluate: Callable[[Any], list[dict[str, Any]]] | None = None) -> TrainResult:
    """Train one stage end to end: seed, load the policy, examples, frame cache, collator, Trainer.

    ``prepare(model, processor, examples, cache)`` may return extra keyword arguments for the
    trainer (ASO's cached pi_ref, GRPO's reference model); ``examples.schema`` is the stage's rating
    schema, which ``collator_factory(processor, cache, schema=...)`` and the trainer (``schema``) get too. The training clock, the time budget
    (``max_train_seconds``) and the held-out curve (``eval_every_seconds``) are
    :class:`vqalib.train.budget.BudgetCallback`'s; ``evaluate(model) -> rows`` replaces the
    held-out evaluation (default :class:`vqalib.train.budget.HeldoutEvaluator` when
    ``eval_every_seconds > 0``, else none)."""
    from vqalib.train import budget as budget_mod
    from vqalib.model.loading import attention_parts
    from vqalib.train.collator import VideoCollator, frame_cache, examples_for

    t0 = time.time()
    t_start = budget_mod._now()
    seed_everything(cfg.seed)
    threads = cpu_threads(cfg)
    out = resolve_path(cfg.output_dir)
    model, processor = load_policy(cfg)
    family = family_of(model).describe()  # the manifest's record of the model family (vqalib.model.family)
    if cfg.stage == "grpo" or getattr(cfg, "on_policy", False):  # rollouts: the family's suppressed tokens
        from vqalib.model.generation import GenerationSettings, describe

        family_extra = {"model_family": family,
                        "generation": describe(GenerationSettings.from_config(cfg), processor, model)}
    else:
        family_extra = {"model_family": family}
    examples = examples_for(cfg, cfg.max_clips)
    schema = examples.schema
    check_init_schema(cfg, schema)
    missing = examples.missing_report()
    if missing["n_missing"]:
        print(f"{cfg.stage}: {missing['n_missing']} missing label(s) in {missing['n_clips_with_missing']} of "
              f"{len(examples)} clips ({ {k: v for k, v in missing['by_dimension'].items() if v} }): left out of the "
              f"answers and the losses, not filled in", flush=True)
    sampling = sampling_config(cfg)
    cache = frame_cache(cfg, sampling)  # bounded: frame_cache_mb per process, frame_disk_cache_mb on disk
    collator = collator_factory(processor, cache, schema=schema) if collator_factory else VideoCollator(
        processor, cache, with_answers=with_answers, augment=cfg.augment, rationale=cfg.rationale, repeat=repeat,
        seed=cfg.seed, instruction=cfg.instruction, schema=schema)
    args = training_arguments(cfg, disable_tqdm=not progress)
    with torch.autocast(resolve_device(cfg.device).split(":")[0], dtype=torch.bfloat16, enabled=cfg.bf16):
        extra = prepare(model, processor, examples, cache) if prepare else {}  # ASO's pi_ref: the training compute dtype
    if cfg.bf16 and extra.get("ref_model") is not None:
        extra["ref_model"].to(torch.bfloat16)  # the frozen full-FT reference: never updated, bf16 halves its memory
    if evaluate is None and cfg.eval_every_seconds > 0:
        evaluate = budget_mod.HeldoutEvaluator(cfg, processor)
    clock = budget_mod.BudgetCallback(cfg, t_start, evaluate)
    callbacks = [clock, _SaveSchema(schema)] + ([_Tick(on_step)] if on_step else [])
    trainer = trainer_cls(model=model, args=args, train_dataset=examples, data_collator=collator,
                          processing_class=processor, cfg=cfg, schema=schema, callbacks=callbacks, **extra)
    clock.trainer = trainer
    check_fits_device(trainer, cfg, extra.get("ref_model"))
    if cfg.max_train_seconds > 0:
        _tqdm_progress(trainer)
    if trainer.is_world_process_zero():
        write_manifest(cfg, out, sampling_config=sampling.to_dict(), n_train_clips=len(examples), status="training",
                       rating_schema=schema.to_dict(), missing_labels=missing, **family_extra)
    train_out = trainer.train(resume_from_checkpoint=find_resume_checkpoint(cfg))
    wall = time.time() - t0
    metrics = dict(train_out.metrics)
    budget = clock.summary(trainer.state.global_step)
    save_final(trainer, trainer.model, processor, cfg, out, schema=schema, missing_labels=missing,
               sampling_config=sampling.to_dict(), budget=budget, curve=clock.rows,
               n_train_clips=len(examples), status="done", wall_s=wall, torch_threads=threads, train_metrics=metrics,
               log_history=list(trainer.state.log_history), frames_decoded=cache.n_decoded, frames_from_disk_cache=cache.n_from_disk,
               attention=attention_parts(model), **family_extra,
               base_model=read_manifest(resolve_path(cfg.init_from)).get("config", {}).get("model", cfg.model)
               if cfg.init_from else cfg.model)
    return TrainResult(output_dir=out, log_history=list(trainer.state.log_history), metrics=metrics, wall_s=wall,
                       curve=list(clock.rows), budget=budget)
