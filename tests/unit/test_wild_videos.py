"""Videos and folders as they come from the wild (issue 21, "Videos and folders").

Every clip is generated here with PyAV (no ffmpeg binary needed): MPEG transport streams with
B-frames (broadcast/HLS ``.ts``, camcorder ``.mts``/``.m2ts``), MPEG-PS ``.mpg``, animated GIF, Ogg
``.ogv``, FLV; folders with files PyAV decodes, a file without an extension and a broken symlink;
ids from names that repeat or are symlinks; a ratings CSV over rotated, anamorphic and
variable-frame-rate clips; HDR (PQ / HLG) clips; and the memory one clip costs while it is sampled.
Each frame shows its index as 8 binary blocks, so a test checks *which* frame came back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vqalib.video import frames as V
from vqalib.video.frames import SamplingConfig, VideoDecodeError, decord_available, frame_indices, preflight, probe, sample_video

av = pytest.importorskip("av")

FULL = dict(fps=2.0, min_frames=4, max_frames=64, max_pixels=None)  # no resize: read the index blocks
W, H = 128, 96


def indexed(i: int, h: int = H, w: int = W) -> np.ndarray:
    """Frame ``i``: grey, index ``i`` (0-255) as 8 green blocks along the bottom."""
    img = np.full((h, w, 3), 40, np.uint8)
    bw = w // 8
    for b in range(8):
        if (i >> b) & 1:
            img[-h // 4:, b * bw:(b + 1) * bw, 1] = 255
    return img


def index_of(frame: np.ndarray) -> int:
    """The index :func:`indexed` wrote into a decoded frame (any size)."""
    h, w = frame.shape[:2]
    bw = w / 8
    return sum(1 << b for b in range(8) if frame[h - h // 8, int((b + 0.5) * bw), 1] > 128)


def write_indexed(path: Path, n: int, fps: int = 25, codec: str = "libx264", pix_fmt: str = "yuv420p",
                  options: dict | None = None, color_trc: int | None = None, color_primaries: int | None = None,
                  w: int = W, h: int = H) -> Path:
    """Encode ``indexed(0..n-1)`` with PyAV into the container the suffix names. libvpx encoders run in
    a fresh interpreter (decord's bundled FFmpeg breaks them once imported; see test_video_geometry)."""
    if codec.startswith("libvpx") and "decord" in sys.modules and not os.environ.get("VQALIB_TEST_CHILD"):
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from test_wild_videos import "
                f"write_indexed; write_indexed({str(path)!r}, {n}, {fps}, {codec!r}, {pix_fmt!r}, {options!r})")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=300, capture_output=True,
                       env={**os.environ, "VQALIB_TEST_CHILD": "1"})
        return path
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps, options=options or {})
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if color_trc is not None:
            s.codec_context.color_trc = color_trc
        if color_primaries is not None:
            s.codec_context.color_primaries = color_primaries
            s.codec_context.colorspace = 9  # BT.2020 non-constant luminance
        for i in range(n):
            f = av.VideoFrame.from_ndarray(indexed(i, h, w), format="rgb24")
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def decoded_indices(v) -> list[int]:
    return [index_of(f) for f in v.frames]


# ----------------------------------------------------------------- MPEG-TS / PS with B-frames

# name -> (frames at 25 fps, GOP): 1.6 s single GOP (HLS segment), 5 s camcorder, 3.2 s with short GOPs
TRANSPORT = {"broadcast.ts": (40, 250), "camcorder.mts": (125, 25), "hls.m2ts": (80, 12)}


@pytest.mark.parametrize("name", list(TRANSPORT))
@pytest.mark.parametrize("backend", ["pyav", "auto"])
def test_transport_streams_with_b_frames_give_the_right_frames(tmp_path, name, backend):
    n, gop = TRANSPORT[name]
    clip = write_indexed(tmp_path / name, n, options={"bf": "3", "g": str(gop)})
    with av.open(str(clip)) as c:
        order = [pk.pts for pk in c.demux(video=0) if pk.pts is not None]
    assert order != sorted(order), "the clip should hold B-frames"
    v = sample_video(clip, SamplingConfig(**FULL, backend=backend))
    want = frame_indices(n, 25.0, SamplingConfig(**FULL))
    np.testing.assert_array_equal(v.indices, want)
    assert decoded_indices(v) == want.tolist()
    assert v.backend == "pyav"
    info = probe(clip)
    assert info.container_format == "mpegts" and not info.seek_reliable
    assert info.n_frames == n and info.fps == pytest.approx(25.0) and info.duration == pytest.approx(n / 25)


