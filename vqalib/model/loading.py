"""Loading a video VLM + processor (hub id, local folder or the ``tiny`` preset), QLoRA and LoRA.

One code path for tiny and real: ``load_model_and_processor("tiny")`` builds (once, cached) a
local folder holding a randomly initialised ``Qwen2_5_VLForConditionalGeneration``, the
project's own tokenizer (:mod:`vqalib.model.tokenizer`) and the real transformers
``Qwen2_5_VLProcessor`` configured for 112 x 112 frames, then loads that folder exactly like
``load_model_and_processor("Qwen/Qwen2.5-VL-7B-Instruct")`` loads a hub id:
``AutoProcessor.from_pretrained`` and ``AutoModelForImageTextToText.from_pretrained``.

Tiny preset (see ``../shared/design/TINY_MODEL_NOTES.md`` for the measurements behind it): text
hidden 64, 2 layers, 4 heads / 2 KV heads (head_dim 16, so ``mrope_section`` [2, 3, 3] sums to
8 = head_dim / 2), intermediate 192; vision depth 2, hidden 64, 4 heads, patch 14, temporal
patch 2, merge 2, ``tokens_per_second`` 2; ``initializer_range`` 0.1 (with the default 0.02 the
tiny model learns the answer format and the marginal score distribution, then stalls).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vqalib.core.runs import resolve_path
from vqalib.model.attention import attention_implementation
from vqalib.model.family import QWEN2_5_VL, check_tokenizer, family_of, get_family
from vqalib.model.tiny import TINY, TINY_PRETRAINED, TINY_QWEN3_5, TINY_QWEN3_VL, build_tiny, build_tiny_family

#: LoRA targets of Qwen2.5-VL and Qwen3-VL: the language model's attention and MLP projections only. The
#: vision towers also have ``*_proj`` modules, so the pattern is anchored on ``language_model``. Each family's
#: own targets are ``vqalib.model.family.ModelFamily.lora_targets`` (Qwen3.5 adds its linear-attention
#: projections); ``LoraSettings(target_modules="family")`` (the default) takes the loaded model's.
DEFAULT_LORA_TARGETS = QWEN2_5_VL.lora_targets


@dataclass
class LoraSettings:
    """LoRA adapter settings (peft ``LoraConfig``).

    ``target_modules`` is a regex (matched against full module names), a list of module-name
    suffixes, or ``"family"`` (default): the model family's language-model projections
    (:attr:`vqalib.model.family.ModelFamily.lora_targets`), never the vision tower.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "family"
    bias: str = "none"

    def to_peft(self, family=None):
        """peft ``LoraConfig``; ``family`` (a :class:`vqalib.model.family.ModelFamily`) resolves ``"family"``."""
        from peft import LoraConfig

        targets = self.target_modules
        if targets == "family":
            targets = (family or QWEN2_5_VL).lora_targets
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=targets, bias=self.bias, task_type="CAUSAL_LM")


def resolve_model_path(model: str | os.PathLike) -> str:
    """``"tiny"`` -> the built tiny folder; ``"tiny-pretrained"`` -> the tiny preset with its vision tower
    pre-trained (:mod:`vqalib.model.pretrain`, built once); an existing folder (a relative one from the project
    root, :func:`vqalib.core.runs.resolve_path`) -> its absolute path; else a hub id (``name`` or
    ``namespace/name``). Raises ``FileNotFoundError`` for a path that is no folder and cannot be a hub id
    (absolute, ``./``, ``~`` or more than one ``/``), and for a relative path that exists only in the
    working directory (naming its absolute path)."""
    if str(model) == TINY:
        return str(build_tiny())
    if str(model) in (TINY_QWEN3_VL, TINY_QWEN3_5):
        return str(build_tiny_family(get_family(str(model))))
    if str(model) == TINY_PRETRAINED:
        from vqalib.model.pretrain import ensure_pretrained_tiny

        return str(ensure_pretrained_tiny())
    p = resolve_path(model)
    if p.exists():
        return str(p)
    text = str(model)
    here = Path(os.path.expanduser(text))
    if not here.is_absolute() and here.exists():
        raise FileNotFoundError(f"model folder {p} not found: relative paths are taken from the project root, and "
                                f"{here.resolve()} is in the working directory; pass that absolute path")
    if here.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        raise FileNotFoundError(f"model folder {p} not found (relative paths are taken from the project root); "
                                "pass an existing checkpoint folder, a tiny preset ('tiny', 'tiny-pretrained', "
                                f"'{TINY_QWEN3_VL}', '{TINY_QWEN3_5}') or a hub id like Qwen/Qwen2.5-VL-7B-Instruct, "
                                "Qwen/Qwen3-VL-8B-Instruct or Qwen/Qwen3.5-9B")
    return text


def _dtype(dtype: str | torch.dtype | None):
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype!r} not understood; use float32, bfloat16, float16 or auto") from None


