"""The tiny tokenizer the project builds itself (no download): Qwen2-style byte-level BPE.

It mirrors what matters of the Qwen2.5 tokenizer, at a few hundred tokens:

* the same normaliser (NFC), pre-tokenizer (the Qwen2 split regex, then byte-level) and
  decoder, so every digit is its own token (``"3.5"`` -> ``3``, ``.``, ``5``) and a score string
  tokenises the same wherever it stands;
* a BPE vocabulary trained offline on the project's own text (instruction, dimension names,
  level strings and keywords, tag texts, rationale templates), so prompts stay short;
* the Qwen special tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``,
  ``<|vision_start|>``, ``<|vision_end|>``, ``<|video_pad|>``, ...), appended after the BPE
  vocabulary as in Qwen, and the Qwen-style chat template;
* saved as a ``Qwen2Tokenizer`` folder that ``AutoTokenizer``/``AutoProcessor`` load.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from vqalib.schema import levels, prompts

#: Qwen2's pre-tokenizer split regex (transformers ``tokenization_qwen2.PRETOKENIZE_REGEX``).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: The Qwen2.5-VL special tokens, in Qwen's order (ids follow the BPE vocabulary).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

#: Qwen2.5-VL's chat template (system default, image/video placeholders, generation prompt).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def training_corpus() -> list[str]:
    """The project's own text the BPE merges are learned from (deterministic)."""
    texts = [prompts.INSTRUCTION, prompts.SYSTEM_PROMPT, "system", "user", "assistant"]
    texts += list(levels.DIMENSIONS) + list(levels.DIMENSION_KEYS) + list(levels.LEVEL_STRINGS)
    texts += list(levels.KEYWORDS.values()) + list(levels.TAG_TEXT.values())
    texts += list(prompts.DIMENSION_DEFINITIONS.values())
    for key in levels.DIMENSION_KEYS:
        for s in levels.LEVELS:
            tags = levels.TAGS[key][: 1 + int(s) % 2] if s < 5 else ()
            texts.append(prompts.template_rationale(key, float(s), tags))
            texts.append(prompts.score_line(key, float(s)))
    texts.append(prompts.rationale_prompt("clarity_quality", 2.5, ["blur", "noise"]))
    return texts


def _set_qwen_pipeline(tok: Tokenizer) -> None:
    """Normaliser, pre-tokenizer and decoder as Qwen2.5's (what ``Qwen2Tokenizer`` itself sets up)."""
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()


def build_tokenizer_object(vocab_size: int = 768) -> Tokenizer:
    """Train the byte-level BPE (``vocab_size`` includes the 256 byte symbols, not the specials)."""
    tok = Tokenizer(BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                        fuse_unk=False, byte_fallback=False))
    _set_qwen_pipeline(tok)
    trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return tok


def build_tokenizer(vocab_size: int = 768):
    """A ``Qwen2Tokenizer`` (transformers) with the trained vocabulary, specials and chat template."""
    import json

    from transformers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    model = json.loads(build_tokenizer_object(vocab_size).to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    for t in SPECIAL_TOKENS:  # reserve the ids right after the BPE vocabulary, as in Qwen
        vocab[t] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>", "<|endoftext|>")],
                         model_max_length=32768, errors="replace")
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS], special_tokens=True)
    tok.chat_template = CHAT_TEMPLATE
    for t in SPECIAL_TOKENS:
        if tok.convert_tokens_to_ids(t) != vocab[t]:
            raise RuntimeError(f"special token {t} got id {tok.convert_tokens_to_ids(t)}, expected {vocab[t]}")
    return tok


def save_tokenizer(path: str | Path, vocab_size: int = 768):
    """Build and save the tokenizer folder; returns the tokenizer."""
    tok = build_tokenizer(vocab_size)
    tok.save_pretrained(str(path))
    return tok
