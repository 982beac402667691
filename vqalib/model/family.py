"""The model-family adapter: everything that differs between Qwen2.5-VL, Qwen3-VL and Qwen3.5, in one place.

The collator, the level scorer, the trainers, ``score``, ``benchmark`` and the GPU check ask the
:class:`ModelFamily` of their model or processor (:func:`family_of`) and never test a model class,
a processor class or a family name themselves. What a family decides:

* **frame times** - how the clip's time axis reaches the model. Qwen2.5-VL: M-RoPE, from
  ``second_per_grid_ts = temporal_patch_size / sampled_fps`` (a model input, the mean time between
  temporal patches). Qwen3-VL and Qwen3.5: as text, a ``<t seconds>`` block before each temporal
  patch's vision tokens, which the processor writes from ``video_metadata`` (``frames_indices / fps``,
  averaged over the frames of a patch) - so the metadata must give each sampled frame's presentation
  time, also on a variable-frame-rate clip (:meth:`ModelFamily.video_metadata`), or the model reads
  wrong times in plain text. Without metadata the processor assumes 24 fps.
* **chat template options** - Qwen3.5's template ends the generation prompt with an empty think block
  (``<think>\\n\\n</think>\\n\\n``) unless ``enable_thinking=True``; it is passed explicitly (off), so the
  answer the model writes, and the parser reads, comes after it. :meth:`ModelFamily.answer_text` drops a
  think block a model writes anyway.
* **model inputs** - a batch holds ``second_per_grid_ts`` only for a family whose frame times are
  M-RoPE's (Qwen3-VL and Qwen3.5 take none).
* **the level scorer's pass** - ``tree_mask``: every language-model layer attends through the attention
  mask, so the K-level scores of a dimension come from one tree-masked pass
  (:func:`vqalib.method.distributions.level_logprobs_raw`). Qwen3.5's linear-attention (gated delta rule)
  layers are recurrent and ignore a 4-D mask: its scores come from one batched pass over the trie's
  branches instead (same values, see :mod:`vqalib.method.distributions`).
* **special tokens** - what generation never samples (vision placeholders and markers, grounding
  markers, think tags) and what stops it (``<|im_end|>``, ``<|endoftext|>``); token ids come from the
  tokenizer and the model's config, never from constants.
* **LoRA targets** - the language model's projections (attention and MLP; Qwen3.5 adds its
  linear-attention projections), never the vision tower.
* **the tiny preset** - ``tiny`` (Qwen2.5-VL with the project's own small tokenizer), ``tiny-qwen3-vl``
  and ``tiny-qwen3.5``: the real config shrunk (same architecture class) with the real processor and
  tokenizer files (:mod:`vqalib.model.tiny`).

Sources: transformers 5.23 ``Qwen3VLProcessor.replace_video_token`` / ``_calculate_timestamps`` (times),
``Qwen3_5GatedDeltaNet`` (recurrent layers), the chat templates in ``../shared/data/<family>/``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Tokens generation never samples, in every family (absent ones are skipped): vision placeholders and
#: markers (a sampled ``<|video_pad|>`` would make the next forward count more video placeholders than video
#: features) and grounding markers.
VISION_AND_GROUNDING_TOKENS: tuple[str, ...] = (
    "<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|object_ref_start|>", "<|object_ref_end|>")
#: Tokens that end an answer: the chat turn end, then the document end (Qwen's ``eos_token_id`` pair).
STOP_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")

_LM_PROJECTIONS = "q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj"
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)

#: Any byte-level BPE vocabulary holds at least the 256 byte symbols; a tokenizer with fewer entries loaded
#: without its vocabulary (``Qwen3_5Tokenizer`` from ``vocab.json`` + ``merges.txt`` alone has 33).
MIN_VOCAB = 256


@dataclass(frozen=True)
class ModelFamily:
    """What one Qwen-VL family needs from the rest of the code (see the module docstring)."""

    name: str  # "qwen2_5_vl", "qwen3_vl", "qwen3_5": the transformers model_type
    label: str  # "Qwen2.5-VL"
    model_class: str  # the transformers class AutoModelForImageTextToText loads
    example_hub_id: str  # the size the project's configs name
    tiny_preset: str  # the ``--model`` name of its tiny preset
    reference_folder: str  # the folder of ``../shared/data`` with its real config/processor/tokenizer files
    frame_times: str  # "mrope" (second_per_grid_ts) or "text" (<t seconds> before each temporal patch)
    tree_mask: bool  # every language-model layer reads the 4-D attention mask
    chat_template_options: tuple[tuple[str, Any], ...] = ()
    think_tags: tuple[str, str] | None = None
    lora_targets: str = rf".*language_model.*\.({_LM_PROJECTIONS})"
    hub_name_pattern: str = ""  # a regex a hub id of this family matches (case-insensitive)
    patch_factor: int = 28  # frame sides are multiples of this (vision patch x spatial merge)
    pixel_budget: str = "frame"  # the video processor's ``size`` bounds one "frame" or the whole "clip"

    @property
    def template_kwargs(self) -> dict[str, Any]:
        """Extra ``apply_chat_template`` arguments, set explicitly (e.g. ``enable_thinking=False``)."""
        return dict(self.chat_template_options)

    @property
    def suppressed_tokens(self) -> tuple[str, ...]:
        """Tokens generation never samples (those absent from a vocabulary are skipped)."""
        return VISION_AND_GROUNDING_TOKENS + (tuple(self.think_tags) if self.think_tags else ())

    def video_metadata(self, video) -> dict[str, Any]:
        """``video_metadata`` for the processor, from a :class:`vqalib.video.frames.SampledVideo`.

        ``mrope``: the clip's own metadata (mean rate; ``second_per_grid_ts`` is the mean time between
        temporal patches). ``text``: ``frames_indices`` are the frames' presentation times times ``fps``
        (floats), so the processor's ``frames_indices / fps`` are the sampled presentation times, also on a
        variable-frame-rate clip where ``index / fps`` is not.
        """
        meta = dict(video.metadata())
        if self.frame_times == "text" and getattr(video, "timestamps", None) is not None:
            fps = float(meta["fps"])
            meta["frames_indices"] = [float(t) * fps for t in video.timestamps]
        return meta

    def frame_size_kwargs(self, frames) -> dict[str, Any]:
        """Processor ``size`` that keeps a clip's sampled frame size (``frames`` uint8 [T, H, W, 3]).

        The Qwen2-VL video processor's ``size`` bounds the pixels of one frame; Qwen3-VL's bounds the
        whole clip (``num_frames x H x W``, transformers ``video_processing_qwen3_vl.smart_resize``), so a
        per-frame bound shrinks every frame by sqrt(T) there. Frames whose sides are multiples of
        :attr:`patch_factor` then reach the model at their sampled size."""
        t, h, w = (int(x) for x in frames.shape[:3])
        pixels = h * w * (t if self.pixel_budget == "clip" else 1)
        return {"size": {"shortest_edge": pixels, "longest_edge": pixels}}

    def answer_text(self, text: str) -> str:
        """A generated answer without a leading think block (``<think>...</think>``), else unchanged."""
        if self.think_tags is None:
            return text
        return _THINK.sub("", text, count=1)

    def prompt_text(self, processor, messages) -> str:
        """The chat template rendered with the generation prompt and this family's options."""
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **self.template_kwargs)

    def describe(self) -> dict[str, Any]:
        """The record of the family for manifests."""
        return {"family": self.name, "label": self.label, "frame_times": self.frame_times,
                "level_pass": "tree" if self.tree_mask else "branches",
                "chat_template_options": self.template_kwargs}


