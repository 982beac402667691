"""Loader, tiny preset, LoRA / QLoRA settings and the shrunk real config."""

from __future__ import annotations

import pytest
import torch

from model_helpers import QWEN_DIR, synthetic_clip
from vqalib.model import loading as models
from vqalib.model import tiny as tiny_preset
from vqalib.schema import prompts
from vqalib.model.inputs import build_batch
from vqalib.schema.levels import DIMENSION_KEYS


@pytest.fixture(scope="module")
def tiny():
    return models.load_model_and_processor("tiny")


def test_tiny_preset_is_a_real_qwen25vl_of_under_a_million_params(tiny):
    model, proc = tiny
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(proc).__name__ == "Qwen2_5_VLProcessor"
    assert type(proc.video_processor).__name__ == "Qwen2VLVideoProcessor"
    n = sum(p.numel() for p in model.parameters())
    assert 1e5 < n < 5e6, n
    tc = model.config.text_config
    assert tc.hidden_size == 64 and tc.num_hidden_layers == 2 and tc.initializer_range == 0.1
    assert sum(tc.rope_parameters["mrope_section"]) * 2 == tc.hidden_size // tc.num_attention_heads
    tok = proc.tokenizer
    assert model.config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert model.config.text_config.vocab_size == len(tok)
    assert proc.video_processor.size.longest_edge == tiny_preset.TINY_FRAME_PIXELS


def test_tiny_name_and_folder_load_the_same_weights(tiny, tmp_path):
    model, _ = tiny
    again, _ = models.load_model_and_processor(tiny_preset.build_tiny())
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    other = tiny_preset.build_tiny(tmp_path / "seed1", seed=1)
    m1, _ = models.load_model_and_processor(other)
    w0 = model.get_input_embeddings().weight
    assert not torch.equal(w0, m1.get_input_embeddings().weight), "a different seed must give different weights"


def test_tiny_config_rejects_a_bad_mrope_section():
    with pytest.raises(ValueError, match="head_dim/2"):
        tiny_preset.tiny_config(100, text={"rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error; on a GPU 4-bit loading is real")
@pytest.mark.parametrize("q", ["4bit", "8bit"])
def test_quantization_without_cuda_raises_clearly(q):
    with pytest.raises(RuntimeError, match="CUDA"):
        models.load_model_and_processor("tiny", quantization=q)
    with pytest.raises(ValueError, match="'4bit' or '8bit'"):
        models.quantization_config("3bit")


def test_lora_adapts_only_language_model_projections_and_trains():
    model, proc = models.load_model_and_processor("tiny", lora=models.LoraSettings(r=4, alpha=8, dropout=0.0))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all("language_model" in n for n in trainable), [n for n in trainable if "language_model" not in n]
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(f"{proj}.lora_A" in n for n in trainable), proj
    batch = build_batch(proc, [synthetic_clip()], [prompts.format_answer({k: 3.0 for k in DIMENSION_KEYS})])
    loss = model(**batch).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n]
    assert all(g is not None for g in grads)
    info = models.describe_model(model)
    assert info["peft"] and 0 < info["n_trainable"] < info["n_params"]


def test_freeze_vision_stops_vision_gradients():
    model, _ = models.load_model_and_processor("tiny", freeze_vision=True)
    visual = models.vision_tower(model)
    assert all(not p.requires_grad for p in visual.parameters())
    assert all(p.requires_grad for p in model.get_input_embeddings().parameters())


def test_shrunk_real_config_keeps_the_real_vocabulary_and_token_ids():
    if not (QWEN_DIR / "config.json").is_file():
        pytest.skip(f"real Qwen2.5-VL config not found in {QWEN_DIR} (../shared/data is CI-only)")
    cfg = tiny_preset.shrink_config(QWEN_DIR / "config.json")
    assert cfg.text_config.vocab_size == 152064 and cfg.video_token_id == 151656
    assert cfg.vision_config.tokens_per_second == 2 and cfg.vision_config.patch_size == 14
    assert cfg.text_config.num_hidden_layers == 2 and len(cfg.text_config.layer_types) == 2
    assert cfg.vision_config.out_hidden_size == cfg.text_config.hidden_size
