"""Training configs and answer texts: every shipped YAML loads, overrides are typed, the short
rationale never gives the score away, and a missing rationale is an error, not a silent default."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqalib.levels import DIMENSION_KEYS, KEYWORDS
from vqalib.train.collator import ClipExample, answer_text, short_rationale
from vqalib.train.common import ASOConfig, GRPOConfig, SFTConfig, load_config, parse_overrides

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "env" / "train_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    stage = path.stem.split("_")[0]
    cfg = load_config(stage, path)
    assert isinstance(cfg, {"sft": SFTConfig, "grpo": GRPOConfig, "aso": ASOConfig}[stage])
    if "7b" in path.stem:  # paper values
        assert cfg.bf16 and cfg.device == "cuda"
        assert cfg.batch_size * cfg.grad_accum * (8 if cfg.finetune == "full" else 1) == 32
        if stage == "sft" and cfg.finetune == "full":
            assert cfg.lr == 1e-6 and cfg.weight_decay == 0.01 and cfg.lr_scheduler == "cosine" and cfg.num_epochs == 1
        if stage == "aso":
            assert cfg.lr == 5e-6 and cfg.lam == 1.0 and cfg.beta == 1.0
        if stage == "grpo":
            assert cfg.num_generations == 8 and cfg.kl_coef == 0.1


def test_overrides_are_typed_and_checked():
    cfg = load_config("aso", None, ["lam=0.5", "on_policy=yes", "max_steps=7"])
    assert cfg.lam == 0.5 and cfg.on_policy is True and cfg.max_steps == 7
    with pytest.raises(ValueError, match="max_steps.*not a valid int"):
        load_config("sft", None, ["max_steps=1.5"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides(["lr"])
    with pytest.raises(ValueError, match="finetune='half'"):
        load_config("sft", None, ["finetune=half"])


def _example(rationales=None):
    scores = {k: 1.0 + i for i, k in enumerate(DIMENSION_KEYS)}
    tags = {"clarity_quality": ["blur"], "motion_amplitude": ["large_motion"], "motion_quality": ["flicker"]}
    return ClipExample("v1", Path("v1.mp4"), scores, rationales or {}, tags)


def test_short_rationale_names_defects_but_no_score():
    text = short_rationale(_example().tags)
    assert text == "Seen: brightness flicker, blur."  # amplitude tags (an amount, not a defect) left out
    assert not any(ch.isdigit() for ch in text)
    assert not any(kw.lower() in text.lower() for kw in KEYWORDS.values())
    assert short_rationale({}) == "Seen: no defects."


def test_answer_text_modes():
    ex = _example()
    assert answer_text(ex, "none").startswith("Motion Quality: 1.0")
    assert answer_text(ex, "short").startswith("Seen: brightness flicker, blur.\n\nMotion Quality: 1.0")
    with pytest.raises(ValueError, match="no rationales but rationale='full'"):
        answer_text(ex, "full")
    full = _example({k: f"Reason {i}." for i, k in enumerate(DIMENSION_KEYS)})
    assert answer_text(full, "full").startswith("Reason 0.\nReason 1.")
