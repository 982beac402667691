"""Loading a video VLM + processor (hub id, local folder or the ``tiny`` preset), QLoRA and LoRA.

One code path for tiny and real: ``load_model_and_processor("tiny")`` builds (once, cached) a
local folder holding a randomly initialised ``Qwen2_5_VLForConditionalGeneration``, the
project's own tokenizer (:mod:`vqalib.tokenizer`) and the real transformers
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

import copy
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .runs import cache_dir, resolve_path

TINY = "tiny"
#: The tiny preset with its vision tower pre-trained on unrated generated clips (:mod:`vqalib.pretrain`).
TINY_PRETRAINED = "tiny-pretrained"
#: The size of the frames the tiny preset's processor is configured for (pixels per frame).
TINY_FRAME_PIXELS = 112 * 112

#: LoRA targets: the language model's attention and MLP projections only. The Qwen2.5-VL vision
#: tower also has ``*_proj`` modules (its MLP), so the pattern is anchored on ``language_model``.
DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

TINY_TEXT_DEFAULTS: dict[str, Any] = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=192, max_position_embeddings=4096, rms_norm_eps=1e-6,
    rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, rope_theta=10000.0,
    initializer_range=0.1, use_sliding_window=False, max_window_layers=2, attention_dropout=0.0,
)
TINY_VISION_DEFAULTS: dict[str, Any] = dict(
    depth=2, hidden_size=64, num_heads=4, intermediate_size=128, patch_size=14,
    temporal_patch_size=2, spatial_merge_size=2, window_size=112, fullatt_block_indexes=[1],
    tokens_per_second=2, in_channels=3, out_hidden_size=64, initializer_range=0.1,
)


@dataclass
class LoraSettings:
    """LoRA adapter settings (peft ``LoraConfig``).

    ``target_modules`` is a regex (matched against full module names) or a list of module-name
    suffixes; the default adapts the language model's attention and MLP projections.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = DEFAULT_LORA_TARGETS
    bias: str = "none"

    def to_peft(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, bias=self.bias, task_type="CAUSAL_LM")


def tiny_config(vocab_size: int, special_ids: dict[str, int] | None = None,
                text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None):
    """A ``Qwen2_5_VLConfig`` of the tiny preset; ``text`` / ``vision`` override its fields.

    ``special_ids`` maps the Qwen special tokens to the tokenizer's ids (``<|video_pad|>`` ...).
    Raises when ``mrope_section`` does not sum to head_dim / 2 (the model would misbehave silently).
    """
    from transformers import Qwen2_5_VLConfig

    # deep copies: the config classes rewrite nested dicts in place (rope_scaling gains a rope_type), which
    # would change the defaults, and with them the tiny preset's cache key, for the rest of the process
    t = copy.deepcopy({**TINY_TEXT_DEFAULTS, **(text or {})})
    v = copy.deepcopy({**TINY_VISION_DEFAULTS, **(vision or {})})
    v.setdefault("out_hidden_size", t["hidden_size"])
    v["out_hidden_size"] = t["hidden_size"]
    head_dim = t["hidden_size"] // t["num_attention_heads"]
    section = t["rope_scaling"]["mrope_section"]
    if sum(section) * 2 != head_dim:
        raise ValueError(f"mrope_section {section} sums to {sum(section)}, must be head_dim/2 = {head_dim // 2} "
                         f"(hidden_size {t['hidden_size']} / {t['num_attention_heads']} heads)")
    ids = special_ids or {}
    t.update(vocab_size=vocab_size, bos_token_id=ids.get("<|endoftext|>"), eos_token_id=ids.get("<|im_end|>"),
             pad_token_id=ids.get("<|endoftext|>"))
    cfg = Qwen2_5_VLConfig(
        text_config=t, vision_config=v,
        image_token_id=ids.get("<|image_pad|>", 0), video_token_id=ids.get("<|video_pad|>", 0),
        vision_start_token_id=ids.get("<|vision_start|>", 0), vision_end_token_id=ids.get("<|vision_end|>", 0),
        tie_word_embeddings=False,
    )
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return cfg


