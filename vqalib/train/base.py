"""The pieces of a training run that SFT, GRPO and ASO share: loading the policy (full, LoRA or
QLoRA, optionally with a frozen vision tower), the reference policy, a ``Trainer`` base class that
logs extra per-step numbers, and :func:`run_stage` (data -> collator -> Trainer -> final save +
manifest).

Reference policy: under LoRA the reference is the *same* weights with the adapter switched off
(``peft``'s ``disable_adapter()``), so no second copy is held; under full fine-tuning it is a
frozen deep copy made before training starts.
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

from vqalib.runs import resolve_path
from vqalib.train.common import (
    CommonConfig, TrainResult, cpu_threads, read_manifest, resolve_device, seed_everything, training_arguments, write_manifest,
)


def sampling_config(cfg: CommonConfig):
    """The ``vqalib.video.SamplingConfig`` of a training config (saved with every checkpoint)."""
    from vqalib.video import SamplingConfig

    max_frames = max(2, cfg.max_frames - cfg.max_frames % 2)
    return SamplingConfig(fps=cfg.fps, min_frames=min(4, max_frames), max_frames=max_frames,
                          max_pixels=cfg.max_pixels, min_pixels=min(4 * 28 * 28, cfg.max_pixels))


def is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def load_policy(cfg: CommonConfig):
    """Load (model, processor) for training as the config says.

    ``init_from`` (a checkpoint written by a previous stage) takes precedence over ``model``.
    ``finetune``: ``full`` trains every weight; ``lora`` / ``qlora`` wrap the model with a LoRA
    adapter (``qlora`` loads the base in 4 bit, which needs CUDA and bitsandbytes: it raises a clear
    error on CPU). ``freeze_vision`` stops gradients into the vision tower."""
    from vqalib.models import LoraSettings, load_model_and_processor

    source = cfg.init_from or cfg.model
    if cfg.init_from:
        p = resolve_path(cfg.init_from)
        if not p.exists():
            raise FileNotFoundError(
                f"init_from={cfg.init_from!r}: no checkpoint at {p}; run the previous stage first "
                f"(e.g. `python -m vqalib train sft ...` or notebook 04) or set init_from to an existing folder")
        source = str(p)
    device = resolve_device(cfg.device)
    if cfg.finetune == "qlora" and device == "cpu":
        raise RuntimeError("finetune=qlora loads the base model in 4 bit with bitsandbytes, which needs a CUDA GPU; "
                           "on CPU use finetune=lora or finetune=full")
    dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    lora = None
    if cfg.finetune in {"lora", "qlora"}:
        lora = LoraSettings(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout)
    model, processor = load_model_and_processor(
        source, dtype=dtype, quantization="4bit" if cfg.finetune == "qlora" else None, lora=lora,
        freeze_vision=cfg.freeze_vision, gradient_checkpointing=cfg.gradient_checkpointing,
    )
    return model, processor


@contextlib.contextmanager
def reference_mode(model: torch.nn.Module, ref_model: torch.nn.Module | None) -> Iterator[torch.nn.Module]:
    """Yield the module to use as the reference policy: the frozen copy if there is one, else the
    LoRA model with its adapter disabled. Raises if neither is possible."""
    if ref_model is not None:
        yield ref_model
        return
    inner = getattr(model, "module", model)
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

    def __init__(self, *args: Any, cfg: CommonConfig | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cfg = cfg
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
        loaded = type(inner).from_pretrained(resume_from_checkpoint, dtype=next(inner.parameters()).dtype)
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


def save_final(trainer: Trainer, model: torch.nn.Module, processor: Any, cfg: CommonConfig, out: Path,
               **manifest_extra: Any) -> None:
    """Save the trained policy so that the next stage / ``predict`` can load it by path.

    Full fine-tuning: the model. LoRA: the adapter merged into the base (a plain model folder) plus
    the adapter itself under ``adapter/``. QLoRA: only the adapter (merging into a 4-bit base is
    lossy); the manifest names the base to load it onto.

    Under several processes the files are written once, by the main process (``trainer.save_model``
    runs on every rank because FSDP/DeepSpeed gather the shards there; it writes on the main one), and
    every rank waits until they are on disk."""
    inner = trainer.accelerator.unwrap_model(model)
    main = trainer.is_world_process_zero()
    if is_peft(inner):
        if main:
            out.mkdir(parents=True, exist_ok=True)
            inner.save_pretrained(str(out / "adapter"))
            if cfg.finetune == "lora":
                merged = copy.deepcopy(inner).merge_and_unload()
                merged.save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if main:
        out.mkdir(parents=True, exist_ok=True)
        processor.save_pretrained(str(out))
        write_manifest(cfg, out, n_processes=trainer.args.world_size, **manifest_extra)
    trainer.accelerator.wait_for_everyone()


def run_stage(cfg: CommonConfig, trainer_cls: type[VQATrainer], *, with_answers: bool, repeat: int = 1,
              progress: bool = True, on_step: Callable[[Any], None] | None = None,
              prepare: Callable[..., dict[str, Any]] | None = None,
              collator_factory: Callable[[Any, Any], Any] | None = None,
              evaluate: Callable[[Any], list[dict[str, Any]]] | None = None) -> TrainResult:
    """Train one stage end to end: seed, load the policy, examples, frame cache, collator, Trainer.

    ``prepare(model, processor, examples, cache)`` may return extra keyword arguments for the
    trainer (ASO's cached pi_ref, GRPO's reference model). The training clock, the time budget
    (``max_train_seconds``) and the held-out curve (``eval_every_seconds``) are
    :class:`vqalib.train.budget.BudgetCallback`'s; ``evaluate(model) -> rows`` replaces the
    held-out evaluation (default :class:`vqalib.train.budget.HeldoutEvaluator` when
    ``eval_every_seconds > 0``, else none)."""
    from vqalib.train import budget as budget_mod
    from vqalib.models import attention_parts
    from vqalib.train.collator import VideoCollator, frame_cache, load_examples

    t0 = time.time()
    t_start = budget_mod._now()
    seed_everything(cfg.seed)
    threads = cpu_threads(cfg)
    out = resolve_path(cfg.output_dir)
    model, processor = load_policy(cfg)
    examples = load_examples(cfg.data_dir, cfg.split, cfg.sample_size, cfg.data_seed, cfg.max_clips)
    sampling = sampling_config(cfg)
    cache = frame_cache(cfg, sampling)  # bounded: frame_cache_mb per process, frame_disk_cache_mb on disk
    collator = collator_factory(processor, cache) if collator_factory else VideoCollator(
        processor, cache, with_answers=with_answers, augment=cfg.augment, rationale=cfg.rationale, repeat=repeat,
        seed=cfg.seed, instruction=cfg.instruction)
    args = training_arguments(cfg, disable_tqdm=not progress)
    extra = prepare(model, processor, examples, cache) if prepare else {}
    if evaluate is None and cfg.eval_every_seconds > 0:
        evaluate = budget_mod.HeldoutEvaluator(cfg, processor)
    clock = budget_mod.BudgetCallback(cfg, t_start, evaluate)
    callbacks = [clock] + ([_Tick(on_step)] if on_step else [])
    trainer = trainer_cls(model=model, args=args, train_dataset=examples, data_collator=collator,
                          processing_class=processor, cfg=cfg, callbacks=callbacks, **extra)
    clock.trainer = trainer
    if cfg.max_train_seconds > 0:
        _tqdm_progress(trainer)
    if trainer.is_world_process_zero():
        write_manifest(cfg, out, sampling_config=sampling.to_dict(), n_train_clips=len(examples), status="training")
    train_out = trainer.train(resume_from_checkpoint=find_resume_checkpoint(cfg))
    wall = time.time() - t0
    metrics = dict(train_out.metrics)
    budget = clock.summary(trainer.state.global_step)
    save_final(trainer, trainer.model, processor, cfg, out, sampling_config=sampling.to_dict(), budget=budget, curve=clock.rows,
               n_train_clips=len(examples), status="done", wall_s=wall, torch_threads=threads, train_metrics=metrics,
               log_history=list(trainer.state.log_history), frames_decoded=cache.n_decoded, frames_from_disk_cache=cache.n_from_disk,
               attention=attention_parts(model),
               base_model=read_manifest(resolve_path(cfg.init_from)).get("config", {}).get("model", cfg.model)
               if cfg.init_from else cfg.model)
    return TrainResult(output_dir=out, log_history=list(trainer.state.log_history), metrics=metrics, wall_s=wall,
                       curve=list(clock.rows), budget=budget)
