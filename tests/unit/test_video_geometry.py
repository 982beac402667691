"""Video geometry and time on clips as phones and websites deliver them (issue 8, section 1).

Every clip is generated here with PyAV (>= 18: ``VideoStream.set_display_rotation`` writes the
display matrix as the container's coded side data, as a phone does; no ffmpeg binary needed):
display rotation 90/180/270 and mirroring, non-square sample aspect ratio, variable frame rate,
B-frames, webm/VP9 (1 ms timestamps), odd sizes, very short and one-frame clips. Each frame shows a
white block at the stored top-left corner and its own index as 6 binary blocks, so a test can check
both *which* frame came back and *how it is oriented*, against an expectation built independently
of ``vqalib.video.frames`` (np.rot90 / flips as a player turns the picture, PIL for the SAR stretch).

Checked for both backends: the same frames (within the codec tolerance of tests/integration/test_video.py),
the displayed size, the frames a player shows, the right source frames and pts timestamps.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vqalib.video.frames import (
    SampledVideo,
    SamplingConfig,
    VideoDecodeError,
    decord_available,
    frame_indices,
    preflight,
    probe,
    sample_video,
    select_frames,
    temporal_positions_distinct,
)

av = pytest.importorskip("av")
needs_display_matrix_writer = pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
    reason="this PyAV cannot write a display matrix (VideoStream.set_display_rotation needs av >= 18)")
BACKENDS = ["pyav", "decord"] if decord_available() else ["pyav"]
FULL = dict(fps=2.0, min_frames=4, max_frames=64, max_pixels=None)  # no resize: compare pixels


def pattern(i: int, h: int, w: int) -> np.ndarray:
    """Frame ``i`` as stored: white block top-left (orientation), index ``i`` as 6 green bit blocks."""
    img = np.full((h, w, 3), 40, np.uint8)
    img[: h // 2, : w // 4] = 255
    bw = w // 8
    for b in range(6):
        if (i >> b) & 1:
            img[-h // 4:, b * bw:(b + 1) * bw, 1] = 255
    return img


def write_clip(path: Path, *, n: int = 20, w: int = 128, h: int = 96, fps: int = 10, pts: list[int] | None = None,
               time_base: Fraction | None = None, codec: str = "libx264", pix_fmt: str = "yuv420p",
               rotation: int | None = None, hflip: bool = False, vflip: bool = False, sar: Fraction | None = None,
               options: dict | None = None) -> Path:
    """Encode ``pattern(0..n-1)`` with PyAV; ``pts`` in ``time_base`` units gives a variable frame rate.

    VP9 is encoded in a fresh interpreter: once decord is imported, its bundled FFmpeg 4 exports an
    old libvpx whose symbols PyAV's encoder then binds to ("Failed to initialize encoder: ABI version
    mismatch"). Decoding is not affected (FFmpeg's own vp9 decoder)."""
    if codec == "libvpx-vp9" and "decord" in sys.modules and not os.environ.get("VQALIB_TEST_CHILD"):
        kw = dict(n=n, w=w, h=h, fps=fps, codec=codec, pix_fmt=pix_fmt, rotation=rotation, hflip=hflip, vflip=vflip)
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"from test_video_geometry import write_clip; write_clip({str(path)!r}, **{kw!r})")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=300, capture_output=True,
                       env={**os.environ, "VQALIB_TEST_CHILD": "1"})  # the child imports av before decord
        return Path(path)
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=fps, options=options or {})
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    if time_base is not None:
        s.codec_context.time_base = time_base
    if sar is not None:
        s.codec_context.sample_aspect_ratio = sar
    if rotation is not None or hflip or vflip:
        s.set_display_rotation(rotation or 0, hflip=hflip, vflip=vflip)
    stamps = pts if pts is not None else list(range(n))
    for i, p in enumerate(stamps):
        f = av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")
        f.pts = p
        if time_base is not None:
            f.time_base = time_base
        for pk in s.encode(f):
            c.mux(pk)
    for pk in s.encode():
        c.mux(pk)
    c.close()
    return path


