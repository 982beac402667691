"""Sample dataset generator: reproducible, valid, clip format, and degradations monotone in the level."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from vqalib.schema import levels as L
from vqalib.data import synth as S
from vqalib.data.dataset import aggregate, load_dataset, probe_video

TINY = S.SynthConfig(n_clips={"smoke": 6, "default": 6, "large": 6}, n_pilot_clips={"smoke": 3, "default": 3, "large": 3})


def _digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "generation_time.txt"}


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = S.ensure_sample_dataset("smoke", seed=3, root=tmp_path / "a", config=TINY, progress=False)
    b = S.ensure_sample_dataset("smoke", seed=3, root=tmp_path / "b", config=TINY, progress=False)
    c = S.ensure_sample_dataset("smoke", seed=4, root=tmp_path / "c", config=TINY, progress=False)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert da["ratings.jsonl"] != dc["ratings.jsonl"] and da["clips/syn00000.mp4"] != dc["clips/syn00000.mp4"]
    assert len([k for k in da if k.startswith("clips/")]) == 6


@pytest.mark.parametrize("value, n, want", [("", 10, 1), ("", 500, None), ("3", 10, 3), ("0", 10, ValueError),
                                            ("two", 10, ValueError)])
def test_generation_workers(monkeypatch, value, n, want):
    monkeypatch.setenv("VQALIB_GEN_WORKERS", value)
    if want is ValueError:
        with pytest.raises(ValueError, match="VQALIB_GEN_WORKERS"):
            S.generation_workers(n)
        return
    got = S.generation_workers(n)
    assert got == want if want is not None else 1 <= got <= 8


def test_cache_is_reused_and_keyed_by_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("VQALIB_CACHE", str(tmp_path))
    p1 = S.ensure_sample_dataset("smoke", config=TINY, progress=False)
    assert p1.parent == tmp_path / "sample-smoke-seed0"
    stamp = (p1 / "ratings.jsonl").stat().st_mtime_ns
    assert S.ensure_sample_dataset("smoke", config=TINY, progress=False) == p1
    assert (p1 / "ratings.jsonl").stat().st_mtime_ns == stamp  # not regenerated
    other = S.SynthConfig(**{**TINY.__dict__, "blur_sigma": 3.0})
    p2 = S.ensure_sample_dataset("smoke", config=other, progress=False)
    assert p2 != p1 and p2.parent == p1.parent
    info = json.loads((p2 / "dataset.json").read_text())
    assert info["config"]["blur_sigma"] == 3.0 and info["settings_hash"] == p2.name
    with pytest.raises(ValueError, match="unknown sample size 'huge'"):
        S.ensure_sample_dataset("huge")


def test_generated_dataset_passes_strict_validation_and_has_the_schema(tmp_path):
    root = S.ensure_sample_dataset("smoke", seed=1, root=tmp_path / "d", config=TINY, progress=False)
    ds = load_dataset(root)  # strict: raises on any problem
    assert len(ds.videos) == 6 and set(ds.videos.split) <= {"train", "test"}
    per = ds.ratings.groupby(["video_id", "phase", "dimension"]).rater.nunique()
    assert per.min() >= 3 and per.max() <= 4
    assert set(ds.ratings.phase) == {"pilot", "final"}
    assert ds.ratings[ds.ratings.phase == "pilot"].video_id.nunique() == 3
    assert len(ds.rationales) == 6 * 5
    raters = [json.loads(t) for t in (root / "raters.jsonl").read_text().splitlines()]
    assert len(raters) == TINY.n_raters and all(r["noise_sd_pilot"] > r["noise_sd_final"] for r in raters)


def test_clip_format_h264_112px_8fps_32_frames(tmp_path):
    root = S.ensure_sample_dataset("smoke", seed=2, root=tmp_path / "e", config=TINY, progress=False)
    import av

    path = root / "clips" / "syn00000.mp4"
    meta = probe_video(path)
    assert (meta["width"], meta["height"], meta["fps"]) == (112, 112, 8.0)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == 32


def test_latent_levels_cover_the_grid_uniformly_with_mild_correlation():
    lv = S.sample_latent_levels(4000, 0.2, np.random.default_rng(0))
    assert set(np.unique(lv)) == set(L.LEVELS)
    share = np.array([(lv == v).mean() for v in L.LEVELS])
    assert share.min() > 0.08 and share.max() < 0.145  # uniform is 0.111
    corr = np.corrcoef(lv.T)[np.triu_indices(5, 1)]
    assert 0.05 < corr.mean() < 0.35


# ---- degradations are monotone in the level (measured on rendered frames sampled at 2 fps) ----

def _render(dim: str, level: float, seed: int = 0, photo: str = "astronaut", types: list[str] | None = None,
            amplitude: float = 3.0) -> np.ndarray:
    lv = {k: 5.0 for k in L.DIMENSION_KEYS}
    lv["motion_amplitude"] = amplitude
    lv[dim] = level
    plan = S.plan_clip(lv, S.SynthConfig(), np.random.default_rng(seed))
    if types is not None:
        plan["applied"][dim] = types if level < 5.0 else []
    frames = S.render_clip(photo, plan, S.SynthConfig(), np.random.default_rng(seed))
    return frames[::4].astype(float) / 255  # 2 fps


def _grad_energy(f):
    g = f.mean(-1)
    return float(np.mean(np.abs(np.diff(g, axis=1))) + np.mean(np.abs(np.diff(g, axis=2))))


@pytest.mark.parametrize("levels", [(1.0, 2.0, 3.0, 4.0, 5.0)])
def test_clarity_detail_and_contrast_rise_with_level(levels):
    detail = [_grad_energy(_render("clarity_quality", v, types=["blur"])) for v in levels]
    contrast = [float(_render("clarity_quality", v, types=["blur"]).std()) for v in levels]
    assert np.all(np.diff(detail) > 0), detail
    assert np.all(np.diff(contrast) > 0), contrast


@pytest.mark.parametrize("photo", ["astronaut", "coins", "chelsea"])
def test_low_resolution_never_adds_detail(photo):
    """A low-resolution clip has no more fine detail (high-frequency energy: the mean squared Laplacian)
    than a blur-only one at the same level. Version 8's nearest-neighbour mosaic had 4-90x more, from
    its block edges, so a model read those clips as sharp."""
    def hf(f):
        g = f.mean(-1)
        lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
        return float(np.mean(lap ** 2))

    for v in (1.0, 2.0, 3.0, 4.0):
        blur = hf(_render("clarity_quality", v, photo=photo, types=["blur"]))
        low = hf(_render("clarity_quality", v, photo=photo, types=["blur", "low_resolution"]))
        assert low <= blur, (photo, v, low, blur)


def _pip_picture(level: float) -> np.ndarray:
    """The picture area of a screen-in-screen clip (content level 1.0) at clarity ``level``."""
    lv = {k: 5.0 for k in L.DIMENSION_KEYS} | {"motion_amplitude": 1.0, "content_quality": 1.0,
                                                 "clarity_quality": level}
    plan = S.plan_clip(lv, S.SynthConfig(), np.random.default_rng(0))
    plan["applied"]["content_quality"] = ["screen_in_screen"]
    plan["applied"]["clarity_quality"] = ["blur"] if level < 5.0 else []
    f = S.render_clip("astronaut", plan, S.SynthConfig(), np.random.default_rng(0))[::4].astype(float) / 255
    inner = int(round(S.SIZE_PX * (1 - S.SynthConfig().pip_shrink)))
    o = (S.SIZE_PX - inner) // 2
    return f[:, o + 4:o + inner - 4, o + 4:o + inner - 4]


def test_screen_in_screen_keeps_the_clips_blur():
    """A clip filmed off a monitor loses as much detail to blur as a full-frame clip: the shrink comes
    before the clarity degradations (version 8 shrank the blurred picture, dividing its blur by ~2)."""
    def loss(energy):  # share of detail lost between clarity 5.0 and 1.0
        return 1 - energy(1.0) / energy(5.0)
    full = loss(lambda v: _grad_energy(_render("clarity_quality", v, types=["blur"], amplitude=1.0)))
    pip = loss(lambda v: _grad_energy(_pip_picture(v)))
    assert pip >= 0.9 * full, (pip, full)


def test_motion_amplitude_frame_difference_rises_with_level():
    diffs = [float(np.abs(np.diff(_render("motion_amplitude", v, amplitude=v), axis=0)).mean())
             for v in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert diffs[0] < 1e-3 and np.all(np.diff(diffs) > 0), diffs


def test_flicker_brightness_oscillation_rises_with_level():
    def osc(v):
        f = _render("motion_quality", v, types=["flicker"], amplitude=1.0)  # static camera: only flicker moves
        return float(np.std(f.mean(axis=(1, 2, 3))))
    vals = [osc(v) for v in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert vals[-1] < 1e-3 and np.all(np.diff(vals) < 0), vals


def test_stutter_holds_frames_without_freezing_2fps_pairs():
    lv = {k: 5.0 for k in L.DIMENSION_KEYS} | {"motion_amplitude": 4.0, "motion_quality": 1.0}
    plan = S.plan_clip(lv, S.SynthConfig(), np.random.default_rng(0))
    plan["applied"]["motion_quality"] = ["stutter"]
    f = S.render_clip("astronaut", plan, S.SynthConfig(), np.random.default_rng(0)).astype(float) / 255
    held = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3)) < 1e-3
    assert held.sum() == 24  # 8 fps: hold of 4 frames at severity 1 -> 3 of every 4 frames repeat
    # version 7: at 2 fps no sampled frame repeats the previous one (v6's hold of 8 froze whole pairs,
    # hiding the camera speed); a hold of 4 (or 2) even falls exactly between the 2-fps frames
    two = f[2::4]
    d = np.abs(np.diff(two, axis=0)).mean(axis=(1, 2, 3))
    assert (d > 1e-3).all()
    assert [1 + round(S.severity(v) * 3) for v in (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)] == [4, 4, 3, 3, 3, 2, 2, 1]
    assert not (np.abs(np.diff(_render("motion_quality", 5.0, amplitude=4.0), axis=0)).mean(axis=(1, 2, 3)) < 1e-3).any()


def test_black_borders_grow_as_content_level_falls():
    black = [float((_render("content_quality", v, types=["black_borders"]).max(-1) < 0.02).mean())
             for v in (1.0, 3.0, 5.0)]
    assert black[0] > black[1] > black[2]


def test_exposure_and_colour_cast_move_away_from_the_clean_frame():
    clean = _render("aesthetic_quality", 5.0)
    err = [float(np.abs(_render("aesthetic_quality", v, types=["abnormal_colour"]) - clean).mean())
           for v in (1.0, 3.0, 4.5)]
    assert err[0] > err[1] > err[2] > 0.005


def test_raters_track_the_latent_level():
    lat = [{"video_id": f"v{i}", "levels": {k: float(lv) for k in L.DIMENSION_KEYS},
            "applied": {k: [] for k in L.DIMENSION_KEYS}} for i, lv in enumerate(np.tile(L.LEVELS, 20))]
    rows, raters = S.simulate_ratings(lat, set(range(len(lat))), S.SynthConfig(), np.random.default_rng(0))
    import pandas as pd

    r = pd.DataFrame(rows)
    lab = aggregate(r).merge(pd.DataFrame({"video_id": [x["video_id"] for x in lat],
                                           "latent": [x["levels"]["clarity_quality"] for x in lat]}))
    lab = lab[lab.dimension == "clarity_quality"]
    assert np.corrcoef(lab.score, lab.latent)[0, 1] > 0.9
    err = {ph: float(np.abs(r[r.phase == ph].merge(lab[["video_id", "latent"]]).eval("score - latent")).mean())
           for ph in ("pilot", "final")}
    assert err["pilot"] > err["final"]


def test_rationale_names_dimension_keyword_and_tags():
    text = S.rationale_text("clarity_quality", 2.0, ["blur", "low_resolution"])
    assert "Clarity Quality" in text and "poor" in text and "blur" in text and "low resolution" in text
    assert "perfect" in S.rationale_text("content_quality", 5.0, []).lower()
    assert "moves fast" in S.rationale_text("motion_amplitude", 5.0, ["large_motion"])


def test_concurrent_callers_generate_once(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("VQALIB_CACHE", str(tmp_path))
    calls = []
    real = S.generate_dataset

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(S, "generate_dataset", counting)
    cfg = S.SynthConfig(n_clips={"smoke": 2, "default": 2, "large": 2}, n_pilot_clips={"smoke": 1, "default": 1, "large": 1})
    with ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: S.ensure_sample_dataset("smoke", config=cfg, progress=False), range(3)))
    assert len(set(paths)) == 1 and len(calls) == 1
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".tmp-")]


def test_dataset_root_is_data_dir_or_the_sample_dataset(tmp_path):
    from vqalib.core.runs import project_root
    from vqalib.data.synth import dataset_root, ensure_sample_dataset

    assert dataset_root("", "smoke", 0) == ensure_sample_dataset("smoke", seed=0)
    assert dataset_root(str(tmp_path)) == tmp_path
    assert dataset_root("data/mine") == project_root() / "data" / "mine"  # relative: from the project root