def quantization_config(quantization: str | None, compute_dtype: torch.dtype = torch.bfloat16):
    """``BitsAndBytesConfig`` for ``"4bit"`` (NF4, double quantisation) or ``"8bit"``; None for None.

    bitsandbytes needs a CUDA device: on a machine without one this raises a ``RuntimeError``
    that says so, instead of failing later inside the loader.
    """
    if quantization is None:
        return None
    if quantization not in ("4bit", "8bit"):
        raise ValueError(f"quantization={quantization!r}; use None, '4bit' or '8bit'")
    if not torch.cuda.is_available():
        raise RuntimeError(f"quantization={quantization!r} needs a CUDA GPU (bitsandbytes), and none is visible "
                           "here; load with quantization=None on CPU")
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def attention_parts(model) -> dict[str, str | None]:
    """The attention implementation each part of a loaded model uses: ``{"text": ..., "vision": ...}``
    (``vision`` None for a model without a vision sub-config)."""
    cfg = base_model(model).config
    text_cfg = getattr(cfg, "text_config", None) or cfg
    vision_cfg = getattr(cfg, "vision_config", None)
    return {"text": getattr(text_cfg, "_attn_implementation", None),
            "vision": getattr(vision_cfg, "_attn_implementation", None) if vision_cfg is not None else None}


