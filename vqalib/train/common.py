"""What the three trainers share: configs (dataclasses loadable from YAML), seeds, run manifests,
``TrainingArguments`` and the policy/reference loading.

A config is a flat dataclass so that every field can be overridden the same way from a YAML file,
from ``--set key=value`` on the command line, or from a notebook's parameters::

    cfg = load_config("sft", "env/train_configs/sft_tiny.yaml", overrides=["max_steps=10"])

Paper defaults (Stage I SFT: lr 1e-6 full, cosine, weight decay 0.01, 1 epoch, global batch 32,
bf16; Stage II GRPO: 8 rollouts, KL 0.1; Stage III ASO: AdamW lr 5e-6, batch 32, lambda = beta = 1)
live in ``env/train_configs/*_7b.yaml``; the embedded demo's values in ``env/train_configs/*_tiny.yaml``
(notebooks 04-06 read it as their ``CONFIG``, ``python -m vqalib train STAGE`` when no ``--config`` is
given). The dataclass defaults are small CPU-sized values for library calls and tests; every field the
notebooks and YAML files care about is set there explicitly.
"""

from __future__ import annotations

import dataclasses

import os
import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vqalib.core.runs import MANIFEST_NAME, environment_info, resolve_path, write_json

STAGES: tuple[str, ...] = ("sft", "grpo", "aso")
FINETUNE_MODES: tuple[str, ...] = ("full", "lora", "qlora")


#: Learning-rate schedules that do not depend on the total number of steps (allowed with a budget).
BUDGET_SCHEDULERS: tuple[str, ...] = ("constant", "constant_with_warmup", "inverse_sqrt")


@dataclass
class CommonConfig:
    """Fields every stage has. Paths are resolved against the project root."""

    model: str = "tiny"  # a tiny preset (tiny | tiny-pretrained | tiny-qwen3-vl | tiny-qwen3.5), a hub id of a supported family (Qwen/Qwen2.5-VL-7B-Instruct, Qwen/Qwen3-VL-8B-Instruct, Qwen/Qwen3.5-9B), or a local model / checkpoint folder
    init_from: str = ""  # checkpoint folder to start from (GRPO/ASO: the SFT checkpoint); overrides `model`
    data_dir: str = ""  # dataset folder; empty -> the embedded sample dataset
    sample_size: str = "default"  # sample dataset size when data_dir is empty: smoke | default | large
    data_seed: int = 0  # seed of the embedded sample dataset
    split: str = "train"  # which split to train on
    output_dir: str = "runs/demo/checkpoints/sft"  # checkpoints, final model, manifest, TensorBoard logs
    finetune: str = "full"  # full | lora | qlora (4-bit base via bitsandbytes, CUDA only)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    freeze_vision: bool = False  # keep the vision tower frozen
    max_steps: int = 300  # optimisation steps (-1: use num_epochs)
    num_epochs: float = 1.0
    batch_size: int = 16  # per device
    grad_accum: int = 1  # global batch = batch_size * grad_accum * n_devices
    lr: float = 2e-3
    optim: str = "adamw_torch"  # transformers optimizer name (adamw_torch | sgd | paged_adamw_8bit ...)
    weight_decay: float = 0.01
    warmup_steps: int = 20
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    bf16: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    fps: float = 2.0  # video sampling: frames per second
    max_frames: int = 8  # video sampling: at most this many frames
    max_pixels: int = 112 * 112  # video sampling: pixels per frame
    augment: bool = True  # random rot90 / flips / time reversal of the cached frames (train only)
    time_jitter: int = 1  # with augment: decode at this many times the rate, each draw one random phase (collator.TimeJitterCache); 1: off
    rationale: str = "short"  # rationale in the target answer: full | scrubbed | short | none (collator.RATIONALE_MODES)
    instruction: str = ""  # user instruction after the video; empty -> vqalib.schema.prompts.INSTRUCTION (the paper-style one)
    logging_steps: int = 10
    save_steps: int = 0  # 0: save only at the end
    report_to: str = "tensorboard"  # tensorboard | none | wandb ...
    num_workers: int = 0  # DataLoader worker processes that decode clips and build batches (each holds its own frame cache)
    frame_cache_mb: int = 2048  # decoded frames kept in memory, MiB per process (main and each worker), least recently used out; 0: none
    frame_disk_cache_mb: int = 10240  # cache_dir()/frames on disk (sampled clips, shared by all processes and runs), MiB, least recently used out; 0: off
    gradient_checkpointing: bool = False
    resume: str = ""  # "" | "last" | a checkpoint folder to resume from
    max_clips: int = 0  # use only the first N training clips (0: all); for smoke runs
    max_train_seconds: float = 0.0  # training budget in seconds (clock excludes setup and evaluation); 0: no limit, max_steps caps
    eval_every_seconds: float = 0.0  # held-out curve: evaluate at step 0, every this many training seconds, at the end; 0: none
    eval_limit: int = 0  # clips of eval_split the curve evaluates (0: all)
    eval_split: str = "test"  # held-out split of the curve
    rating_schema: str = ""  # rating schema (vqalib.schema.rating): a preset (paper | mos9 | qalign5 | int10) or a .json/.yaml file; empty: the dataset's own (its rating_schema.json, else the paper's); one that differs from the dataset's is refused


