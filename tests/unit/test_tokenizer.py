"""The project's own tiny tokenizer: Qwen-style digits, specials, chat template, saved folder."""

from __future__ import annotations

import pytest

from vqalib.schema import levels, prompts
from vqalib.model import tokenizer as tk


@pytest.fixture(scope="module")
def tok():
    return tk.build_tokenizer()


def test_every_digit_is_its_own_token(tok):
    for s in levels.LEVEL_STRINGS:
        assert tok.tokenize(s) == [s[0], ".", s[2]], s
    assert tok.tokenize("12345") == list("12345")
    assert tok.tokenize("Clarity Quality: 3.5\n")[-4:] == ["3", ".", "5", "Ċ"]


def test_special_tokens_are_single_ids_after_the_bpe_vocab(tok):
    ids = [tok.convert_tokens_to_ids(t) for t in tk.SPECIAL_TOKENS]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "specials follow the BPE vocabulary in Qwen's order"
    assert ids[-1] == len(tok) - 1
    for t, i in zip(tk.SPECIAL_TOKENS, ids):
        assert tok.encode(f"a{t}b", add_special_tokens=False)[1] == i, t
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_vocabulary_is_small_and_compresses_the_prompt(tok):
    assert 300 <= len(tok) <= 1100
    n = len(tok.encode(prompts.INSTRUCTION))
    assert n < len(prompts.INSTRUCTION) / 3, f"instruction takes {n} tokens: BPE merges were not learned"


@pytest.mark.parametrize("text", [prompts.INSTRUCTION, "héllo wörld 12.5 — ✓", "Motion Quality: 3.5\n\nx"])
def test_decode_inverts_encode(tok, text):
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_saved_folder_loads_as_qwen2_tokenizer_with_chat_template(tmp_path):
    from transformers import AutoTokenizer

    built = tk.save_tokenizer(tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    text = "Aesthetic Quality: 4.5<|im_end|>"
    assert loaded.encode(text) == built.encode(text)
    chat = loaded.apply_chat_template(prompts.build_messages("Rate it."), tokenize=False, add_generation_prompt=True)
    assert chat == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|video_pad|><|vision_end|>Rate it.<|im_end|>\n<|im_start|>assistant\n")