def test_mpeg_program_stream_with_b_frames(tmp_path):
    clip = write_indexed(tmp_path / "dvd.mpg", 60, codec="mpeg2video", options={"bf": "2", "g": "12"})
    for backend in ("pyav", "auto"):
        v = sample_video(clip, SamplingConfig(**FULL, backend=backend))
        assert decoded_indices(v) == v.indices.tolist() == frame_indices(60, 25.0, SamplingConfig(**FULL)).tolist()
    assert probe(clip).container_format == "mpeg"


@pytest.mark.skipif(not decord_available(), reason="decord is not installed")
def test_decord_refuses_containers_without_a_frame_index(tmp_path):
    """decord 0.6 returns other frames than asked on a .ts with several GOPs (and fails on a single
    GOP): asked for explicitly it refuses, naming the file and the fix; ``auto`` takes PyAV and says so."""
    clip = write_indexed(tmp_path / "hls.ts", 48, options={"bf": "3", "g": "12"})
    with pytest.raises(VideoDecodeError, match=r"hls\.ts: decord cannot decode this mpegts file.*backend='pyav'"):
        sample_video(clip, SamplingConfig(**FULL, backend="decord"))
    v = sample_video(clip, SamplingConfig(**FULL, backend="auto"))
    assert v.backend == "pyav" and any("no frame index" in n for n in v.notes)


# name -> writer kwargs: the other containers a folder of downloads holds
OTHER = {"anim.gif": dict(codec="gif", pix_fmt="rgb8", fps=10), "movie.ogv": dict(codec="libvpx", fps=10),
         "old.flv": dict(codec="flv", fps=10), "office.wmv": dict(codec="wmv2", fps=10)}


@pytest.mark.parametrize("name", list(OTHER))
def test_gif_ogv_flv_wmv_give_the_right_frames(tmp_path, name):
    clip = write_indexed(tmp_path / name, 30, **OTHER[name])
    v = sample_video(clip, SamplingConfig(**FULL))
    assert v.n_source_frames == 30 and v.source_fps == pytest.approx(10.0)
    assert decoded_indices(v) == v.indices.tolist() == frame_indices(30, 10.0, SamplingConfig(**FULL)).tolist()


# ----------------------------------------------------------------- folders

def _wild_folder(root: Path) -> Path:
    """The issue's folder: clip.mp4, an animated gif, an ogv, an mts, a file without extension, a broken link."""
    root.mkdir()
    write_indexed(root / "clip.mp4", 20, fps=10)
    write_indexed(root / "anim.gif", 20, codec="gif", pix_fmt="rgb8", fps=10)
    write_indexed(root / "movie.ogv", 20, codec="libvpx", fps=10)
    write_indexed(root / "cam.mts", 50, options={"bf": "3"})
    (root / "noext").write_bytes((root / "clip.mp4").read_bytes())
    os.symlink("deleted.mp4", root / "gone.mp4")
    return root


def test_folder_lists_every_decodable_video_and_says_what_it_skipped(tmp_path):
    from vqalib.inference.sources import list_videos, skipped_summary

    folder = _wild_folder(tmp_path / "wild")
    with pytest.warns(UserWarning, match=r"2 file\(s\) skipped"):
        df = list_videos(folder)
    assert df["video_id"].tolist() == ["anim", "cam", "clip", "movie"]
    skipped = dict(df.attrs["skipped"])
    assert set(skipped) == {str(folder / "gone.mp4"), str(folder / "noext")}
    assert "broken symlink" in skipped[str(folder / "gone.mp4")] and "deleted.mp4" in skipped[str(folder / "gone.mp4")]
    assert "no file extension" in skipped[str(folder / "noext")]
    assert "SKIPPED" in skipped_summary(df)
    for p in df["path"]:  # every listed file decodes, with the right frames
        v = sample_video(p, SamplingConfig(**FULL))
        assert decoded_indices(v) == v.indices.tolist(), p


def _bad_model_args(tmp_path) -> list[str]:
    return ["-o", str(tmp_path / "scores.csv"), "--model", str(tmp_path / "no_such_model"), "--no-progress"]