QWEN2_5_VL = ModelFamily(
    name="qwen2_5_vl", label="Qwen2.5-VL", model_class="Qwen2_5_VLForConditionalGeneration",
    example_hub_id="Qwen/Qwen2.5-VL-7B-Instruct", tiny_preset="tiny", reference_folder="qwen2_5_vl",
    frame_times="mrope", tree_mask=True, hub_name_pattern=r"qwen2[._-]?5[._-]?vl")
QWEN3_VL = ModelFamily(
    name="qwen3_vl", label="Qwen3-VL", model_class="Qwen3VLForConditionalGeneration",
    example_hub_id="Qwen/Qwen3-VL-8B-Instruct", tiny_preset="tiny-qwen3-vl", reference_folder="qwen3_vl",
    frame_times="text", tree_mask=True, think_tags=("<think>", "</think>"), hub_name_pattern=r"qwen3[._-]?vl",
    patch_factor=32, pixel_budget="clip")
QWEN3_5 = ModelFamily(
    name="qwen3_5", label="Qwen3.5", model_class="Qwen3_5ForConditionalGeneration",
    example_hub_id="Qwen/Qwen3.5-9B", tiny_preset="tiny-qwen3.5", reference_folder="qwen3_5",
    frame_times="text", tree_mask=False, chat_template_options=(("enable_thinking", False),),
    think_tags=("<think>", "</think>"),
    lora_targets=rf".*language_model.*\.({_LM_PROJECTIONS}|in_proj_qkv|in_proj_z|out_proj)",
    hub_name_pattern=r"qwen3[._-]?5", patch_factor=32, pixel_budget="clip")