@dataclass
class SFTConfig(CommonConfig):
    """Stage I: cross-entropy on the assistant answer (rationale + five scores) only."""

    stage: str = "sft"


@dataclass
class GRPOConfig(CommonConfig):
    """Stage II (the paper's baseline): group-relative policy optimisation on sampled answers."""

    stage: str = "grpo"
    output_dir: str = "runs/demo/checkpoints/grpo"
    init_from: str = "runs/demo/checkpoints/sft"
    num_generations: int = 8  # G completions per prompt
    kl_coef: float = 0.1  # paper: 0.1
    clip_eps: float = 0.2  # PPO clip range of the ratio
    temperature: float = 1.0  # rollout sampling temperature (the loss's pi_theta is tempered by the same value)
    top_p: float = 1.0  # nucleus filter of the rollouts; 1: off (a filter samples another policy than the loss's)
    top_k: int = 0  # top-k filter of the rollouts; 0: off (transformers' own default would be 50)
    min_p: float = 0.0  # min-p filter of the rollouts; 0: off
    max_new_tokens: int = 96
    format_weight: float = 1.0  # weight of the per-dimension format reward
    acc_rounding: str = "grid"  # R_acc: grid (exact level, symmetric) | integer (nearest integer, half up: lopsided)
    group_by: str = "dimension"  # advantages normalised per clip and dimension (paper) | answer (one reward per answer)
    reward: str = "paper"  # paper (R_acc + R_dist on the mean label) | multi_rater (R_dist averaged over the raters' scores)
    batch_size: int = 2  # prompts per device step (each expanded to G completions)
    lr: float = 2e-4
    max_steps: int = 30
    warmup_steps: int = 2