def test_score_cli_prints_the_skipped_files_before_the_model_loads(tmp_path, capsys):
    from vqalib.cli import main

    folder = _wild_folder(tmp_path / "wild")
    rc = main(["score", str(folder), *_bad_model_args(tmp_path)])
    err = capsys.readouterr().err
    assert "2 file(s) skipped" in err and f"SKIPPED {folder / 'noext'}" in err and "broken symlink" in err
    assert err.index("SKIPPED") < err.index("no_such_model")  # said before the model is looked for
    assert rc == 2


# ----------------------------------------------------------------- ids

def test_same_stem_different_extensions_get_unique_ids(tmp_path):
    from vqalib.inference.sources import list_videos

    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("x.mkv", "x.mp4", "y.mp4"):
        write_indexed(folder / name, 8, fps=10)
    df = list_videos(folder)
    assert df["video_id"].tolist() == ["x.mkv", "x.mp4", "y"]


def test_symlinks_keep_the_names_the_user_gave(tmp_path):
    from vqalib.inference.sources import list_videos

    src = tmp_path / "src"
    src.mkdir()
    write_indexed(src / "take1.mp4", 8, fps=10)
    write_indexed(src / "take2.mp4", 8, fps=10)
    # a link beside its target, in a subfolder under the target's name
    folder = tmp_path / "v"
    (folder / "sub").mkdir(parents=True)
    write_indexed(folder / "clip.mp4", 8, fps=10)
    os.symlink("../clip.mp4", folder / "sub" / "clip.mp4")
    df = list_videos(folder)
    assert df["video_id"].tolist() == ["clip", "sub/clip"]
    assert df["path"].tolist() == [str(folder / "clip.mp4"), str(folder / "sub" / "clip.mp4")]  # not resolved
    # links named alike pointing to differently named files: ids from the links, not take1/take2
    folder2 = tmp_path / "v2"
    for d, t in (("a", "take1"), ("b", "take2")):
        (folder2 / d).mkdir(parents=True)
        os.symlink(src / f"{t}.mp4", folder2 / d / "clip.mp4")
    assert list_videos(folder2)["video_id"].tolist() == ["a/clip", "b/clip"]