#: The supported families by name (the transformers ``model_type``).
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (QWEN2_5_VL, QWEN3_VL, QWEN3_5)}


def get_family(name: str) -> ModelFamily:
    """The family named ``name`` (a model_type, a label such as ``"Qwen3-VL"`` or a tiny preset name).
    Raises ``ValueError`` listing the supported ones."""
    key = str(name).strip()
    for f in FAMILIES.values():
        if key.lower() in (f.name, f.label.lower(), f.tiny_preset):
            return f
    raise ValueError(f"unknown model family {name!r}; supported: "
                     + ", ".join(f"{f.name} ({f.label})" for f in FAMILIES.values()))


def _from_model_type(model_type: str | None, where: str) -> ModelFamily:
    if model_type in FAMILIES:  # a family's name is its transformers model_type
        return FAMILIES[model_type]
    raise ValueError(f"{where}: model_type {model_type!r} is not a supported family; vqalib trains and scores "
                     + ", ".join(f"{f.label} ({f.name})" for f in FAMILIES.values()))


def family_of(obj: Any) -> ModelFamily:
    """The family of a model (also under DDP / peft wrappers), a config, a processor, a model folder,
    a tiny preset name or a hub id.

    A processor loaded by :func:`vqalib.model.loading.load_model_and_processor` carries its family; another
    one is told by its classes (``Qwen2_5_VLProcessor``; ``Qwen3VLProcessor`` with a ``Qwen3_5Tokenizer`` is
    Qwen3.5's, else Qwen3-VL's). A folder is read from its ``config.json`` (an adapter folder from its
    base model). A hub id is matched by name (``Qwen/Qwen3-VL-8B-Instruct``). Raises ``ValueError`` naming
    what was given when no supported family matches.
    """
    if isinstance(obj, ModelFamily):
        return obj
    fam = getattr(obj, "vqalib_family", None)
    if isinstance(fam, str):
        return get_family(fam)
    if isinstance(obj, (str, os.PathLike)):
        return _family_of_name(obj)
    cfg = None
    if hasattr(obj, "parameters"):  # a model, also under DDP / peft wrappers
        from vqalib.method.distributions import _unwrap

        cfg = getattr(_unwrap(obj), "config", None)
    if cfg is None and hasattr(obj, "model_type") and hasattr(obj, "to_dict"):
        cfg = obj
    if cfg is not None:
        return _from_model_type(getattr(cfg, "model_type", None), type(obj).__name__)
    if hasattr(obj, "tokenizer") and hasattr(obj, "video_processor"):
        cls = type(obj).__name__
        if cls.startswith("Qwen2_5_VL") or cls.startswith("Qwen2VL"):
            return QWEN2_5_VL
        if cls.startswith("Qwen3VL"):
            return QWEN3_5 if type(obj.tokenizer).__name__.startswith("Qwen3_5") else QWEN3_VL
        raise ValueError(f"processor {cls} is not one of a supported family (Qwen2.5-VL, Qwen3-VL, Qwen3.5)")
    raise TypeError(f"family_of: cannot tell the model family of a {type(obj).__name__}")


