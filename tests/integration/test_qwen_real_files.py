"""The real Qwen2.5-VL-7B tokenizer/processor/config files (../shared/data/qwen2_5_vl) with our plumbing."""

from __future__ import annotations

import json

import pytest
import torch

from model_helpers import QWEN_DIR, SHARED, shrunk_real_model
from test_tokenizer import tok  # noqa: F401  (a module fixture used below)
from vqalib.model import tokenizer as tk
from vqalib.schema import prompts
from vqalib.method import distributions as scoring
from vqalib.model.inputs import build_batch
from vqalib.schema.levels import DIMENSION_KEYS, LEVEL_STRINGS

CLIP = SHARED / "videos" / "konvid" / "10053703034.mp4"


@pytest.fixture(scope="module")
def real_processor():
    if not (QWEN_DIR / "tokenizer.json").is_file():
        pytest.skip(f"real Qwen2.5-VL files not found in {QWEN_DIR} (../shared/data is CI-only)")
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(QWEN_DIR))


def test_chat_template_renders_the_qwen_format(real_processor):
    text = real_processor.apply_chat_template(prompts.build_messages(), tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    f"<|vision_start|><|video_pad|><|vision_end|>{prompts.INSTRUCTION}<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_level_strings_tokenise_as_digit_dot_digit(real_processor):
    tok = real_processor.tokenizer
    for s in LEVEL_STRINGS:
        assert tok.tokenize(s) == [s[0], ".", s[2]], s
    assert tok.tokenize(" 3.5") == ["Ġ", "3", ".", "5"]
    ids = scoring.level_token_ids(tok)
    assert len({s[1] for s in ids}) == 1 and len({s[0] for s in ids}) == 5


def test_video_pad_count_for_a_real_clip_at_2fps(real_processor):
    if not CLIP.is_file():
        pytest.skip(f"sample clip not found at {CLIP}")
    from vqalib.video.frames import SamplingConfig, sample_video

    clip = sample_video(CLIP, SamplingConfig(fps=2.0, max_frames=64, max_pixels=224 * 224))
    b = build_batch(real_processor, [clip])
    t, h, w = b["video_grid_thw"][0].tolist()
    assert t == len(clip.indices) // 2 and h * 14 == clip.frames.shape[1] and w * 14 == clip.frames.shape[2]
    n_pad = int((b["input_ids"] == real_processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")).sum())
    assert n_pad == t * h * w // 4
    assert b["second_per_grid_ts"][0].item() == pytest.approx(2 / clip.effective_fps, rel=1e-4)
    assert clip.effective_fps == pytest.approx(2.0, rel=0.05)


def test_forward_pass_of_the_shrunk_real_config_model(real_processor):
    model, proc = shrunk_real_model()
    from model_helpers import synthetic_clip

    answer = prompts.format_answer({k: 4.0 for k in DIMENSION_KEYS}, "Fine.")
    b = build_batch(proc, [synthetic_clip(size=(56, 84)), synthetic_clip(seed=1, size=(84, 56))], [answer, answer])
    with torch.no_grad():
        out = model(**b)
    assert out.logits.shape == (*b["input_ids"].shape, 152064)
    assert torch.isfinite(out.loss) and 8 < float(out.loss) < 16  # about log(152064) = 11.9 at random init


def test_pipeline_is_the_real_qwen_one(tok, tmp_path):
    """Normaliser, pre-tokenizer and decoder equal those of the real Qwen2.5-VL tokenizer as loaded."""
    from transformers import AutoTokenizer

    if not (QWEN_DIR / "tokenizer.json").is_file():
        pytest.skip(f"real Qwen2.5-VL tokenizer not found in {QWEN_DIR} (../shared/data is CI-only)")
    real = json.loads(AutoTokenizer.from_pretrained(str(QWEN_DIR)).backend_tokenizer.to_str())
    tk.save_tokenizer(tmp_path)
    for t in (tok, AutoTokenizer.from_pretrained(str(tmp_path))):
        ours = json.loads(t.backend_tokenizer.to_str())
        for part in ("normalizer", "pre_tokenizer", "decoder"):
            assert ours[part] == real[part], part