def shrink_config(config, text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None):
    """A real architecture's config (``config.json`` path, dict or config) with its sizes shrunk.

    Keeps everything else of the real file (vocabulary size, special token ids, rope theta,
    ``tokens_per_second``, patch/merge sizes, window size), so a randomly initialised model built
    from it exercises the real shapes of the token/vision plumbing on CPU. Default sizes: text
    hidden 64, 2 layers, 4 heads / 2 KV heads, mrope [2, 3, 3]; vision depth 2, hidden 32.
    """
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config, (str, os.PathLike)):
        p = Path(config)
        config = AutoConfig.from_pretrained(str(p.parent if p.is_file() else p))
    elif isinstance(config, dict):
        config = AutoConfig.for_model(**config)
    assert isinstance(config, PretrainedConfig)
    d = config.to_dict()
    t = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=128, max_window_layers=2, **(text or {}))
    v = dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=64, fullatt_block_indexes=[1], **(vision or {}))
    d["text_config"].update(t)
    d["text_config"].pop("layer_types", None)  # re-derived for the new layer count
    rope = dict(d["text_config"].get("rope_parameters") or {})
    head_dim = t["hidden_size"] // t["num_attention_heads"]
    rope["mrope_section"] = (text or {}).get("mrope_section", [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16])
    if sum(rope["mrope_section"]) * 2 != head_dim:
        raise ValueError(f"mrope_section {rope['mrope_section']} must sum to head_dim/2 = {head_dim // 2}")
    d["text_config"]["rope_parameters"] = rope
    d["text_config"].pop("mrope_section", None)
    for sub in (d, d["text_config"], d["vision_config"]):  # random weights are built in float32
        for key in ("dtype", "torch_dtype"):
            if key in sub:
                sub[key] = "float32"
    d["vision_config"].update(v)
    d["vision_config"]["out_hidden_size"] = t["hidden_size"]
    return type(config).from_dict(d)


