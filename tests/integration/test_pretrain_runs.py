"""The tiny preset's vision-tower pre-training run (``vqalib.model.pretrain``, 2 steps on 8 clips) and
the "tiny-pretrained" preset built once into the cache. The pretext targets themselves are unit
tests (``tests/unit/test_pretrain.py``)."""

from __future__ import annotations

import json

import pytest
import torch

from vqalib.model import loading as models, pretrain
from vqalib.model import tiny as tiny_preset

SMALL = pretrain.PretrainConfig(n_clips=8, steps=2, batch_size=4, n_eval=8)


def test_pretrain_changes_only_the_vision_tower(tmp_path):
    base = tiny_preset.build_tiny()
    record = pretrain.pretrain_vision(base, tmp_path / "pt", SMALL)
    assert set(record["heldout_r2"]) == set(pretrain.PRETEXT_TARGETS)
    assert record["config"]["steps"] == 2 and record["version"] == pretrain.PRETRAIN_VERSION
    assert json.loads((tmp_path / "pt" / "vqalib_pretrain.json").read_text()) == record
    before, _ = models.load_model_and_processor(str(base))
    after, processor = models.load_model_and_processor(str(tmp_path / "pt"))
    a, b = dict(before.named_parameters()), dict(after.named_parameters())
    assert a.keys() == b.keys()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(".visual." in k or k.startswith("model.visual") for k in changed)
    assert any("patch_embed" in k for k in changed)
    assert processor.tokenizer.get_vocab() == models.load_model_and_processor(str(base))[1].tokenizer.get_vocab()


def test_ensure_pretrained_tiny_builds_once_and_resolves(tmp_path, monkeypatch):
    monkeypatch.setenv("VQALIB_CACHE", str(tmp_path))
    first = pretrain.ensure_pretrained_tiny(SMALL, progress=False)
    assert (first / ".complete").is_file() and first.name.startswith(tiny_preset.TINY_PRETRAINED + "-")
    monkeypatch.setattr(pretrain, "pretrain_vision", lambda *a, **k: pytest.fail("rebuilt a cached preset"))
    assert pretrain.ensure_pretrained_tiny(SMALL, progress=False) == first
    other = pretrain.PretrainConfig(n_clips=8, steps=3, batch_size=4, n_eval=8)
    assert pretrain._key(other, tiny_preset.build_tiny()) != pretrain._key(SMALL, tiny_preset.build_tiny())
    monkeypatch.setattr(pretrain, "ensure_pretrained_tiny", lambda *a, **k: first)
    assert models.resolve_model_path("tiny-pretrained") == str(first)
    assert tiny_preset.is_tiny_preset("tiny-pretrained") and tiny_preset.is_tiny_preset("tiny")
    assert not tiny_preset.is_tiny_preset(str(first))
