"""The setup steps of ``train_aso`` (``vqalib.train.aso_trainer``) on their own, without training: the refusal
of rationales that give the score away, and the pi_ref cache that is reused only under its own key."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vqalib.schema.levels import DIMENSION_KEYS
from vqalib.train.aso_trainer import load_pi_ref, refuse_revealing_rationales
from vqalib.train.collator import ClipExample


def _clip(vid: str, rationale: str) -> ClipExample:
    return ClipExample(vid, Path(f"/clips/{vid}.mp4"), {k: 3.0 for k in DIMENSION_KEYS}, {k: rationale for k in DIMENSION_KEYS})


def test_rationales_that_name_the_score_are_refused_at_the_score_target():
    examples = [_clip("a", "The footage is sharp and steady."), _clip("b", "The clarity is Abysmal.")]
    with pytest.raises(ValueError, match=r"rationale='full': 1 of 2 teacher-forced rationales name the score \(e.g. clip 'b'"):
        refuse_revealing_rationales(SimpleNamespace(rationale="full", target_position="score"), examples)
    refuse_revealing_rationales(SimpleNamespace(rationale="full", target_position="keyword"), examples)  # pi* at the keyword
    refuse_revealing_rationales(SimpleNamespace(rationale="scrubbed", target_position="score"), examples)


def test_a_cached_pi_ref_is_used_only_under_its_key(tmp_path):
    path = tmp_path / "pi_ref.pt"
    assert load_pi_ref(path, "k1") is None  # no cache yet
    pi, out = {"a": torch.zeros(5, 9)}, {"a": torch.ones(5)}
    torch.save({"key": "k1", "pi_ref": pi, "outside": out, "health": {}}, path)
    got_pi, got_out = load_pi_ref(path, "k1")
    assert torch.equal(got_pi["a"], pi["a"]) and torch.equal(got_out["a"], out["a"])
    assert load_pi_ref(path, "k2") is None  # another config or SFT checkpoint: computed again
    torch.save({"key": "k1", "pi_ref": pi}, path)  # written before the off-level mass was kept
    assert load_pi_ref(path, "k1")[1] is None