@dataclass
class ASOConfig(CommonConfig):
    """Stage III (the method): soft-target cross-entropy against pi* = pi_ref exp(R/lambda) / Z."""

    stage: str = "aso"
    output_dir: str = "runs/demo/checkpoints/aso"
    init_from: str = "runs/demo/checkpoints/sft"
    lam: float = 1.0  # KL strength lambda of the closed form
    beta: float = 1.0  # reward scale: R(s, s*) = -beta |s - s*|
    eps: float = 0.0  # floor under pi_ref before pi* (0 = paper): pi_ref -> (1 - 9 eps) pi_ref + eps, so pi* > 0 on every level
    reward: str = "abs"  # abs: R = -beta |s - s*| on the mean label (paper) | multi_rater: -beta mean_r |s - s_r|
    penalise_outside: bool = True  # score loss on unnormalised level log-probs: adds -log(1 - mass off the 9 levels)
    rationale_loss: str = "kl"  # kl (to the reference policy on the other answer tokens, paper) | ce (on the reference rationale) | none
    rationale_weight: float = 0.1  # weight of the whole-sequence KL (paper Sec. 5.1's 0.1; lam = 1 stays inside pi*, Sec. 4.2 / App. C; docs/training.md)
    target_position: str = "score"  # where pi* is trained (issue 20): score (paper: the score line after `rationale`) | keyword (the evaluation keyword in the full rationale, where the model decides; needs rationale=full)
    on_policy: bool = False  # sample the rationale from the current policy (scrubbed of score words) and score there
    max_new_tokens: int = 96  # on-policy sampling length
    temperature: float = 1.0  # on-policy sampling temperature
    pi_ref_health: str = "warn"  # pi_ref health check before training (issue 20): warn | refuse | off (vqalib.method.aso.pi_ref_health_problems)
    pi_ref_path: str = ""  # cached pi_ref file (read if its key matches, else written); empty -> <output_dir>/pi_ref.pt
    lr: float = 5e-4
    max_steps: int = 60
    warmup_steps: int = 5


CONFIG_CLASSES: dict[str, type[CommonConfig]] = {"sft": SFTConfig, "grpo": GRPOConfig, "aso": ASOConfig}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Turn a YAML/CLI value into the field's type; raise naming ``where`` on failure."""
    typ_name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if typ_name == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if typ_name == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if typ_name == "float":
            return float(value)
        if typ_name == "str":
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a valid {typ_name}; fix the value") from None
    return value


def config_from_dict(stage: str, values: dict[str, Any], source: str = "<dict>") -> CommonConfig:
    """Build the stage's config from a mapping; unknown keys raise naming ``source`` and the key."""
    if stage not in CONFIG_CLASSES:
        raise ValueError(f"unknown training stage {stage!r}; use one of {list(STAGES)}")
    cls = CONFIG_CLASSES[stage]
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"{source}: unknown {stage} config key {key!r}; valid keys: {sorted(known)}")
        kwargs[key] = _coerce(value, known[key].type, f"{source}: key {key!r}")
    if kwargs.get("stage", stage) != stage:
        raise ValueError(f"{source}: file is for stage {kwargs['stage']!r} but was given to {stage!r}")
    kwargs["stage"] = stage
    cfg = cls(**kwargs)
    validate_config(cfg, source)
    return cfg


def parse_overrides(overrides: Sequence[str] | None) -> dict[str, str]:
    """``["lr=1e-3", "finetune=lora"]`` -> ``{"lr": "1e-3", "finetune": "lora"}``.

    Values are text here; :func:`config_from_dict` converts them to the field's type. An item
    without ``=``, with an empty key, or a key given twice raises naming the item."""
    out: dict[str, str] = {}
    for item in overrides or ():
        key, eq, value = str(item).partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE (e.g. --set max_steps=10 lr=5e-5)")
        if key.strip() in out:
            raise ValueError(f"--set {item!r}: key {key.strip()!r} is given twice ({key.strip()}={out[key.strip()]!r} "
                             "before); give it once")
        out[key.strip()] = value.strip()
    return out


def load_config(stage: str, path: str | os.PathLike | None = None, overrides: Sequence[str] | dict | None = None) -> CommonConfig:
    """Load a stage config from a YAML file (optional) and apply overrides (``key=value`` or a dict)."""
    import yaml

    values: dict[str, Any] = {}
    source = "<defaults>"
    if path:
        p = resolve_path(path)
        if not p.is_file():
            raise FileNotFoundError(f"training config {p} not found; pass an existing YAML file (see env/train_configs/)")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{p}: expected a mapping of config keys, got {type(loaded).__name__}")
        values.update(loaded)
        source = str(p)
    extra = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    values.update(extra)
    return config_from_dict(stage, values, source + (" + overrides" if extra else ""))


