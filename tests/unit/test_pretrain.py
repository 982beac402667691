"""The pretext targets of the tiny preset's vision-tower pre-training (vqalib.model.pretrain), its config
checks and the tiny preset's cache key. Rendering in worker processes and the runs:
``tests/integration/test_pretrain_runs.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vqalib.model import pretrain
from vqalib.model import tiny as tiny_preset
from vqalib.data import synth


def _plan(levels: dict[str, float], seed: int = 3):
    cfg = synth.SynthConfig()
    return synth.plan_clip(dict(levels), cfg, np.random.default_rng(seed)), cfg


def test_pretext_targets_read_the_plan():
    lv = {"motion_quality": 1.0, "motion_amplitude": 5.0, "aesthetic_quality": 3.0, "content_quality": 5.0,
          "clarity_quality": 2.0}
    plan, cfg = _plan(lv)
    t = dict(zip(pretrain.PRETEXT_TARGETS, pretrain.pretext_targets(plan, cfg)))
    assert t["camera_speed_px"] == pytest.approx(4 * cfg.pan_px_per_level)  # level 5.0: (5 - 1) px per level
    assert t["blur_sigma"] == pytest.approx(cfg.blur_sigma * 0.75)  # severity of level 2.0 is 3/4
    assert t["haze"] == pytest.approx(cfg.haze * 0.75)
    assert t["flicker_amp"] == pytest.approx(cfg.flicker_amp)  # severity 1, flicker always with a defect
    assert t["overlay"] == 0.0  # content 5.0: no overlay
    ap = plan["applied"]
    assert (t["shake_px"] > 0) == ("camera_shake" in ap["motion_quality"])
    assert (t["stutter"] > 0) == ("stutter" in ap["motion_quality"])
    if "exposure_error" in ap["aesthetic_quality"]:
        assert t["exposure"] == pytest.approx(0.5 if plan["params"]["exposure_dir"] == "over" else -0.5)
    else:
        assert t["exposure"] == 0.0


def test_static_clean_clip_has_zero_targets():
    plan, cfg = _plan({"motion_quality": 5.0, "motion_amplitude": 1.0, "aesthetic_quality": 5.0,
                       "content_quality": 5.0, "clarity_quality": 5.0})
    assert np.all(pretrain.pretext_targets(plan, cfg) == 0)


@pytest.mark.parametrize("field,value", [("steps", 0), ("n_clips", 1.5), ("batch_size", True), ("lr", 0.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        pretrain.PretrainConfig(**{field: value})


def test_tiny_preset_key_survives_a_build(tmp_path, monkeypatch):
    # building a config once rewrote the shared defaults in place (rope_scaling gained a rope_type), so a
    # second build_tiny() in the same process got a new cache key, a second folder, and tiny-pretrained was
    # built again on top of it
    monkeypatch.setenv("VQALIB_CACHE", str(tmp_path))
    before = json.dumps(tiny_preset.TINY_TEXT_DEFAULTS, sort_keys=True)
    assert tiny_preset.build_tiny() == tiny_preset.build_tiny()
    assert json.dumps(tiny_preset.TINY_TEXT_DEFAULTS, sort_keys=True) == before
    assert len(list((tmp_path / "models").glob("tiny-*"))) == 1