def test_colliding_ids_are_refused_before_the_model_loads(tmp_path, capsys):
    from vqalib.cli import main

    write_indexed(tmp_path / "a.mp4", 8, fps=10)
    write_indexed(tmp_path / "b.mp4", 8, fps=10)
    lst = tmp_path / "list.csv"
    lst.write_text("path,video_id\na.mp4,same\nb.mp4,same\n")
    rc = main(["score", str(lst), *_bad_model_args(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "video_id 'same' is used twice; give unique ids" in err and "no_such_model" not in err
    # a folder with x.mkv and x.mp4 is not refused: the error is the model's, the ids were fine
    folder = tmp_path / "v"
    folder.mkdir()
    write_indexed(folder / "x.mkv", 8, fps=10)
    write_indexed(folder / "x.mp4", 8, fps=10)
    main(["score", str(folder), *_bad_model_args(tmp_path)])
    assert "unique ids" not in capsys.readouterr().err


# ----------------------------------------------------------------- dataset metadata: one probe

def test_ratings_csv_stores_what_the_sampler_sees(tmp_path):
    """Rotated 96x128 (stored 128x96), anamorphic 160x96 (stored 120x96, SAR 4:3), VFR 13.3 fps / 3.0 s."""
    from test_video_geometry import write_clip

    from vqalib.data.dataset import from_ratings_csv

    media = tmp_path / "media"
    media.mkdir()
    write_clip(media / "rot.mp4", rotation=90)
    write_clip(media / "anamorphic.mp4", w=120, h=96, sar=Fraction(4, 3))
    pts = list(range(30)) + [30 + 6 * k for k in range(10)]  # 1 s at 30 fps, then 2 s at 5 fps
    write_clip(media / "vfr.mp4", pts=pts, time_base=Fraction(1, 30), fps=30)
    csv = tmp_path / "study.csv"
    csv.write_text("clip,r1_overall,r2_overall,r3_overall\nrot,3,4,5\nanamorphic,2,3,4\nvfr,1,2,3\n")
    ds = from_ratings_csv(csv, video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
                          dimension_map={"overall": "clarity_quality"}, video_dir=media, path_template="{video}.mp4")
    v = ds.videos.set_index("video_id")
    assert (v.loc["rot", "width"], v.loc["rot", "height"]) == (96, 128)
    assert (v.loc["anamorphic", "width"], v.loc["anamorphic", "height"]) == (160, 96)
    assert v.loc["vfr", "fps"] == pytest.approx(40 / 3) and v.loc["vfr", "duration"] == pytest.approx(3.0)
    for vid in v.index:  # the same numbers as the sampler's probe
        info = probe(media / f"{vid}.mp4")
        assert (v.loc[vid, "width"], v.loc[vid, "height"]) == (info.width, info.height)
        assert v.loc[vid, "fps"] == pytest.approx(info.fps) and v.loc[vid, "duration"] == pytest.approx(info.duration)


# ----------------------------------------------------------------- HDR

@pytest.mark.parametrize("trc,name", [(16, "pq"), (18, "hlg"), (None, None)])
def test_hdr_clips_are_reported(tmp_path, trc, name):
    clip = write_indexed(tmp_path / "hdr.mp4", 10, fps=10, color_trc=trc, color_primaries=9 if trc else None)
    info = probe(clip)
    assert info.hdr == name
    v = sample_video(clip, SamplingConfig(min_frames=2))
    assert v.hdr == name
    df = preflight([clip])
    assert df.loc[0, "hdr"] == name
    if name:
        assert info.color_primaries == "bt2020"
        assert any(f"HDR video ({name.upper()} transfer, BT2020 primaries)" in n for n in v.notes)
        assert "HDR video" in df.loc[0, "notes"] and "tone" in df.loc[0, "notes"]
    else:
        assert not any("HDR" in n for n in v.notes)
    from vqalib.data.dataset import probe_video

    assert probe_video(clip)["hdr"] == name


def test_score_output_says_which_clips_are_hdr(tmp_path):
    """`score` writes the transfer of an HDR source in its `hdr` column (empty for SDR), read back as text."""
    from vqalib.inference.scorer import Scorer
    from vqalib.inference.store import read_scores

    folder = tmp_path / "clips"
    folder.mkdir()
    write_indexed(folder / "pq.mp4", 10, fps=10, color_trc=16, color_primaries=9)
    write_indexed(folder / "hlg.mp4", 10, fps=10, color_trc=18, color_primaries=9)
    write_indexed(folder / "sdr.mp4", 10, fps=10)
    out = tmp_path / "scores.csv"
    run = Scorer("tiny", mode="fast", batch_size=3, device="cpu").score(folder, out, progress=False)
    assert run.n_failed == 0
    rows = read_scores(out).set_index("video_id")
    assert rows.loc["pq", "hdr"] == "pq" and rows.loc["hlg", "hdr"] == "hlg"
    assert rows.loc["sdr", "hdr"] is None  # an empty text cell reads back as None


# ----------------------------------------------------------------- memory: resize as frames are decoded

@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_frames_are_resized_as_they_are_decoded(tmp_path, backend):
    """32 sampled 640x480 frames are 29.5 MB at full size; only resized ones are kept now (numpy
    allocations, traced): the peak stays under 6 full frames. The pixels are identical to resizing
    the full-size frames afterwards (the same PIL bicubic on the same decoded frames)."""
    if backend == "decord" and not decord_available():
        pytest.skip("decord is not installed")
    from test_video_geometry import write_clip

    clip = write_clip(tmp_path / "vga.mp4", n=32, w=640, h=480, fps=2, rotation=90)
    cfg = SamplingConfig(max_pixels=16 * 28 * 28, backend=backend)
    sample_video(clip, cfg)  # warm-up: imports, decoder set-up
    tracemalloc.start()
    try:
        v = sample_video(clip, cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_frame = 640 * 480 * 3
    assert len(v.indices) == 32 and v.frames.shape[1:3] == V.resized_size(640, 480, cfg)
    assert peak < 6 * full_frame, f"peak {peak / 2**20:.1f} MB, a full frame is {full_frame / 2**20:.2f} MB"
    info = probe(clip)
    full, _, _ = V.read_frames(clip, v.indices, backend, info=info)
    np.testing.assert_array_equal(v.frames, V._resize_frames(full, cfg, (info.height, info.width)))
