"""The tiny preset's vision-tower pre-training (vqalib.model.pretrain) and the "tiny-pretrained" preset."""

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
