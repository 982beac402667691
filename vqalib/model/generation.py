"""Every ``generate`` call's settings, built here and nowhere else.

A checkpoint carries a ``generation_config.json`` (Qwen2.5-VL-7B-Instruct's sets
``repetition_penalty: 1.05``, ``do_sample: true``, ``temperature: 1e-6``) and every fine-tuned
checkpoint inherits it. In transformers 5.x ``model.generate`` fills **every field a call leaves
``None``** from the model's ``generation_config`` (``GenerationMixin._prepare_generation_config``:
``generation_config.update(**self.generation_config.to_dict(), defaults_only=True)``), then from the
library's global defaults (``top_k=50``, ...); a ``GenerationConfig`` passed to ``generate`` merges the
same way. Several fields can only be switched off by ``None`` (``min_p``, ``top_h``,
``bad_words_ids``, ``sequence_bias``, ``forced_eos_token_id``, ...), so no set of explicit values can
keep a checkpoint's choice out. Unnoticed, greedy answers were penalised for digits already written
(46.5 % of the parsed scores of a tiny SFT checkpoint changed under the 7B file's penalty) and GRPO's
rollouts were not samples of the policy its loss assumes. A field left unset falls back to the
global default (``top_k=50``), so the complete config below sets ``top_k=0`` (off) itself.

So :func:`generate` builds a complete :class:`transformers.GenerationConfig` from
:class:`GenerationSettings` (the run's config) and makes it the model's default for the duration of
the one call: what ``generate`` merges in is then this same object, and every value comes from the
run's settings or, for the fields these settings leave ``None`` (all of them switched off),
transformers' global defaults. Nothing comes from the checkpoint. The settings are recorded with
:func:`describe` in the training manifests (GRPO rollouts, ASO on-policy), in prediction manifests
and in the score store's manifest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from vqalib.model.family import STOP_TOKENS as _FAMILY_STOP_TOKENS
from vqalib.model.family import VISION_AND_GROUNDING_TOKENS, ModelFamily, family_of

#: Tokens every family never generates: vision placeholders and markers (a sampled ``<|video_pad|>`` would make
#: the next forward count more video placeholders than video features), grounding markers. Kept for old
#: imports; a call suppresses its family's list (:func:`suppressed_tokens`: these plus the think tags of
#: Qwen3-VL and Qwen3.5, :attr:`vqalib.model.family.ModelFamily.suppressed_tokens`).
SUPPRESSED_TOKENS: tuple[str, ...] = VISION_AND_GROUNDING_TOKENS
#: Tokens that end an answer: the chat turn end, then the document end (Qwen's ``eos_token_id`` pair).
STOP_TOKENS: tuple[str, ...] = _FAMILY_STOP_TOKENS


@dataclass(frozen=True)
class GenerationSettings:
    """The complete sampling parameters of one kind of ``generate`` call (nothing is inherited).

    ``do_sample=False`` is greedy decoding (the sampling fields are then unused and recorded as
    given). ``top_k=0`` and ``min_p=0`` switch those filters off; ``top_p=1`` keeps the whole
    vocabulary. ``repetition_penalty=1``, ``no_repeat_ngram_size=0``, ``length_penalty=1`` and
    ``num_beams=1`` are the unpenalised single-sequence values: a penalty would make greedy answers
    depend on the digits already written and GRPO's rollouts samples of another policy than
    ``pi_theta`` (tempered by ``temperature``), which its loss assumes. ``max_new_tokens``: tokens
    generated at most per answer. Invalid values raise a ValueError naming the field.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    num_beams: int = 1
    max_new_tokens: int = 96

    def __post_init__(self) -> None:
        checks = (("temperature", self.temperature > 0 and math.isfinite(self.temperature), "> 0"),
                  ("top_p", 0 < self.top_p <= 1, "in (0, 1] (1 = off)"),
                  ("top_k", isinstance(self.top_k, int) and self.top_k >= 0, "an int >= 0 (0 = off)"),
                  ("min_p", 0 <= self.min_p < 1, "in [0, 1) (0 = off)"),
                  ("repetition_penalty", self.repetition_penalty > 0, "> 0 (1 = off)"),
                  ("no_repeat_ngram_size", isinstance(self.no_repeat_ngram_size, int) and self.no_repeat_ngram_size >= 0,
                   "an int >= 0 (0 = off)"),
                  ("num_beams", isinstance(self.num_beams, int) and self.num_beams >= 1, "an int >= 1"),
                  ("max_new_tokens", isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1, "an int >= 1"))
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"generation setting {name}={getattr(self, name)!r}; must be {rule}")

    @classmethod
    def greedy(cls, max_new_tokens: int) -> "GenerationSettings":
        """Greedy decoding, unpenalised: what prediction, scoring and the held-out curve use."""
        return cls(do_sample=False, max_new_tokens=int(max_new_tokens))

    @classmethod
    def sampling(cls, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 min_p: float = 0.0) -> "GenerationSettings":
        """Ancestral sampling from ``pi_theta`` at ``temperature`` (filters off by default): rollouts."""
        return cls(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=int(top_k),
                   min_p=float(min_p), max_new_tokens=int(max_new_tokens))

    @classmethod
    def from_config(cls, cfg: Any) -> "GenerationSettings":
        """The rollout settings of a training config (GRPO; ASO with ``on_policy``): ``temperature``,
        ``top_p``, ``top_k``, ``min_p`` and ``max_new_tokens`` where the config has them (else off)."""
        return cls.sampling(cfg.max_new_tokens, getattr(cfg, "temperature", 1.0), getattr(cfg, "top_p", 1.0),
                            getattr(cfg, "top_k", 0), getattr(cfg, "min_p", 0.0))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _tokenizer(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def model_family(processor: Any, model: Any | None = None) -> ModelFamily | None:
    """The family of ``model`` (else of ``processor``): :func:`vqalib.model.family.family_of`; ``None`` when
    neither tells it (a bare tokenizer without a model, e.g. in a unit test), and then only the tokens every
    family shares are suppressed and no think block is dropped."""
    for obj in (model, processor):
        if obj is None:
            continue
        try:
            return family_of(obj)
        except (TypeError, ValueError):
            continue
    return None


def suppressed_tokens(processor: Any, model: Any | None = None) -> tuple[str, ...]:
    """The token strings generation never samples for this model: its family's
    :attr:`~vqalib.model.family.ModelFamily.suppressed_tokens` (vision and grounding markers, plus
    ``<think>`` / ``</think>`` for Qwen3-VL and Qwen3.5), else :data:`SUPPRESSED_TOKENS`."""
    fam = model_family(processor, model)
    return fam.suppressed_tokens if fam is not None else SUPPRESSED_TOKENS


def suppressed_token_ids(processor: Any, model: Any | None = None) -> list[int]:
    """Ids of :func:`suppressed_tokens` in the tokenizer's vocabulary (absent ones skipped), plus the vision
    token ids the model's config names (``video_token_id``, ``image_token_id``, ``vision_start/end_token_id``)."""
    vocab = _tokenizer(processor).get_vocab()
    ids = {int(vocab[t]) for t in suppressed_tokens(processor, model) if t in vocab}
    cfg = getattr(model, "config", None)
    for name in ("video_token_id", "image_token_id", "vision_start_token_id", "vision_end_token_id"):
        v = getattr(cfg, name, None) if cfg is not None else None
        if isinstance(v, int):
            ids.add(v)
    return sorted(ids)


def answer_texts(processor: Any, texts: Sequence[str], model: Any | None = None) -> list[str]:
    """Generated answers as the parser must read them: each through its family's
    :meth:`~vqalib.model.family.ModelFamily.answer_text` (a leading ``<think>...</think>`` block dropped;
    unchanged for Qwen2.5-VL or an unknown family)."""
    fam = model_family(processor, model)
    return [fam.answer_text(t) if fam is not None else t for t in texts]


def decode_answers(processor: Any, ids: torch.Tensor, model: Any | None = None) -> list[str]:
    """Generated ids ``[B, n]`` -> answer texts: decoded with special tokens dropped (``<|im_end|>``,
    padding; the think tags are not special tokens and stay), then :func:`answer_texts`. Every decode of a
    generated answer that reaches the parser (prediction, ``score``, GRPO and on-policy ASO rollouts) goes
    through here, so a think block never reaches the parser."""
    texts = _tokenizer(processor).batch_decode(ids, skip_special_tokens=True)
    return answer_texts(processor, texts, model)


def stop_token_ids(processor: Any) -> list[int]:
    """Ids that end an answer: :data:`STOP_TOKENS` present in the vocabulary, then the tokenizer's
    ``eos_token_id`` if it is another one. Raises ValueError when there is none."""
    tok = _tokenizer(processor)
    vocab = tok.get_vocab()
    ids = [int(vocab[t]) for t in STOP_TOKENS if t in vocab]
    if tok.eos_token_id is not None and int(tok.eos_token_id) not in ids:
        ids.append(int(tok.eos_token_id))
    if not ids:
        raise ValueError(f"tokenizer {type(tok).__name__} has none of {STOP_TOKENS} and no eos_token; generation "
                         "would never stop; use a chat tokenizer with an end-of-turn token")
    return ids


def pad_token_id(processor: Any) -> int:
    """The tokenizer's pad id, else the first stop id."""
    pad = _tokenizer(processor).pad_token_id
    return int(pad) if pad is not None else stop_token_ids(processor)[0]


def generation_config(settings: GenerationSettings, processor: Any, model: Any | None = None):
    """A complete :class:`transformers.GenerationConfig` for ``settings``: every field that changes
    which tokens are produced is set explicitly (sampling filters, penalties, beams, lengths,
    suppressed and stop tokens, pad id, cache, outputs); the filters that transformers switches off
    only with ``None`` stay ``None``. Pass it through :func:`generate`, which keeps the checkpoint's
    ``generation_config`` out of the merge."""
    from transformers import GenerationConfig

    s = settings
    # greedy: the sampling fields at transformers' neutral values (unused; avoids "flag ignored" warnings)
    sample = dict(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p or None) if s.do_sample \
        else dict(temperature=1.0, top_p=1.0, top_k=50, min_p=None)
    return GenerationConfig(
        do_sample=s.do_sample, num_beams=s.num_beams, num_return_sequences=1, **sample,
        typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, top_h=None,
        repetition_penalty=s.repetition_penalty, encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=s.no_repeat_ngram_size, encoder_no_repeat_ngram_size=0,
        length_penalty=s.length_penalty, early_stopping=False,
        max_new_tokens=s.max_new_tokens, min_length=0,
        bad_words_ids=None, sequence_bias=None, forced_bos_token_id=None, forced_eos_token_id=None,
        exponential_decay_length_penalty=None, begin_suppress_tokens=None, guidance_scale=None,
        renormalize_logits=False, remove_invalid_values=False,
        suppress_tokens=suppressed_token_ids(processor, model),
        eos_token_id=stop_token_ids(processor), pad_token_id=pad_token_id(processor),
        bos_token_id=_tokenizer(processor).bos_token_id,
        use_cache=True, output_scores=False, output_logits=False, return_dict_in_generate=False,
    )


@contextlib.contextmanager
def checkpoint_defaults_replaced(model: torch.nn.Module, config) -> Iterator[None]:
    """Within the block, every module of ``model`` that holds a ``generation_config`` (the
    transformers model, also under a peft wrapper) holds ``config`` instead; restored afterwards,
    also on errors. ``generate`` merges a passed config with the model's one field by field (module
    docstring); with both the same object, nothing of the checkpoint's file is merged in."""
    owners = [m for m in model.modules() if vars(m).get("generation_config") is not None]
    saved = [m.generation_config for m in owners]
    try:
        for m in owners:
            m.generation_config = config
        yield
    finally:
        for m, old in zip(owners, saved):
            m.generation_config = old


def generate(model: torch.nn.Module, processor: Any, inputs: dict[str, torch.Tensor],
             settings: GenerationSettings) -> torch.Tensor:
    """``model.generate(**inputs)`` with exactly ``settings`` (see the module docstring).

    ``inputs``: a prompt-only batch (left padded; video inputs, ``mm_token_type_ids``). Returns
    the new token ids ``[B, n]`` (``n <= max_new_tokens``; rows that stopped early are padded with
    :func:`pad_token_id`). No gradient is kept.
    """
    config = generation_config(settings, processor, model)
    with torch.no_grad(), checkpoint_defaults_replaced(model, config):
        out = model.generate(**inputs, generation_config=config)
    return out[:, inputs["input_ids"].shape[1]:]


def describe(settings: GenerationSettings, processor: Any | None = None, model: Any | None = None) -> dict[str, Any]:
    """The record of a run's generation for manifests: the settings, the suppressed tokens (the family's,
    given a processor or model; then also ``model_family``) and stop tokens, and (given ``model``) the
    checkpoint's own ``generation_config`` entries that were *not* used."""
    fam = model_family(processor, model)
    out: dict[str, Any] = {**settings.to_dict(),
                           "suppressed_tokens": list(fam.suppressed_tokens if fam is not None else SUPPRESSED_TOKENS),
                           "stop_tokens": list(STOP_TOKENS)}
    if fam is not None:
        out["model_family"] = fam.name
    if processor is not None:
        out.update(suppress_token_ids=suppressed_token_ids(processor, model), eos_token_id=stop_token_ids(processor),
                   pad_token_id=pad_token_id(processor))
    gc = getattr(model, "generation_config", None) if model is not None else None
    if gc is not None:
        out["checkpoint_generation_config_ignored"] = {k: v for k, v in gc.to_diff_dict().items()
                                                       if k != "transformers_version"}
    return out
