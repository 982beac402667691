"""The tiny presets: a randomly initialised Qwen2.5-VL of the real architecture class, built once
and cached as a model folder that loads exactly like a hub checkpoint (:mod:`vqalib.model.loading`).

Tiny preset (see ``../shared/design/TINY_MODEL_NOTES.md`` for the measurements behind it): text
hidden 64, 2 layers, 4 heads / 2 KV heads (head_dim 16, so ``mrope_section`` [2, 3, 3] sums to
8 = head_dim / 2), intermediate 192; vision depth 2, hidden 64, 4 heads, patch 14, temporal
patch 2, merge 2, ``tokens_per_second`` 2; ``initializer_range`` 0.1 (with the default 0.02 the
tiny model learns the answer format and the marginal score distribution, then stalls).

``tiny-qwen3-vl`` and ``tiny-qwen3.5`` (:func:`build_tiny_family`): the real Qwen3-VL-2B-Instruct and
Qwen3.5-0.8B ``config.json`` shrunk (:data:`FAMILY_TINY_SIZES`; text hidden 64, 2 layers - Qwen3.5 one
linear-attention and one full-attention layer -, vision depth 2), random weights, and the real processor,
tokenizer and chat template (:func:`reference_folder`: ``../shared/data`` or ``$VQALIB_REFERENCE_FILES``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from vqalib.core.runs import cache_dir

TINY = "tiny"
#: The tiny preset with its vision tower pre-trained on unrated generated clips (:mod:`vqalib.model.pretrain`).
TINY_PRETRAINED = "tiny-pretrained"
#: The frame budget of the tiny presets (pixels per frame; ``SamplingConfig.max_pixels`` of the tiny configs and
#: of the scorer's default for a tiny preset): 112 x 112 frames at Qwen2.5-VL's factor 28 (4 x 4 merged vision
#: tokens per temporal patch); 96 x 96 at Qwen3-VL's / Qwen3.5's factor 32 (3 x 3), the largest 32-multiple
#: square within the budget and the nearest in pixels (9216 vs 16384 for 128 x 128).
TINY_FRAME_PIXELS = 112 * 112

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
    from vqalib.model import tokenizer as tk

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

    from vqalib.model import tokenizer as tk

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


#: The tiny presets of the Qwen3-VL and Qwen3.5 families (:func:`build_tiny_family`).
TINY_QWEN3_VL = "tiny-qwen3-vl"
TINY_QWEN3_5 = "tiny-qwen3.5"
#: Every tiny preset name ``--model`` takes.
TINY_PRESETS: tuple[str, ...] = (TINY, TINY_PRETRAINED, TINY_QWEN3_VL, TINY_QWEN3_5)


def is_tiny_preset(model: Any) -> bool:
    """Whether ``model`` names a tiny preset (:data:`TINY_PRESETS`)."""
    return str(model) in TINY_PRESETS


# --------------------------------------------------------------------------- tiny presets of the other families

#: Sizes of each family's tiny preset (the real config shrunk; everything not named stays as in the real
#: ``config.json``: vocabulary, special token ids, rope theta and its interleaved M-RoPE, patch 16, merge 2,
#: tied embeddings, Qwen3.5's layer pattern of linear and full attention).
FAMILY_TINY_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "qwen3_vl": dict(
        text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                  intermediate_size=192, initializer_range=0.1, mrope_section=[2, 3, 3]),
        vision=dict(depth=2, hidden_size=64, num_heads=4, intermediate_size=128, deepstack_visual_indexes=[1],
                    initializer_range=0.1)),
    "qwen3_5": dict(
        text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                  intermediate_size=192, initializer_range=0.1, layer_types=["linear_attention", "full_attention"],
                  linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=16, linear_value_head_dim=16,
                  mrope_section=[2, 1, 1]),
        vision=dict(depth=2, hidden_size=64, num_heads=4, intermediate_size=128, deepstack_visual_indexes=[],
                    initializer_range=0.1)),
}
#: Environment variable naming a folder that holds ``qwen3_vl/``, ``qwen3_5/`` ... (default ``../shared/data``).
REFERENCE_FILES_ENV = "VQALIB_REFERENCE_FILES"


def reference_folder(family) -> Path:
    """The folder with a family's real ``config.json``, processor and tokenizer files (no weights):
    ``$VQALIB_REFERENCE_FILES/<family>`` when the variable is set (only there), else ``../shared/data/<family>``
    beside the project. Raises ``FileNotFoundError`` naming the place looked in and the files needed."""
    from vqalib.core.runs import project_root
    from vqalib.model.family import get_family

    fam = get_family(family) if isinstance(family, str) else family
    # a folder named by the variable is the one asked for: no silent fallback to ../shared/data
    roots = [Path(os.environ[REFERENCE_FILES_ENV])] if os.environ.get(REFERENCE_FILES_ENV) else \
        [project_root().parent / "shared" / "data"]
    for root in roots:
        d = root / fam.reference_folder
        if (d / "config.json").is_file() and (d / "tokenizer_config.json").is_file():
            return d
    raise FileNotFoundError(
        f"the {fam.tiny_preset} preset is built from {fam.label}'s real config, processor and tokenizer files "
        f"(config.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json, video_preprocessor_config.json, "
        f"the chat template), looked for in {' and '.join(str(r / fam.reference_folder) for r in roots)}; download them "
        f"from {fam.example_hub_id} (no weights needed) into a '{fam.reference_folder}' folder and point "
        f"{REFERENCE_FILES_ENV} at its parent")


def shrink_family_config(family, text: dict[str, Any] | None = None, vision: dict[str, Any] | None = None):
    """A family's real config (:func:`reference_folder`) with the tiny preset's sizes
    (:data:`FAMILY_TINY_SIZES`, overridden by ``text`` / ``vision``), in float32. Raises when the M-RoPE
    sections do not fill the rotary half of a head (the model would misbehave silently)."""
    from transformers import AutoConfig

    from vqalib.model.family import get_family

    fam = get_family(family) if isinstance(family, str) else family
    d = json.loads((reference_folder(fam) / "config.json").read_text())
    sizes = FAMILY_TINY_SIZES[fam.name]
    t = copy.deepcopy({**sizes["text"], **(text or {})})
    v = copy.deepcopy({**sizes["vision"], **(vision or {})})
    section = t.pop("mrope_section")
    tc = d["text_config"]
    rope_key = "rope_parameters" if "rope_parameters" in tc else "rope_scaling"
    rope = dict(tc[rope_key])
    rope["mrope_section"] = section
    rotary = int(t["head_dim"] * float(rope.get("partial_rotary_factor", 1.0)))
    if sum(section) * 2 != rotary:
        raise ValueError(f"mrope_section {section} sums to {sum(section)}, must be half the rotary dimension "
                         f"{rotary // 2} (head_dim {t['head_dim']} x partial_rotary_factor)")
    tc.update(t)
    tc[rope_key] = rope
    d["vision_config"].update(v)
    d["vision_config"]["out_hidden_size"] = t["hidden_size"]
    for sub in (d, tc, d["vision_config"]):  # random weights are built in float32
        for key in ("dtype", "torch_dtype"):
            if key in sub:
                sub[key] = "float32"
    return AutoConfig.for_model(**d)


def _family_key(fam, seed: int) -> str:
    ref = reference_folder(fam)
    files = {p.name: p.stat().st_size for p in sorted(ref.iterdir()) if p.is_file() and p.suffix in (".json", ".jinja", ".txt")}
    blob = json.dumps({"family": fam.name, "seed": seed, "sizes": FAMILY_TINY_SIZES[fam.name], "files": files,
                       "config": (ref / "config.json").read_text(), "v": 1}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def build_tiny_family(family, path: str | os.PathLike | None = None, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a family's tiny preset folder and return it: a randomly initialised model of the real
    architecture class from the real config shrunk (:func:`shrink_family_config`), with the family's real
    processor, tokenizer, chat template and (where the family has one) ``generation_config.json`` - so the
    project's code meets the same files a hub checkpoint brings. ``"qwen2_5_vl"`` is :func:`build_tiny`.

    Default location ``<cache>/models/<preset>-<hash of sizes and reference files>``, reused when complete.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vqalib.model.family import check_tokenizer, get_family

    fam = get_family(family) if isinstance(family, str) else family
    if fam.name == "qwen2_5_vl":
        return build_tiny(path, seed=seed, overwrite=overwrite)
    out = Path(path) if path is not None else cache_dir() / "models" / f"{fam.tiny_preset}-{_family_key(fam, seed)}"
    if (out / ".complete").is_file() and not overwrite:
        return out
    final = out
    out = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    ref = reference_folder(fam)
    processor = AutoProcessor.from_pretrained(str(ref))
    cfg = shrink_family_config(fam)
    check_tokenizer(processor.tokenizer, cfg.text_config.vocab_size, where=str(ref))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(cfg)
    if (ref / "generation_config.json").is_file():  # the checkpoint's own sampling defaults, as a hub folder has them
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(str(ref))
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    (out / "vqalib_tiny.json").write_text(json.dumps(
        {"family": fam.name, "seed": seed, "reference_files": str(ref), "sizes": FAMILY_TINY_SIZES[fam.name],
         "n_params": sum(p.numel() for p in model.parameters())}, indent=2))
    return publish_folder(out, final, overwrite)
