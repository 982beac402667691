"""The tiny preset's vision-tower pre-training (``vqalib.model.pretrain``): pretext clips rendered in
worker processes and from several threads at once, a run of 2 steps on 8 clips, and the
"tiny-pretrained" preset built once into the cache. The pretext targets themselves are unit tests
(``tests/unit/test_pretrain.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vqalib.model import loading as models, pretrain
from vqalib.model import tiny as tiny_preset
from vqalib.data import synth

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


def test_render_pretext_is_seeded_and_continuous():
    a, ya = pretrain.render_pretext(3, seed=11)
    b, yb = pretrain.render_pretext(3, seed=11)
    c, _ = pretrain.render_pretext(3, seed=12)
    assert a.shape == (3, synth.N_FRAMES, synth.SIZE_PX, synth.SIZE_PX, 3) and a.dtype == np.uint8
    assert ya.shape == (3, len(pretrain.PRETEXT_TARGETS))
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert not np.array_equal(a, c)
    two, y2 = pretrain.render_pretext(3, seed=11, workers=2)  # worker processes: the same clips
    assert np.array_equal(a, two) and np.array_equal(ya, y2)
    # settings are drawn continuously, not on the rating grid: speeds off the grid's multiples of pan_px_per_level
    _, y = pretrain.render_pretext(6, seed=5)
    speeds = y[:, 0] / synth.SynthConfig().pan_px_per_level
    assert np.any(np.abs(speeds - np.round(speeds * 2) / 2) > 1e-3)


def test_render_pretext_from_several_threads_at_once():
    """Concurrent calls (threads, e.g. a notebook kernel's background job) each fill their own array:
    with one module-level output array, a second call redirected the first call's clips into its own
    array and the first call's end cleared it under the second."""
    from concurrent.futures import ThreadPoolExecutor

    seeds = (21, 22, 23)
    alone = {s: pretrain.render_pretext(4, seed=s, workers=1) for s in seeds}
    with ThreadPoolExecutor(len(seeds)) as ex:
        together = dict(zip(seeds, ex.map(lambda s: pretrain.render_pretext(4, seed=s, workers=1), seeds)))
    for s in seeds:
        assert np.array_equal(alone[s][0], together[s][0]) and np.array_equal(alone[s][1], together[s][1])
    assert not pretrain._OUTPUTS  # nothing left registered
