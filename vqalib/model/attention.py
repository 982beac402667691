"""Which attention implementation each part of a video VLM uses (vision tower, language model)."""

from __future__ import annotations

import torch


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
    Language model: ``sdpa``, which takes the 4-D tree mask of :func:`vqalib.method.distributions.level_logprobs`
    (scoring, ASO, the held-out curve); ``tree_mask=False`` (no tree-masked pass will run) allows
    flash-attention there too. ``flash`` overrides the detection (tests). The choice is recorded in
    prediction manifests (:func:`describe_model`) and training manifests (``attention``)."""
    on_cpu = device == "cpu" or (isinstance(device, str) and device.startswith("cpu"))
    use_flash = (flash_attention_available() and not on_cpu) if flash is None else bool(flash)
    vision = "flash_attention_2" if use_flash else "sdpa"
    text = "flash_attention_2" if use_flash and not tree_mask else "sdpa"
    return {"": text, "text_config": text, "vision_config": vision}