def _family_of_name(model: str | os.PathLike) -> ModelFamily:
    text = str(model)
    for f in FAMILIES.values():
        if text == f.tiny_preset or (text == "tiny-pretrained" and f is QWEN2_5_VL):
            return f
    p = Path(os.path.expanduser(text))
    if p.is_dir():
        for folder in (p, p / "adapter", p.parent):  # p/adapter: an adapter-only (QLoRA) stage's output
            cfg = folder / "config.json"
            if cfg.is_file():
                return _from_model_type(json.loads(cfg.read_text()).get("model_type"), str(cfg))
            adapter = folder / "adapter_config.json"
            if adapter.is_file():
                base = json.loads(adapter.read_text()).get("base_model_name_or_path")
                if base:
                    return _family_of_name(base)
        raise ValueError(f"{p}: no config.json (nor an adapter_config.json naming its base model); cannot tell the "
                         "model family")
    for f in FAMILIES.values():
        if f.hub_name_pattern and re.search(f.hub_name_pattern, text, re.I):
            if re.search(r"-A\d+(\.\d+)?B\b", text, re.I):  # Qwen's mixture-of-experts names: Qwen3-VL-30B-A3B, Qwen3.5-35B-A3B
                raise ValueError(f"{text!r} is a mixture-of-experts {f.label} model (model_type {f.name}_moe), which "
                                 f"vqalib does not support; use a dense one such as {f.example_hub_id}")
            return f
    presets = ["tiny-pretrained"] + [f.tiny_preset for f in FAMILIES.values()]
    raise ValueError(f"{text!r}: not a model folder, a tiny preset ({', '.join(sorted(presets))})"
                     " or a hub id of a supported family (e.g. " + ", ".join(f.example_hub_id for f in FAMILIES.values())
                     + ")")


def check_tokenizer(tokenizer, vocab_size: int | None = None, where: str = "") -> None:
    """Refuse a tokenizer that loaded without its vocabulary.

    Raises ``ValueError`` when it has fewer than :data:`MIN_VOCAB` entries (a byte-level BPE has the 256
    byte symbols at least) or fewer than half the model's ``vocab_size`` (the model's embedding rows); the
    message names the folder and the fix (``tokenizer.json`` beside the other files: ``Qwen3_5Tokenizer``
    built from ``vocab.json`` + ``merges.txt`` alone loads 33 tokens and raises nothing)."""
    n = len(tokenizer)
    small = n < MIN_VOCAB or (vocab_size is not None and n < vocab_size // 2)
    if small:
        of = f" for a model with {vocab_size} embedding rows" if vocab_size else ""
        raise ValueError(f"{where or 'tokenizer'}: {type(tokenizer).__name__} loaded {n} tokens{of}, an implausibly "
                         "small vocabulary (it was built without its vocabulary). Put the model's tokenizer.json in "
                         "the folder, as the hub checkpoint has it (Qwen3.5's tokenizer built from vocab.json + "
                         "merges.txt alone is empty, without an error)")


__all__ = ["ModelFamily", "FAMILIES", "QWEN2_5_VL", "QWEN3_VL", "QWEN3_5", "STOP_TOKENS", "MIN_VOCAB",
           "VISION_AND_GROUNDING_TOKENS", "check_tokenizer", "family_of", "get_family"]