def validate_config(cfg: CommonConfig, source: str = "<config>") -> None:
    """Check choices and ranges; raise a ValueError that names the key and the fix."""
    if cfg.finetune not in FINETUNE_MODES:
        raise ValueError(f"{source}: finetune={cfg.finetune!r}; use one of {list(FINETUNE_MODES)}")
    if cfg.rationale not in {"full", "scrubbed", "short", "none"}:
        raise ValueError(f"{source}: rationale={cfg.rationale!r}; use full | scrubbed | short | none")
    if cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ValueError(f"{source}: batch_size and grad_accum must be >= 1")
    if not (isinstance(cfg.time_jitter, int) and cfg.time_jitter >= 1):
        raise ValueError(f"{source}: time_jitter={cfg.time_jitter!r}; use 1 (off) or an int >= 2 (decode at that many "
                         "times the rate, one random phase per draw)")
    for key in ("num_workers", "frame_cache_mb", "frame_disk_cache_mb"):
        if getattr(cfg, key) < 0:
            raise ValueError(f"{source}: {key}={getattr(cfg, key)}; use 0 (off) or a positive number")
    if cfg.rating_schema:
        from vqalib.schema import rating

        try:
            rating.get_schema(cfg.rating_schema)
        except (ValueError, FileNotFoundError) as e:
            raise ValueError(f"{source}: rating_schema={cfg.rating_schema!r}: {e}") from None
    if cfg.max_steps == 0:
        raise ValueError(f"{source}: max_steps=0 trains nothing; use -1 (epochs) or a positive number")
    for key in ("max_train_seconds", "eval_every_seconds", "eval_limit"):
        if getattr(cfg, key) < 0:
            raise ValueError(f"{source}: {key}={getattr(cfg, key)}; use 0 (off) or a positive number")

    if cfg.max_train_seconds > 0 and cfg.lr_scheduler not in BUDGET_SCHEDULERS:
        # a decaying schedule is laid out over max_steps; a time budget stops it at an unknown step,
        # so the learning rate would never decay as planned and two budgeted runs would not be comparable
        raise ValueError(f"{source}: lr_scheduler={cfg.lr_scheduler!r} decays over max_steps={cfg.max_steps}, but "
                         f"max_train_seconds={cfg.max_train_seconds:g} stops training at a step that is not known in "
                         f"advance; use lr_scheduler=constant_with_warmup (or one of {list(BUDGET_SCHEDULERS)}) for a "
                         f"budgeted run, or max_train_seconds=0")
    if isinstance(cfg, GRPOConfig) or (isinstance(cfg, ASOConfig) and cfg.on_policy):
        from vqalib.model.generation import GenerationSettings

        try:
            GenerationSettings.from_config(cfg)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    if isinstance(cfg, GRPOConfig):
        if cfg.num_generations < 2:
            raise ValueError(f"{source}: num_generations={cfg.num_generations}; GRPO needs >= 2 completions per prompt")
        for key, allowed in (("acc_rounding", ("grid", "integer")), ("group_by", ("dimension", "answer")),
                             ("reward", ("paper", "multi_rater"))):
            if getattr(cfg, key) not in allowed:
                raise ValueError(f"{source}: {key}={getattr(cfg, key)!r}; use {' | '.join(allowed)}")
    if isinstance(cfg, ASOConfig):
        if cfg.lam <= 0:
            raise ValueError(f"{source}: lam={cfg.lam}; lambda must be > 0")
        if not 0 <= cfg.eps < 1 / 9:
            # eps = 1/9 would replace pi_ref by the uniform distribution: no reference left
            raise ValueError(f"{source}: eps={cfg.eps}; the floor under pi_ref must satisfy 0 <= eps < 1/9 "
                             f"(0 = the paper's pi*; e.g. eps=0.01 lets pi* put mass on levels pi_ref rules out)")
        if cfg.pi_ref_health not in {"warn", "refuse", "off"}:
            raise ValueError(f"{source}: pi_ref_health={cfg.pi_ref_health!r}; use warn | refuse | off")
        if cfg.rationale_loss not in {"ce", "kl", "none"}:
            raise ValueError(f"{source}: rationale_loss={cfg.rationale_loss!r}; use ce | kl | none")
        if cfg.reward not in {"abs", "multi_rater"}:
            raise ValueError(f"{source}: reward={cfg.reward!r}; use abs | multi_rater")
        if cfg.target_position not in {"score", "keyword"}:
            raise ValueError(f"{source}: target_position={cfg.target_position!r}; use score | keyword")
        if cfg.target_position == "keyword" and (cfg.rationale != "full" or cfg.on_policy):
            raise ValueError(f"{source}: target_position=keyword trains the evaluation keyword inside the full "
                             f"rationale: set rationale=full and on_policy=false (got rationale={cfg.rationale!r}, "
                             f"on_policy={cfg.on_policy})")
        if cfg.rationale == "full" and not cfg.on_policy and cfg.target_position == "score":
            # issue 9: the full rationales name the level ("... is good"), so pi_ref read after them is
            # ~one-hot on the label, pi* ~ the label, and ASO degenerates to SFT on the score tokens
            raise ValueError(f"{source}: rationale=full teacher-forces rationales that name the score, so pi_ref "
                             f"would be read after the answer is given away; use rationale=scrubbed (the same "
                             f"rationales without the sentences that name a level), short or none "
                             f"(see docs/training.md, 'What pi_ref is conditioned on')")
        if cfg.on_policy and cfg.rationale_loss == "ce" and cfg.rationale_weight:
            raise ValueError(f"{source}: on_policy=true with rationale_loss=ce would apply cross-entropy to the "
                             f"model's own samples (self-training, not a regulariser); use rationale_loss=kl "
                             f"(KL to the reference policy, the paper's whole-sequence KL) or none")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without CUDA raises clearly."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} but torch sees no CUDA device; use device=cpu (or auto)")
    return device