def as_displayed(img: np.ndarray, rotation: int, hflip: bool, vflip: bool, sar: Fraction | None) -> np.ndarray:
    """What a player shows for a stored frame: SAR stretch, then ``rotation`` degrees counter-clockwise
    (np.rot90 turns counter-clockwise), then the mirror (PyAV: "hflip / vflip mirror after it")."""
    if sar is not None and sar != 1:
        from PIL import Image

        h, w = img.shape[:2]
        img = np.asarray(Image.fromarray(img).resize((int(round(w * sar)), h), Image.BICUBIC))
    img = np.rot90(img, k=(rotation // 90) % 4)
    if hflip:
        img = img[:, ::-1]
    if vflip:
        img = img[::-1]
    return img


# name -> (writer kwargs, expected displayed (width, height), expected rotation, mirrored)
GEOMETRY = {
    "plain": (dict(), (128, 96), 0, False),
    "rot90": (dict(rotation=90), (96, 128), 90, False),
    "rot180": (dict(rotation=180), (128, 96), 180, False),
    "rot270": (dict(rotation=270), (96, 128), 270, False),
    "hflip": (dict(hflip=True), (128, 96), 180, True),  # ffprobe reads a mirror as rotation -180
    "vflip": (dict(vflip=True), (128, 96), 0, True),
    "rot90_hflip": (dict(rotation=90, hflip=True), (96, 128), 90, True),
    "sar2": (dict(sar=Fraction(2, 1)), (256, 96), 0, False),
    "sar3_4_rot90": (dict(sar=Fraction(3, 4), rotation=90), (96, 96), 90, False),
    "odd127x95_vp9": (dict(w=127, h=95, codec="libvpx-vp9"), (127, 95), 0, False),
    "odd127x95_h264_444": (dict(w=127, h=95, pix_fmt="yuv444p"), (127, 95), 0, False),
    "odd127x95_mpeg4_rot270": (dict(w=127, h=95, codec="mpeg4", rotation=270), (95, 127), 270, False),
}


def _suffix(kw: dict) -> str:
    return ".webm" if kw.get("codec") == "libvpx-vp9" else ".mp4"


def _check_frames(v: SampledVideo, expected_idx, kw: dict, rotation: int, hflip: bool, vflip: bool):
    h, w = kw.get("h", 96), kw.get("w", 128)
    for frame, i in zip(v.frames, expected_idx):
        want = as_displayed(pattern(int(i), h, w), rotation, hflip, vflip, kw.get("sar"))
        assert frame.shape == want.shape
        err = np.abs(frame.astype(np.int16) - want.astype(np.int16)).mean()
        assert err < 12, f"frame {i}: mean |diff| {err:.1f} to what a player shows"


def _backends_agree(a: SampledVideo, b: SampledVideo, odd: bool = False) -> None:
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.frames.shape == b.frames.shape
    diff = np.abs(a.frames.astype(np.int16) - b.frames.astype(np.int16))
    if odd:  # decord's older swscale upsamples odd-size 4:2:0 chroma differently at colour edges
        assert diff.mean() <= 1.0, (diff.mean(), diff.max())  # both also match the player's picture (_check_frames)
    else:
        assert diff.mean() <= 0.5 and np.percentile(diff, 99.9) <= 2, (diff.mean(), diff.max())


@needs_display_matrix_writer
@pytest.mark.parametrize("name", list(GEOMETRY))
def test_frames_as_a_player_shows_them(tmp_path, name):
    kw, (dw, dh), rotation, mirrored = GEOMETRY[name]
    if kw.get("codec", "libx264") not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {kw['codec']} encoder")
    clip = write_clip(tmp_path / f"{name}{_suffix(kw)}", **kw)
    runs = {b: sample_video(clip, SamplingConfig(**FULL, backend=b)) for b in BACKENDS}
    for v in runs.values():
        assert (v.width, v.height) == (dw, dh)  # displayed size, not the stored 128x96
        assert (v.coded_width, v.coded_height) == (kw.get("w", 128), kw.get("h", 96))
        assert (v.rotation, v.mirrored) == (rotation, mirrored)
        assert v.frames.shape[1:3] == (dh, dw)
        np.testing.assert_array_equal(v.indices, frame_indices(20, 10.0, SamplingConfig(**FULL)))  # CFR rule
        np.testing.assert_allclose(v.timestamps, v.indices / 10.0, atol=1e-3)  # 1 ms: webm's tick
        _check_frames(v, v.indices, kw, kw.get("rotation", 0) or 0, kw.get("hflip", False), kw.get("vflip", False))
        if rotation or mirrored or kw.get("sar"):
            assert any("display matrix" in n or "sample aspect ratio" in n for n in v.notes), v.notes
    odd = (kw.get("w", 128) % 2 or kw.get("h", 96) % 2) and kw.get("pix_fmt", "yuv420p") == "yuv420p"
    if len(runs) == 2:
        _backends_agree(runs["decord"], runs["pyav"], odd=bool(odd))
    auto = sample_video(clip, SamplingConfig(**FULL))
    if odd:  # auto = PyAV's pixels whether decord is installed or not
        assert auto.backend == "pyav" and any("odd size" in n for n in auto.notes)
        np.testing.assert_array_equal(auto.frames, runs["pyav"].frames)


@needs_display_matrix_writer
def test_preflight_records_rotation_and_displayed_size(tmp_path):
    rot = write_clip(tmp_path / "phone.mp4", rotation=90)
    sar = write_clip(tmp_path / "anamorphic.mp4", sar=Fraction(2, 1))
    df = preflight([rot, sar], SamplingConfig(backend="pyav"))
    assert df["ok"].tolist() == [True, True]
    assert df[["width", "height", "rotation", "coded_width", "coded_height"]].values.tolist() == [
        [96, 128, 90, 128, 96], [256, 96, 0, 128, 96]]
    assert df["sample_aspect_ratio"].tolist() == [1.0, 2.0]
    assert "rotated 90 degrees" in df.loc[0, "notes"] and "sample aspect ratio 2:1" in df.loc[1, "notes"]
    info = probe(rot)
    assert (info.width, info.height, info.rotation) == (96, 128, 90)


def test_rotation_not_a_multiple_of_90_is_refused(tmp_path):
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("needs av >= 18 to write the display matrix")
    clip = write_clip(tmp_path / "tilted.mp4", rotation=45)
    with pytest.raises(VideoDecodeError, match=r"tilted\.mp4: display matrix rotates by -?45\.0 degrees.*re-encode"):
        sample_video(clip)


# ----------------------------------------------------------------- time: VFR, B-frames, webm


def _vfr_clip(tmp_path, **kw):
    """The issue's phone clip: 1 s at 30 fps, then 2 s at 5 fps (pts in 1/30 s)."""
    pts = list(range(30)) + [30 + 6 * k for k in range(10)]
    return write_clip(tmp_path / "vfr.mp4", pts=pts, time_base=Fraction(1, 30), fps=30, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_frame_rate_is_sampled_evenly_in_presentation_time(tmp_path, backend):
    clip = _vfr_clip(tmp_path)
    info = probe(clip)
    assert info.variable_frame_rate and info.n_frames == 40
    assert info.duration == pytest.approx(3.0)  # 1 s + 10 frames x 0.2 s
    v = sample_video(clip, SamplingConfig(**FULL, backend=backend))
    # 6 frames at 2 fps; bin centres 0.25, 0.75, ..., 2.75 s; the frame on screen at each:
    np.testing.assert_array_equal(v.indices, [7, 22, 31, 33, 36, 38])
    np.testing.assert_allclose(v.timestamps, [7 / 30, 22 / 30, 1.2, 1.6, 2.2, 2.6], atol=1e-6)
    _check_frames(v, v.indices, {}, 0, False, False)
    assert v.variable_frame_rate and any("variable frame rate" in n for n in v.notes)
    # second_per_grid_ts the processor derives = mean time between temporal patches
    from transformers.video_utils import VideoMetadata

    sampled_fps = VideoMetadata(**v.metadata()).sampled_fps
    assert 2 / sampled_fps == pytest.approx(2 * 3.0 / 6)
    assert v.effective_fps == pytest.approx(2.0)


def test_variable_frame_rate_both_backends_agree(tmp_path):
    if len(BACKENDS) < 2:
        pytest.skip("decord is not installed")
    clip = _vfr_clip(tmp_path)
    _backends_agree(*(sample_video(clip, SamplingConfig(**FULL, backend=b)) for b in BACKENDS))


def test_a_frame_held_longer_than_a_bin_is_repeated_and_noted(tmp_path):
    pts = list(range(10)) + [40]  # 10 frames at 10 fps; frame 9 stays on screen 0.9 -> 4.0 s (pts in 1/10 s)
    clip = write_clip(tmp_path / "held.mp4", pts=pts, time_base=Fraction(1, 10), fps=10)
    v = sample_video(clip, SamplingConfig(**FULL, backend="pyav"))
    assert v.n_source_frames == 11 and v.duration == pytest.approx(4.1, abs=0.11)
    assert v.indices.tolist() == [2, 7, 9, 9, 9, 9, 9, 9]  # 8 bins of 0.51 s; the held frame, as a player shows it
    assert any("repeated" in n for n in v.notes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_b_frames_give_the_right_frames(tmp_path, backend):
    clip = write_clip(tmp_path / "bframes.mp4", n=40, fps=20, options={"bf": "3", "g": "12"})
    with av.open(str(clip)) as c:
        order = [pk.pts for pk in c.demux(video=0) if pk.pts is not None]
    assert order != sorted(order), "the clip should hold B-frames (decode order != presentation order)"
    v = sample_video(clip, SamplingConfig(**FULL, backend=backend))
    np.testing.assert_array_equal(v.indices, frame_indices(40, 20.0, SamplingConfig(**FULL)))
    np.testing.assert_allclose(v.timestamps, v.indices / 20.0, atol=1e-9)
    _check_frames(v, v.indices, {}, 0, False, False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_webm_vp9_with_millisecond_timestamps_is_constant_rate(tmp_path, backend):
    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no libvpx-vp9 encoder")
    clip = write_clip(tmp_path / "clip.webm", n=90, fps=30, codec="libvpx-vp9")
    info = probe(clip)
    steps = set(np.diff(info.pts).tolist())
    assert steps == {33, 34}  # webm stores ms: 30 fps is jittered by the rounding, not variable
    assert not info.variable_frame_rate and info.fps == pytest.approx(30.0)
    v = sample_video(clip, SamplingConfig(**FULL, backend=backend))
    np.testing.assert_array_equal(v.indices, frame_indices(90, 30.0, SamplingConfig(**FULL)))
    np.testing.assert_allclose(v.timestamps, v.indices / 30.0, atol=1e-3)
    _check_frames(v, v.indices, {}, 0, False, False)


# ----------------------------------------------------------------- very short and one-frame clips


def _temporal_positions(v: SampledVideo) -> list[int]:
    """Temporal M-RoPE positions of the clip's patches, by transformers' own code (Qwen2.5-VL)."""
    import torch
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel
    from transformers.video_utils import VideoMetadata

    spg = torch.tensor([2 / VideoMetadata(**v.metadata()).sampled_fps])[0]  # float32, as build_batch sends it
    grid = torch.tensor([-(-len(v.indices) // 2), 2, 2])
    pos = Qwen2_5_VLModel.get_vision_position_ids(None, 0, grid, 1, 1, time_interval=2 * spg)  # tokens_per_second=2
    return sorted(set(pos[0].tolist()))


def test_short_clip_keeps_temporal_positions_distinct(tmp_path):
    clip = write_clip(tmp_path / "short.mp4", n=10, fps=30)  # 0.33 s
    v = sample_video(clip, SamplingConfig(backend="pyav", max_pixels=None))
    assert len(v.indices) == 2 and any("short clip" in n for n in v.notes)
    assert len(_temporal_positions(v)) == -(-len(v.indices) // 2)
    # the old rule (min_frames=4 regardless): 4 frames at 12 fps, both patches at position 0
    old = sample_video(clip, SamplingConfig(backend="pyav", max_pixels=None, tokens_per_second=None))
    assert len(old.indices) == 4 and _temporal_positions(old) == [0]


@pytest.mark.parametrize("n_frames,fps", [(30, 30), (27, 30), (20, 30), (45, 30), (24, 25), (60, 24), (31, 30)])
def test_rule_matches_the_model_for_clips_around_one_second(n_frames, fps):
    cfg = SamplingConfig(fps=2.0, min_frames=4, max_frames=32)
    from vqalib.video.frames import num_sampled_frames

    n = num_sampled_frames(n_frames, float(fps), cfg)
    idx = frame_indices(n_frames, float(fps), cfg)
    v = SampledVideo(frames=np.zeros((n, 28, 28, 3), np.uint8), indices=idx, timestamps=idx / fps,
                     source_fps=float(fps), width=28, height=28, n_source_frames=n_frames, backend="test", path="x")
    assert len(_temporal_positions(v)) == -(-n // 2)  # every temporal patch at its own position
    assert temporal_positions_distinct(n, n_frames, float(fps), 2.0)
    uncapped = num_sampled_frames(n_frames, float(fps), SamplingConfig(fps=2.0, min_frames=4, max_frames=32,
                                                                     tokens_per_second=None))
    if n < uncapped:  # lowered by the rule: the count is the largest that keeps positions distinct
        assert not temporal_positions_distinct(n + 2, n_frames, float(fps), 2.0)
    assert n == (2 if (n_frames, fps) in {(27, 30), (20, 30), (24, 25)} else uncapped)


def test_one_frame_clip_error_names_the_setting_and_the_setting_works(tmp_path):
    clip = write_clip(tmp_path / "still.mp4", n=1)
    with pytest.raises(VideoDecodeError, match=r"still\.mp4: video has 1 frame.*SamplingConfig\(min_frames=1, frame_multiple=1\)"):
        sample_video(clip)
    v = sample_video(clip, SamplingConfig(min_frames=1, frame_multiple=1, max_pixels=None, backend="pyav"))
    assert v.indices.tolist() == [0] and v.frames.shape == (1, 96, 128, 3)
    from transformers import Qwen2VLVideoProcessor

    out = Qwen2VLVideoProcessor(size={"shortest_edge": 28 * 28, "longest_edge": 128 * 96})(
        videos=[v.frames], video_metadata=[v.metadata()], do_sample_frames=False, return_tensors="pt")
    assert out["video_grid_thw"][0, 0].item() == 1  # padded to one temporal patch by the processor


def test_three_frame_clip_error_names_min_frames(tmp_path):
    clip = write_clip(tmp_path / "three.mp4", n=3)
    with pytest.raises(VideoDecodeError, match=r"three\.mp4: video has 3 frames.*SamplingConfig\(min_frames=2\)"):
        sample_video(clip)


# ----------------------------------------------------------------- the real clips


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"
CLIPS = sorted(SHARED.glob("*/*.mp4")) if SHARED.is_dir() else []


@pytest.mark.skipif(not CLIPS, reason=f"real clips not found in {SHARED} (../shared/data is absent)")
@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.name)
def test_real_clips_constant_rate_indices_unchanged(clip):
    info = probe(clip)
    with av.open(str(clip)) as c:
        header_fps = float(c.streams.video[0].average_rate)
    assert not info.variable_frame_rate and info.fps == header_fps and info.rotation == 0
    cfg = SamplingConfig(fps=2.0, max_frames=32, max_pixels=None, backend="pyav")
    v = sample_video(clip, cfg)
    np.testing.assert_array_equal(v.indices, frame_indices(info.n_frames, header_fps, cfg))  # the rule before
    # the presentation-time path (used for VFR clips) picks the very same frames on a constant-rate clip
    forced = select_frames(dataclasses.replace(info, variable_frame_rate=True), cfg)
    np.testing.assert_array_equal(forced[0], v.indices)
    np.testing.assert_allclose(v.timestamps, v.indices / header_fps, atol=1e-9)
    sar = info.sample_aspect_ratio
    assert (v.width, v.height) == (round(info.coded_width * sar), info.coded_height)
    assert v.frames.shape[1:3] == (v.height, v.width)
    if clip.name.startswith("carphone"):  # QCIF 176x144 stored with SAR 128:117: shown 193x144
        assert (sar, v.width) == (Fraction(128, 117), 193) and any("128:117" in n for n in v.notes)


def test_constant_rate_selection_is_the_index_rule_for_any_length_and_time_base():
    """Pure check over many clip lengths/rates: exact pts grids (forced through the presentation-time
    path) and millisecond-rounded grids (webm) both give ``floor((i + 0.5) * N / n)``."""
    from vqalib.video.frames import VideoInfo, _regular_grid

    cfg = SamplingConfig(fps=2.0, min_frames=4, max_frames=32)
    checked = 0
    for fps, tb, step in [(25.0, Fraction(1, 12800), 512), (30000 / 1001, Fraction(1, 30000), 1001),
                          (29.97, Fraction(1, 11988), 400), (30.0, Fraction(1, 15360), 512), (8.0, Fraction(1, 8), 1)]:
        for n_frames in range(4, 400, 7):
            pts = [k * step for k in range(n_frames)]
            info = VideoInfo("x.mp4", n_frames, fps, 64, 64, "h264", pts, [0], time_base=tb,
                             end_pts=n_frames * step, variable_frame_rate=True)
            np.testing.assert_array_equal(select_frames(info, cfg)[0], frame_indices(n_frames, fps, cfg))
            ms = [round(k * 1000 / fps) for k in range(n_frames)]  # webm: 1 ms ticks
            assert _regular_grid(ms, Fraction(1, 1000))
            checked += 1
    assert checked == 5 * len(range(4, 400, 7))
    # a dropped frame (one pts jumps by a whole frame) is not rounding: the clip is variable-rate
    assert not _regular_grid([0, 1, 2, 4, 5, 6, 7], Fraction(1, 30))