def build_processor(tokenizer, frame_pixels: int = TINY_FRAME_PIXELS):
    """The real ``Qwen2_5_VLProcessor`` around ``tokenizer``, with image/video processors whose
    pixel range is fixed at ``frame_pixels`` (so 112 x 112 frames are not upscaled)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    size = {"shortest_edge": frame_pixels, "longest_edge": frame_pixels}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2,
                                            cap_pixels_per_frame=False, do_sample_frames=False)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               video_processor=video_processor, chat_template=tokenizer.chat_template)


def _tiny_key(seed: int, vocab_size: int, text: dict | None, vision: dict | None) -> str:
    from . import tokenizer as tk

    blob = json.dumps({"seed": seed, "vocab": vocab_size, "text": {**TINY_TEXT_DEFAULTS, **(text or {})},
                       "vision": {**TINY_VISION_DEFAULTS, **(vision or {})}, "frame_pixels": TINY_FRAME_PIXELS,
                       "corpus": tk.training_corpus(), "template": tk.CHAT_TEMPLATE, "v": 1}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def build_tiny(path: str | os.PathLike | None = None, *, seed: int = 0, vocab_size: int = 768,
               text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None,
               overwrite: bool = False) -> Path:
    """Write the tiny preset folder (config, random weights, tokenizer, processor) and return it.

    Default location: ``<cache>/models/tiny-<hash of settings and tokenizer corpus>``, reused when
    it already holds a complete build. Weights are drawn with ``torch.manual_seed(seed)``.
    """
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from . import tokenizer as tk

    out = Path(path) if path is not None else cache_dir() / "models" / f"tiny-{_tiny_key(seed, vocab_size, text, vision)}"
    done = out / ".complete"
    if done.is_file() and not overwrite:
        return out
    final = out
    out = out.parent / f".{out.name}.tmp-{os.getpid()}"  # build aside, then move into place
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    tok = tk.build_tokenizer(vocab_size)
    ids = {t: tok.convert_tokens_to_ids(t) for t in tk.SPECIAL_TOKENS}
    cfg = tiny_config(len(tok), ids, text, vision)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"], do_sample=False)
    model.save_pretrained(str(out))
    build_processor(tok).save_pretrained(str(out))
    (out / "vqalib_tiny.json").write_text(json.dumps(
        {"seed": seed, "vocab_size": vocab_size, "text": text, "vision": vision,
         "n_params": sum(p.numel() for p in model.parameters())}, indent=2))
    return publish_folder(out, final, overwrite)


def publish_folder(tmp: Path, final: Path, overwrite: bool = False) -> Path:
    """Mark the build folder ``tmp`` complete and move it to ``final`` (atomic rename); when another
    process (a second rank) put a complete build there first, keep that one. Returns ``final``."""
    (tmp / ".complete").write_text("ok\n")
    if final.exists():
        if (final / ".complete").is_file() and not overwrite:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        shutil.rmtree(final)
    try:
        os.replace(tmp, final)
    except OSError:  # another process moved its complete build into place meanwhile
        if not (final / ".complete").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_tiny_preset(model: Any) -> bool:
    """Whether ``model`` names a tiny preset: ``"tiny"`` or ``"tiny-pretrained"``."""
    return str(model) in (TINY, TINY_PRETRAINED)


def resolve_model_path(model: str | os.PathLike) -> str:
    """``"tiny"`` -> the built tiny folder; ``"tiny-pretrained"`` -> the tiny preset with its vision tower
    pre-trained (:mod:`vqalib.pretrain`, built once); an existing folder (a relative one from the project
    root, :func:`vqalib.runs.resolve_path`) -> its absolute path; else a hub id (``name`` or
    ``namespace/name``). Raises ``FileNotFoundError`` for a path that is no folder and cannot be a hub id
    (absolute, ``./``, ``~`` or more than one ``/``), and for a relative path that exists only in the
    working directory (naming its absolute path)."""
    if str(model) == TINY:
        return str(build_tiny())
    if str(model) == TINY_PRETRAINED:
        from .pretrain import ensure_pretrained_tiny

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
                                "pass an existing checkpoint folder, 'tiny', 'tiny-pretrained' or a hub id "
                                "like Qwen/Qwen2.5-VL-7B-Instruct")
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


def flash_attention_available() -> bool:
    """True when the ``flash_attn`` package (FlashAttention-2) is importable and a CUDA device is visible."""
    if not torch.cuda.is_available():
        return False
    try:
        from transformers.utils import is_flash_attn_2_available

        return bool(is_flash_attn_2_available())
    except ImportError:
        return False


def attention_implementation(device: str | dict | None = None, *, tree_mask: bool = True,
                             flash: bool | None = None) -> dict[str, str]:
    """The attention implementation of each part of a Qwen2.5-VL-style model, as transformers 5.x takes
    it per sub-config: ``{"": text, "text_config": text, "vision_config": vision}``.

    Vision tower: ``flash_attention_2`` when flash-attn is installed and the model runs on CUDA
    (``device`` not ``"cpu"``; ``None`` = CUDA if visible), else ``sdpa``. Under ``sdpa``/``eager``
    the Qwen2.5-VL tower calls attention once per window and frame (7,232 calls for a 32-frame clip at
    the 7B max pixels); FlashAttention-2 takes the packed windows in one varlen call per layer.
    Language model: ``sdpa``, which takes the 4-D tree mask of :func:`vqalib.scoring.level_logprobs`
    (scoring, ASO, the held-out curve); ``tree_mask=False`` (no tree-masked pass will run) allows
    flash-attention there too. ``flash`` overrides the detection (tests). The choice is recorded in
    prediction manifests (:func:`describe_model`) and training manifests (``attention``)."""
    on_cpu = device == "cpu" or (isinstance(device, str) and device.startswith("cpu"))
    use_flash = (flash_attention_available() and not on_cpu) if flash is None else bool(flash)
    vision = "flash_attention_2" if use_flash else "sdpa"
    text = "flash_attention_2" if use_flash and not tree_mask else "sdpa"
    return {"": text, "text_config": text, "vision_config": vision}


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
    ``attn_implementation`` 'sdpa' or 'eager' is needed for :func:`vqalib.scoring.level_logprobs`
    (it uses a tree attention mask); 'flash_attention_2' loads but cannot be scored that way.
    ``"auto"`` (default) chooses per part (:func:`attention_implementation`): the vision tower on
    flash-attention when installed on CUDA, the language model on ``sdpa`` for the tree mask; a
    dict ``{"text_config": ..., "vision_config": ...}`` is passed to transformers as is.
    Returns ``(model, processor)``.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = resolve_model_path(model)
    torch_dtype = _dtype(dtype)
    qcfg = quantization_config(quantization, torch_dtype if isinstance(torch_dtype, torch.dtype)
                               and torch_dtype != torch.float32 else torch.bfloat16)
    processor = AutoProcessor.from_pretrained(path)
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
        net = get_peft_model(net, lora.to_peft())
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
    from vqalib.train.common import read_manifest

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

        processor = AutoProcessor.from_pretrained(str(proc_dir))
    return net, processor