def load_model_and_processor(model: str | os.PathLike = TINY, *, dtype: str | torch.dtype | None = "float32",
                             device_map: str | dict | None = None, attn_implementation: str | dict | None = "auto",
                             quantization: str | None = None, lora: LoraSettings | None = None,
                             freeze_vision: bool = False, gradient_checkpointing: bool = False):
    """Load a video VLM and its processor by hub id, local folder or ``"tiny"``.

    The model class comes from ``AutoModelForImageTextToText`` (Qwen2.5-VL and other video
    VLMs whose processor accepts ``videos=``). ``quantization`` loads 4-/8-bit weights through
    bitsandbytes (CUDA only) and prepares them for k-bit training when ``lora`` is given;
    ``lora`` wraps the model in a peft LoRA adapter (only adapter weights train);
    ``freeze_vision`` stops gradients into the vision tower (useful for full fine-tuning).
    ``attn_implementation`` 'sdpa' or 'eager' is needed for :func:`vqalib.method.distributions.level_logprobs`
    (it uses a tree attention mask); 'flash_attention_2' loads but cannot be scored that way.
    ``"auto"`` (default) chooses per part (:func:`attention_implementation`): the vision tower on
    flash-attention when installed on CUDA, the language model on ``sdpa`` for the tree mask; a
    dict ``{"text_config": ..., "vision_config": ...}`` is passed to transformers as is.
    ``model`` may be of any supported family (:mod:`vqalib.model.family`: Qwen2.5-VL, Qwen3-VL, Qwen3.5; a hub
    id, a folder, or a tiny preset ``tiny``, ``tiny-pretrained``, ``tiny-qwen3-vl``, ``tiny-qwen3.5``); the model
    and the processor carry its name (``vqalib_family``) and ``lora`` targets its language-model projections.
    Returns ``(model, processor)``. Raises ``ValueError`` naming the folder when its config is of no supported
    family, or when its tokenizer loaded without its vocabulary (fewer than 256 tokens: a Qwen3.5 folder
    without ``tokenizer.json``; the message says to put it there).
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = resolve_model_path(model)
    torch_dtype = _dtype(dtype)
    qcfg = quantization_config(quantization, torch_dtype if isinstance(torch_dtype, torch.dtype)
                               and torch_dtype != torch.float32 else torch.bfloat16)
    processor = AutoProcessor.from_pretrained(path)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    family = family_of(config)
    # refused: a tokenizer below the 256 byte symbols (Qwen3_5Tokenizer without tokenizer.json loads 33 tokens from
    # vocab.json + merges.txt, 9 from a saved folder). Not compared with the embedding rows: a folder may pair a
    # smaller tokenizer with a larger embedding by design (bench/gpu_check.py: the project's 782-token tokenizer on
    # the 7B's 152,064 rows); build_tiny_family compares them, on the real reference files.
    check_tokenizer(processor.tokenizer, where=str(path))
    processor.vqalib_family = family.name
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation == "auto":  # flash-attention takes only half precision
        half = torch_dtype in (torch.bfloat16, torch.float16)
        attn_implementation = attention_implementation(device_map if isinstance(device_map, str) else None,
                                                       flash=None if half else False)
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if qcfg is not None:
        kwargs["quantization_config"] = qcfg
    net = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    net.vqalib_source = str(model)
    net.vqalib_family = family.name
    if freeze_vision:
        visual = vision_tower(net)
        for p in visual.parameters():
            p.requires_grad_(False)
    if gradient_checkpointing:
        net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if qcfg is not None:
            net = prepare_model_for_kbit_training(net, use_gradient_checkpointing=gradient_checkpointing)
        net = get_peft_model(net, lora.to_peft(family))
    return net, processor


def base_model(model):
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def vision_tower(model) -> torch.nn.Module:
    """The vision encoder module (``model.model.visual`` for Qwen2.5-VL)."""
    base = base_model(model)
    for attr in ("visual", "vision_tower", "vision_model"):
        for owner in (getattr(base, "model", None), base):
            if owner is not None and isinstance(getattr(owner, attr, None), torch.nn.Module):
                return getattr(owner, attr)
    raise AttributeError(f"{type(base).__name__} has no vision tower attribute (visual / vision_tower / vision_model)")


def describe_model(model) -> dict[str, Any]:
    """Name, class, parameter counts and dtype, for manifests and checkpoints."""
    base = base_model(model)
    params = list(model.parameters())
    return {
        "source": getattr(base, "vqalib_source", getattr(base.config, "_name_or_path", None)),
        "class": type(base).__name__,
        "peft": hasattr(model, "get_base_model"),
        "n_params": int(sum(p.numel() for p in params)),
        "n_trainable": int(sum(p.numel() for p in params if p.requires_grad)),
        "dtype": str(next(iter(params)).dtype).replace("torch.", ""),
        "attn_implementation": getattr(base.config, "_attn_implementation", None),
        "attn_implementation_parts": attention_parts(model),
    }


def adapter_folder(path: str | os.PathLike) -> Path | None:
    """The LoRA adapter of a checkpoint folder that holds no full model, else ``None``.

    ``path`` itself when it holds ``adapter_config.json`` and no ``config.json`` (an adapter folder such as
    ``checkpoints/sft/adapter``); ``path/adapter`` when ``path`` has no ``config.json`` (a QLoRA stage's
    output: adapter only); ``None`` for a folder with a full model (a LoRA stage's merged output loads as
    a plain model), a hub id or a missing path. One rule for the trainers and the scorer."""
    p = Path(path)
    if not p.is_dir() or (p / "config.json").is_file():
        return None
    if (p / "adapter_config.json").is_file():
        return p
    if (p / "adapter" / "adapter_config.json").is_file():
        return p / "adapter"
    return None


def adapter_base_model(adapter: str | os.PathLike) -> str:
    """The base model a LoRA adapter folder was trained on: ``base_model_name_or_path`` of its
    ``adapter_config.json``, else the ``base_model`` of the training manifest beside it (the adapter
    folder or its parent). Raises ``ValueError`` naming the folder when neither says."""
    from vqalib.core.runs import read_manifest

    a = Path(adapter)
    base = json.loads((a / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        base = next((m.get("base_model") for m in (read_manifest(a), read_manifest(a.parent)) if m.get("base_model")), None)
    if not base:
        raise ValueError(f"{a}: LoRA adapter without a base model (no base_model_name_or_path in adapter_config.json, "
                         "no base_model in the checkpoint manifest); load the base and the adapter yourself "
                         "(peft.PeftModel.from_pretrained) and pass the model on")
    return str(base)


def load_adapter_checkpoint(adapter: str | os.PathLike, *, dtype: str | torch.dtype | None = "float32",
                            device_map: str | dict | None = None, quantization: str | None = None,
                            trainable: bool = False, freeze_vision: bool = False,
                            gradient_checkpointing: bool = False):
    """``(PeftModel, processor)``: the base of a LoRA adapter folder (:func:`adapter_base_model`) loaded
    like :func:`load_model_and_processor` (``dtype``, ``quantization``...) with the adapter on top.

    ``trainable``: the adapter's weights require gradients (a later stage continues training it; the
    base is frozen, and a quantised base is prepared for k-bit training) - else the whole model is
    frozen for inference. The processor saved beside the adapter (the adapter folder or its parent)
    is used when there is one. The scorer and the trainers both load adapter checkpoints here."""
    from peft import PeftModel

    a = Path(adapter)
    net, processor = load_model_and_processor(adapter_base_model(a), dtype=dtype, device_map=device_map,
                                              quantization=quantization, freeze_vision=freeze_vision,
                                              gradient_checkpointing=gradient_checkpointing)
    if trainable and quantization is not None:
        from peft import prepare_model_for_kbit_training

        net = prepare_model_for_kbit_training(net, use_gradient_checkpointing=gradient_checkpointing)
    net = PeftModel.from_pretrained(net, str(a), is_trainable=trainable)
    proc_dir = next((d for d in (a, a.parent) if (d / "preprocessor_config.json").is_file()
                     or (d / "processor_config.json").is_file()), None)
    if proc_dir is not None:
        from transformers import AutoProcessor

        family = processor.vqalib_family
        processor = AutoProcessor.from_pretrained(str(proc_dir))
        processor.vqalib_family = family
    return net, processor
