"""Frame sampling: the frames a video VLM sees, picked, decoded and resized the same way everywhere.

``sample_video(path, SamplingConfig(fps=2.0))`` returns a :class:`SampledVideo`: uint8 frames
``[T, H, W, 3]`` plus where they came from (source frame indices, timestamps, source fps and
size). ``SampledVideo.metadata()`` is the ``video_metadata`` dict the transformers Qwen2-VL /
Qwen2.5-VL processor takes next to pre-sampled frames, so that ``second_per_grid_ts`` (the
seconds between two temporal patches, used by M-RoPE) matches the real sampling.

How frames are chosen (identical for both backends, a pure function of the frame count ``N``,
the source fps and the config; see :func:`frame_indices`):

1. ``n = duration * fps`` with ``duration = N / source_fps`` (the paper samples at 2 fps),
   clamped to ``[min_frames, max_frames]`` and to ``N``, then rounded *down* to a multiple of
   ``frame_multiple`` (Qwen's temporal patch is 2 frames). This is the count transformers'
   ``Qwen2VLVideoProcessor.sample_frames`` would pick for the same video.
2. The duration is cut into ``n`` equal bins and the frame at the centre of each bin is taken:
   ``index_i = floor((i + 0.5) * N / n)``. The sampling is even over the whole clip, so the
   effective rate ``n / duration`` is exactly what the processor computes from the metadata
   (``len(frames_indices) / total_num_frames * fps``). Because ``n`` is rounded down, the
   effective rate is at most ``fps`` and at least ``fps * (1 - frame_multiple / (duration * fps))``
   when no clamp applies (e.g. 1.89 fps for a 5.3 s clip at 2 fps).
3. Timestamps are ``index / source_fps`` (what ``VideoMetadata.timestamps`` computes).

Frame size: with ``max_pixels`` set, each frame is resized keeping its aspect ratio so that
height and width are multiples of 28 (Qwen2.5-VL's 14-pixel patch times the 2x2 spatial merge)
and ``height * width <= max_pixels`` (the same rule as transformers' ``smart_resize``, bicubic
as in the Qwen processor). Give the processor ``size={"shortest_edge": cfg.min_pixels,
"longest_edge": cfg.max_pixels}`` and it keeps these frames as they are.

Backends: decord (primary; random access with ``get_batch(indices)``) and PyAV (fallback and
selectable; seeks to the keyframe before each needed frame and decodes forward only as far as
needed). Every file is first probed with PyAV without decoding (container opens, a video stream
exists, the packet count matches the header's frame count): decord can hang or crash on broken
files, so it only sees files that passed. A broken file raises :class:`VideoDecodeError` naming
the file; :func:`sample_many` and :func:`preflight` collect such failures into a report and never
substitute a frame, a video or a score.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np

Backend = Literal["auto", "decord", "pyav"]

#: Qwen2.5-VL: 14-pixel patches merged 2x2 -> frame sides must be multiples of 28.
PATCH_FACTOR: int = 28


class VideoDecodeError(RuntimeError):
    """A video could not be opened, probed or decoded. The message names the file and the fix."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


def decord_available() -> bool:
    """True when ``decord`` imports (it has no wheels for some platforms, e.g. macOS arm64)."""
    try:
        import decord  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