def training_arguments(cfg: CommonConfig, **extra: Any):
    """The ``transformers.TrainingArguments`` of a config (one place, so all stages agree)."""
    from transformers import TrainingArguments

    device = resolve_device(cfg.device)
    out = resolve_path(cfg.output_dir)
    kwargs: dict[str, Any] = dict(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        optim=cfg.optim,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.num_epochs,
        bf16=cfg.bf16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        logging_dir=str(out / "tb"),
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=cfg.save_steps if cfg.save_steps > 0 else 500,
        save_only_model=False,
        report_to=[] if cfg.report_to in {"", "none"} else [cfg.report_to],
        remove_unused_columns=False,
        dataloader_num_workers=cfg.num_workers,
        dataloader_persistent_workers=cfg.num_workers > 0,  # keep each worker's in-memory frame cache
        use_cpu=device == "cpu",
        disable_tqdm=False,
        # under DDP every trainable weight gets a gradient each step (every sample carries a video, so
        # the vision tower runs too; frozen weights are not tracked): skip DDP's unused-parameter search
        ddp_find_unused_parameters=False,
    )
    kwargs.update(extra)
    from transformers import TrainingArguments as _TA

    valid = {f.name for f in dataclasses.fields(_TA)}
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in valid})


def free_core_threads(num_workers: int) -> int:
    """Torch threads for a CPU process beside ``num_workers`` data-loader workers: the cores the
    workers do not use, at least 1, never more than torch has now.

    Oversubscribing the cores (torch's default of one thread per core *plus* a worker process) made
    steps up to 20x slower on the shared 2-core machine; one thread per core is the fast setting.
    Used by the trainers (:func:`cpu_threads`) and the scorer (``vqalib.inference.scorer``)."""
    import torch

    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - num_workers))