@dataclass
class SamplingConfig:
    """How frames are sampled from a video (saved with every checkpoint and predictions file).

    fps: target frames per second (paper: 2.0).
    min_frames, max_frames: clamp on the number of frames; both multiples of ``frame_multiple``.
    max_pixels: per-frame pixel budget (``None`` keeps the decoded size); frames are resized
        keeping aspect ratio to sides that are multiples of 28 (Qwen patch 14 x merge 2).
        The default 256 * 28 * 28 = 200,704 pixels (e.g. 588 x 336 for 16:9) gives 256 merged
        visual tokens per pair of frames.
    min_pixels: lower bound of the same resize (upscales tiny frames), as in ``smart_resize``.
    frame_multiple: the frame count is rounded down to a multiple of this (Qwen temporal patch 2).
    backend: ``"auto"`` (decord if installed, PyAV if decord is missing or fails on a file),
        ``"decord"`` or ``"pyav"``.
    """

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 32
    max_pixels: int | None = 256 * 28 * 28
    min_pixels: int = 4 * 28 * 28
    frame_multiple: int = 2
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.fps, (int, float)) and self.fps > 0 and math.isfinite(self.fps)):
            problems.append(f"fps={self.fps!r} must be a positive number")
        if not (isinstance(self.frame_multiple, int) and self.frame_multiple >= 1):
            problems.append(f"frame_multiple={self.frame_multiple!r} must be an int >= 1")
        else:
            for name in ("min_frames", "max_frames"):
                v = getattr(self, name)
                if not (isinstance(v, int) and v >= self.frame_multiple and v % self.frame_multiple == 0):
                    problems.append(f"{name}={v!r} must be a positive multiple of frame_multiple={self.frame_multiple}")
            if isinstance(self.min_frames, int) and isinstance(self.max_frames, int) and self.min_frames > self.max_frames:
                problems.append(f"min_frames={self.min_frames} > max_frames={self.max_frames}")
        if self.max_pixels is not None and not (isinstance(self.max_pixels, int) and self.max_pixels >= PATCH_FACTOR**2):
            problems.append(f"max_pixels={self.max_pixels!r} must be None or an int >= {PATCH_FACTOR**2}")
        if not (isinstance(self.min_pixels, int) and self.min_pixels >= 1):
            problems.append(f"min_pixels={self.min_pixels!r} must be a positive int")
        elif self.max_pixels is not None and isinstance(self.max_pixels, int) and self.min_pixels > self.max_pixels:
            problems.append(f"min_pixels={self.min_pixels} > max_pixels={self.max_pixels}")
        if self.backend not in ("auto", "decord", "pyav"):
            problems.append(f"backend={self.backend!r} must be 'auto', 'decord' or 'pyav'")
        if problems:
            raise ValueError("SamplingConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) of the settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SamplingConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"SamplingConfig.from_dict: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        return cls(**d)


@dataclass
class VideoInfo:
    """What the PyAV probe learned about a file without decoding it."""

    path: str
    n_frames: int
    fps: float
    width: int
    height: int
    codec: str
    pts: list[int] = field(repr=False)  # presentation timestamps of the frames, sorted (stream time base)
    keyframes: list[int] = field(repr=False)  # frame indices of keyframes, sorted

    @property
    def duration(self) -> float:
        """``n_frames / fps`` in seconds (the convention of ``VideoMetadata``)."""
        return self.n_frames / self.fps


@dataclass
class SampledVideo:
    """Frames sampled from one video and where they came from."""

    frames: np.ndarray  # uint8 [T, H, W, 3] (RGB), after the resize
    indices: np.ndarray  # int64 [T] source frame indices
    timestamps: np.ndarray  # float64 [T] seconds, index / source_fps
    source_fps: float
    width: int  # source frame width
    height: int  # source frame height
    n_source_frames: int
    backend: str  # "decord" or "pyav": the one that decoded these frames
    path: str
    notes: list[str] = field(default_factory=list)  # e.g. "decord failed (...), decoded with PyAV"

    @property
    def duration(self) -> float:
        return self.n_source_frames / self.source_fps

    @property
    def effective_fps(self) -> float:
        """Frames per second actually sampled: ``T / duration`` (what the processor derives)."""
        return len(self.indices) / self.duration

    def metadata(self) -> dict[str, Any]:
        """``video_metadata`` for the transformers video processor (fields of ``VideoMetadata``).

        The processor derives ``sampled_fps = len(frames_indices) / total_num_frames * fps`` and
        from it ``second_per_grid_ts = temporal_patch_size / sampled_fps``.
        """
        return {
            "total_num_frames": int(self.n_source_frames),
            "fps": float(self.source_fps),
            "width": int(self.width),
            "height": int(self.height),
            "duration": float(self.duration),
            "video_backend": self.backend,
            "frames_indices": [int(i) for i in self.indices],
        }


# --------------------------------------------------------------------------- index selection


def num_sampled_frames(n_frames: int, source_fps: float, cfg: SamplingConfig) -> int:
    """How many frames to take: ``duration * fps`` clamped to [min, max] and N, floored to the multiple."""
    m = cfg.frame_multiple
    n = n_frames / source_fps * cfg.fps
    n = min(max(n, cfg.min_frames), cfg.max_frames, n_frames)
    return int(math.floor(n / m + 1e-9) * m)


def frame_indices(n_frames: int, source_fps: float, cfg: SamplingConfig) -> np.ndarray:
    """Source frame indices to sample: the centres of ``n`` equal bins over the clip.

    ``index_i = floor((i + 0.5) * N / n)`` for ``i = 0 .. n-1`` (see the module docstring).
    Raises ``ValueError`` when the clip has fewer frames than ``cfg.min_frames``.
    """
    if n_frames < cfg.min_frames:
        raise ValueError(
            f"video has {n_frames} frames, fewer than min_frames={cfg.min_frames}; lower min_frames to sample it"
        )
    n = num_sampled_frames(n_frames, source_fps, cfg)
    idx = np.floor((np.arange(n) + 0.5) * n_frames / n).astype(np.int64)
    return np.clip(idx, 0, n_frames - 1)


def resized_size(height: int, width: int, cfg: SamplingConfig) -> tuple[int, int]:
    """Target ``(height, width)``: multiples of 28, aspect kept, pixels within [min_pixels, max_pixels].

    Same rule as transformers' ``smart_resize(height, width, factor=28, min_pixels, max_pixels)``.
    With ``cfg.max_pixels=None`` the decoded size is kept.
    """
    if cfg.max_pixels is None:
        return height, width
    return smart_resize(height, width, factor=PATCH_FACTOR, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)


def smart_resize(height: int, width: int, factor: int = PATCH_FACTOR, min_pixels: int = 56 * 56,
                 max_pixels: int = 14 * 14 * 4 * 1280) -> tuple[int, int]:
    """transformers' Qwen2-VL ``smart_resize`` (copied so this module does not import transformers;
    a test checks they agree): round each side to a multiple of ``factor``; if the area exceeds
    ``max_pixels`` scale by ``beta = sqrt(h*w / max_pixels)`` and floor, if below ``min_pixels``
    scale up and ceil."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.1f} above 200 is not supported")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _resize_frames(frames: np.ndarray, cfg: SamplingConfig) -> np.ndarray:
    """Resize every frame (bicubic, like the Qwen processor) to :func:`resized_size`."""
    h, w = frames.shape[1:3]
    th, tw = resized_size(h, w, cfg)
    if (th, tw) == (h, w):
        return frames
    from PIL import Image

    out = np.empty((frames.shape[0], th, tw, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(f).resize((tw, th), Image.BICUBIC))
    return out


# --------------------------------------------------------------------------- probe (PyAV, no decoding)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Check the container with PyAV and read frame count, fps, size and keyframes, decoding nothing.

    Demuxes every packet of the first video stream (I/O only) so that the frame count is exact
    and a file cut short (fewer packets than the header announces) is caught here.
    """
    import av

    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(p, "file does not exist", "check the path / the dataset's video folder")
    if p.is_dir():
        raise VideoDecodeError(p, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(p, "file is empty (0 bytes)", "re-download or re-encode the video")
    try:
        container = av.open(str(p))
    except Exception as e:  # noqa: BLE001 - every PyAV/FFmpeg error becomes a named VideoDecodeError
        raise VideoDecodeError(p, f"cannot open the container: {type(e).__name__}: {e}",
                               "the file is corrupt, truncated or not a video; re-download or re-encode it") from e
    try:
        if not container.streams.video:
            raise VideoDecodeError(p, "has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise VideoDecodeError(p, f"video stream reports size {width}x{height}")
        header_frames = int(stream.frames or 0)
        pts: list[int] = []
        key_pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                pts.append(int(packet.pts))
                if packet.is_keyframe:
                    key_pts.append(int(packet.pts))
        except Exception as e:  # noqa: BLE001
            raise VideoDecodeError(p, f"reading packets failed after {len(pts)} frames: {type(e).__name__}: {e}",
                                   "the file is truncated or corrupt; re-download or re-encode it") from e
        if not pts:
            raise VideoDecodeError(p, "video stream holds no frames")
        if header_frames and len(pts) < header_frames:
            raise VideoDecodeError(p, f"truncated: the header announces {header_frames} frames, only {len(pts)} are present",
                                   "re-download or re-encode the video")
        pts.sort()
        if len(set(pts)) != len(pts):
            raise VideoDecodeError(p, "duplicate frame timestamps (pts); frame indices would be ambiguous",
                                   "re-encode the video, e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if not (fps > 0 and math.isfinite(fps)):
            if stream.duration and stream.time_base:
                fps = len(pts) / float(stream.duration * stream.time_base)
            else:
                raise VideoDecodeError(p, "frame rate unknown (no average rate and no duration)", "re-encode the video")
        where = {v: i for i, v in enumerate(pts)}
        keyframes = sorted(where[k] for k in key_pts) or [0]
        return VideoInfo(str(p), len(pts), fps, width, height, ctx.name, pts, keyframes)
    finally:
        container.close()


# --------------------------------------------------------------------------- backends


def _read_decord(info: VideoInfo, indices: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Random access with decord ``get_batch`` (decodes from the keyframe before each index only)."""
    import decord

    notes: list[str] = []
    try:
        vr = decord.VideoReader(info.path, ctx=decord.cpu(0), num_threads=1)
        if len(vr) != info.n_frames:
            raise VideoDecodeError(info.path, f"decord counts {len(vr)} frames, the PyAV probe {info.n_frames}; "
                                   "indices would differ between backends", "use backend='pyav' for this file")
        frames = vr.get_batch([int(i) for i in indices]).asnumpy()
    except VideoDecodeError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoDecodeError(info.path, f"decord failed: {type(e).__name__}: {str(e)[:300]}",
                               "try backend='pyav' or re-encode the video") from e
    return np.ascontiguousarray(frames, dtype=np.uint8), notes


def _read_pyav(info: VideoInfo, indices: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """PyAV: for each needed frame, seek to the keyframe at or before it unless decoding forward
    from the current position is shorter, then decode forward up to it. Frames are identified by
    their pts, mapped to indices with the probe's sorted pts list (the same numbering as decord)."""
    import av

    pts_to_index = {v: i for i, v in enumerate(info.pts)}
    wanted = sorted(set(int(i) for i in indices))
    wanted_set = set(wanted)
    got: dict[int, np.ndarray] = {}
    container = av.open(info.path)
    try:
        stream = container.streams.video[0]
        decoder = None
        pos = -1  # index of the last frame decoded
        for target in wanted:
            if target in got:
                continue
            kf = info.keyframes[max(bisect.bisect_right(info.keyframes, target) - 1, 0)]
            if decoder is None or target <= pos or kf > pos:
                container.seek(info.pts[kf], stream=stream, backward=True, any_frame=False)
                decoder = container.decode(stream)
                pos = -1
            while pos < target:
                try:
                    frame = next(decoder)
                except StopIteration:
                    raise VideoDecodeError(info.path, f"decoding stopped before frame {target} of {info.n_frames}",
                                           "the file is truncated or corrupt; re-encode it") from None
                if frame.pts is None or frame.pts not in pts_to_index:
                    raise VideoDecodeError(info.path, f"decoded a frame with unknown pts {frame.pts}",
                                           "re-encode the video (e.g. ffmpeg -c:v libx264)")
                pos = pts_to_index[frame.pts]
                if pos in wanted_set and pos not in got:
                    got[pos] = frame.to_ndarray(format="rgb24")
            if target not in got:  # the seek landed past the target: decode it from the start instead
                container.seek(info.pts[0], stream=stream, backward=True, any_frame=False)
                decoder = container.decode(stream)
                for frame in decoder:
                    pos = pts_to_index.get(frame.pts, -1)
                    if pos in wanted_set and pos not in got:
                        got[pos] = frame.to_ndarray(format="rgb24")
                    if pos >= target:
                        break
                if target not in got:
                    raise VideoDecodeError(info.path, f"frame {target} could not be decoded", "re-encode the video")
    except VideoDecodeError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoDecodeError(info.path, f"PyAV decoding failed: {type(e).__name__}: {e}",
                               "the file is corrupt; re-download or re-encode it") from e
    finally:
        container.close()
    return np.stack([got[int(i)] for i in indices]).astype(np.uint8, copy=False), []


def read_frames(path: str | os.PathLike, indices: Iterable[int], backend: Backend = "auto",
                info: VideoInfo | None = None) -> tuple[np.ndarray, str, list[str]]:
    """Decode the given source frames (full size, RGB uint8). Returns ``(frames, backend used, notes)``.

    ``backend="auto"`` uses decord when installed and falls back to PyAV when decord fails on the
    file (the fallback is recorded in the notes, not hidden).
    """
    info = info or probe(path)
    idx = np.asarray(list(indices), dtype=np.int64)
    if idx.size == 0:
        raise ValueError(f"{path}: no frame indices requested")
    if idx.min() < 0 or idx.max() >= info.n_frames:
        raise ValueError(f"{path}: frame indices must lie in [0, {info.n_frames - 1}], got {idx.min()}..{idx.max()}")
    if backend == "decord":
        if not decord_available():
            raise ImportError("backend='decord' but decord is not installed (pip install decord); use backend='pyav'")
        frames, notes = _read_decord(info, idx)
        return frames, "decord", notes
    if backend == "pyav":
        frames, notes = _read_pyav(info, idx)
        return frames, "pyav", notes
    if backend != "auto":
        raise ValueError(f"backend={backend!r} must be 'auto', 'decord' or 'pyav'")
    if decord_available():
        try:
            frames, notes = _read_decord(info, idx)
            return frames, "decord", notes
        except VideoDecodeError as e:
            frames, notes = _read_pyav(info, idx)
            return frames, "pyav", [f"decord failed ({e.problem}); decoded with PyAV"] + notes
    frames, notes = _read_pyav(info, idx)
    return frames, "pyav", ["decord not installed; decoded with PyAV"] + notes


# --------------------------------------------------------------------------- public API


def sample_video(path: str | os.PathLike, cfg: SamplingConfig | None = None) -> SampledVideo:
    """Sample frames from one video per ``cfg`` (see the module docstring for the rules).

    Raises :class:`VideoDecodeError` naming the file when it is missing, empty, truncated,
    corrupt, or shorter than ``cfg.min_frames`` frames.
    """
    cfg = cfg or SamplingConfig()
    info = probe(path)
    try:
        idx = frame_indices(info.n_frames, info.fps, cfg)
    except ValueError as e:
        raise VideoDecodeError(path, str(e)) from e
    frames, used, notes = read_frames(path, idx, cfg.backend, info=info)
    frames = _resize_frames(frames, cfg)
    return SampledVideo(
        frames=frames,
        indices=idx,
        timestamps=idx / info.fps,
        source_fps=info.fps,
        width=info.width,
        height=info.height,
        n_source_frames=info.n_frames,
        backend=used,
        path=str(path),
        notes=notes,
    )


@dataclass
class SampleReport:
    """Result of :func:`sample_many`: the videos that decoded and every failure, by path."""

    videos: dict[str, SampledVideo]
    failures: list[tuple[str, str]]  # (path, error message)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [f"{len(self.videos)} videos sampled, {len(self.failures)} failed"]
        lines += [f"  FAILED {p}: {err}" for p, err in self.failures]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`VideoDecodeError` listing every failure (strict mode)."""
        if self.failures:
            raise VideoDecodeError(self.failures[0][0], f"{len(self.failures)} video(s) failed:\n" + self.summary())


def sample_many(paths: Iterable[str | os.PathLike], cfg: SamplingConfig | None = None,
                progress: bool = False) -> SampleReport:
    """Sample every video; failures go into ``report.failures`` (nothing is substituted or skipped silently)."""
    cfg = cfg or SamplingConfig()
    paths = [str(p) for p in paths]
    it: Iterable[str] = paths
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(paths, desc="sampling videos")
    videos: dict[str, SampledVideo] = {}
    failures: list[tuple[str, str]] = []
    for p in it:
        try:
            videos[p] = sample_video(p, cfg)
        except VideoDecodeError as e:
            failures.append((p, str(e)))
    return SampleReport(videos, failures)


def preflight(dataset_or_paths: Any, cfg: SamplingConfig | None = None, decode: bool = True,
              progress: bool = False):
    """Check every video of a dataset (a ``VQADataset`` or a list of paths) before a long run.

    Each file is probed (container, stream, packet count vs header); with ``decode=True`` the
    frames ``cfg`` would sample are decoded too (with ``cfg.backend``). Returns a DataFrame with one
    row per video: ``video_id`` (when a dataset is given), ``path``, ``ok``, ``error``,
    ``n_frames``, ``fps``, ``duration``, ``width``, ``height``, ``n_sampled``. Filter
    ``df[~df.ok]`` for the unreadable ones.
    """
    import pandas as pd

    cfg = cfg or SamplingConfig()
    if hasattr(dataset_or_paths, "videos") and hasattr(dataset_or_paths, "video_path"):
        ds = dataset_or_paths
        items = [(str(vid), str(ds.video_path(vid))) for vid in ds.videos["video_id"]]
    else:
        items = [(None, str(p)) for p in dataset_or_paths]
    it: Iterable = items
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(items, desc="preflight")
    rows = []
    for vid, p in it:
        row: dict[str, Any] = {"video_id": vid, "path": p, "ok": False, "error": None, "n_frames": None, "fps": None,
                               "duration": None, "width": None, "height": None, "n_sampled": None}
        try:
            info = probe(p)
            row.update(n_frames=info.n_frames, fps=info.fps, duration=info.duration, width=info.width, height=info.height)
            try:
                idx = frame_indices(info.n_frames, info.fps, cfg)
            except ValueError as e:
                raise VideoDecodeError(p, str(e)) from e
            row["n_sampled"] = len(idx)
            if decode:
                read_frames(p, idx, cfg.backend, info=info)
            row["ok"] = True
        except VideoDecodeError as e:
            row["error"] = str(e)
        rows.append(row)
    df = pd.DataFrame(rows)
    if all(v is None for v in df["video_id"]):
        df = df.drop(columns="video_id")
    return df