def cpu_threads(cfg: CommonConfig) -> int | None:
    """On CPU with data-loader workers, set torch's threads to :func:`free_core_threads`; returns the
    count (``None`` on a GPU or without workers, where nothing changes)."""
    import torch

    if resolve_device(cfg.device) != "cpu" or cfg.num_workers <= 0:
        return None
    torch.set_num_threads(free_core_threads(cfg.num_workers))
    return torch.get_num_threads()


def write_manifest(cfg: CommonConfig, out_dir: str | os.PathLike, **extra: Any) -> Path:
    """Save parameters, sampling settings and versions beside the checkpoints."""
    payload = {
        "stage": cfg.stage,
        "config": dataclasses.asdict(cfg),
        "sampling": {"fps": cfg.fps, "max_frames": cfg.max_frames, "max_pixels": cfg.max_pixels},
        "environment": environment_info(),
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if isinstance(cfg, GRPOConfig) or (isinstance(cfg, ASOConfig) and cfg.on_policy):
        from vqalib.model.generation import GenerationSettings, describe

        # every rollout sampling parameter, none from the checkpoint's generation_config (vqalib.model.generation)
        payload["generation"] = describe(GenerationSettings.from_config(cfg))
    payload.update(extra)
    return write_json(Path(out_dir) / MANIFEST_NAME, payload)


@dataclass
class TrainResult:
    """What a training function returns: where the model is and how the loss went."""

    output_dir: Path
    log_history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)  # held-out curve rows (vqalib.train.budget.CURVE_COLUMNS)
    budget: dict[str, Any] = field(default_factory=dict)  # the training clock (vqalib.train.budget.BudgetCallback.summary)

    def losses(self):
        """The logged training losses as a DataFrame (step, loss, plus any logged extras)."""
        import pandas as pd

        rows = [r for r in self.log_history if "loss" in r]
        return pd.DataFrame(rows)


def config_family(cfg: CommonConfig):
    """The :class:`vqalib.model.family.ModelFamily` a config trains: its ``init_from`` checkpoint's when that
    folder exists (a full model by its ``config.json``, an adapter-only checkpoint by its adapter's base model),
    else its ``model``'s (a tiny preset, a folder under the project root, or a hub id matched by name).
    Raises ``ValueError`` naming the model when it is of no supported family (Qwen2.5-VL, Qwen3-VL, Qwen3.5)."""
    from vqalib.model.family import family_of
    from vqalib.model.tiny import is_tiny_preset

    if cfg.init_from:
        p = resolve_path(cfg.init_from)
        if p.is_dir():
            return family_of(p)  # a folder: its config.json, or its adapter's base model
    if is_tiny_preset(cfg.model):
        return family_of(cfg.model)
    p = resolve_path(cfg.model)
    return family_of(p) if p.is_dir() else family_of(str(cfg.model))


def sampling_config(cfg: CommonConfig, family=None):
    """The ``vqalib.video.frames.SamplingConfig`` of a training config (saved with every checkpoint).

    Frame sides are multiples of the model family's ``patch_factor`` (``family``, default
    :func:`config_family`: 28 for Qwen2.5-VL, 32 for Qwen3-VL and Qwen3.5), so sampled frames reach the
    model at their size; ``min_pixels`` is 2 x 2 merged patches (``4 * factor**2``), at most ``max_pixels``.
    The tiny budget (``max_pixels`` 112 x 112 = 12544) gives 112 x 112 frames at factor 28 and 96 x 96 at 32
    (the largest 32-multiple square within the budget: 3 x 3 merged vision tokens per temporal patch)."""
    from vqalib.video.frames import SamplingConfig

    factor = (family or config_family(cfg)).patch_factor
    max_frames = max(2, cfg.max_frames - cfg.max_frames % 2)
    return SamplingConfig(fps=cfg.fps, min_frames=min(4, max_frames), max_frames=max_frames,
                          max_pixels=cfg.max_pixels, min_pixels=min(4 * factor * factor, cfg.max_pixels),
                          patch_factor=factor)
