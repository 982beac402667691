"""Frame sampling: the frames a video VLM sees, picked, decoded and resized the same way everywhere.

``sample_video(path, SamplingConfig(fps=2.0))`` returns a :class:`SampledVideo`: uint8 frames
``[T, H, W, 3]`` plus where they came from (source frame indices, timestamps, source fps and
size). ``SampledVideo.metadata()`` is the ``video_metadata`` dict the transformers Qwen2-VL /
Qwen2.5-VL processor takes next to pre-sampled frames, so that ``second_per_grid_ts`` (the
seconds between two temporal patches, used by M-RoPE) matches the real sampling.

How frames are chosen (identical for both backends, a pure function of the probe's frame count
``N``, presentation timestamps and the config; see :func:`select_frames`):

1. ``n = duration * fps`` (the paper samples at 2 fps), clamped to ``[min_frames, max_frames]``
   and to ``N``, then rounded *down* to a multiple of ``frame_multiple`` (Qwen's temporal patch
   is 2 frames). This is the count transformers' ``Qwen2VLVideoProcessor.sample_frames`` would
   pick for the same video. ``duration`` is the presentation time the frames cover: last pts
   minus first pts plus the last frame's duration (``N / fps`` on a constant-rate clip).
2. **Short clips** (see :func:`num_sampled_frames`): Qwen2.5-VL places temporal patch ``t`` at
   M-RoPE position ``floor(t * tokens_per_second * second_per_grid_t)`` with
   ``second_per_grid_t = 2 / sampled_fps``; above ``2 * tokens_per_second`` = 4 sampled frames
   per second two patches share a position and frame order is lost. When ``min_frames`` would
   push a short clip (under about 1 s at the defaults) past that rate, ``n`` is lowered to the
   largest count that keeps every position distinct (at least one temporal patch), and the
   change is recorded in ``SampledVideo.notes``. ``tokens_per_second=None`` turns the rule off.
3. The duration is cut into ``n`` equal bins and the frame **on screen at the centre of each bin**
   (presentation time, from the pts the probe reads) is taken. On a constant-rate clip (pts on a
   regular grid up to the container's timestamp rounding) this is
   ``index_i = floor((i + 0.5) * N / n)`` exactly, so constant-rate clips sample as before. On a
   variable-frame-rate clip (phones) the frames are even in time, not in index, and a frame
   held longer than a bin may be taken twice (what a player shows at those times; noted).
   The effective rate ``n / duration`` is exactly what the processor computes from
   :meth:`SampledVideo.metadata` (``len(frames_indices) / total_num_frames * fps``; ``fps`` is
   ``N / duration``, the mean rate, on a variable-rate clip), so ``second_per_grid_ts`` is the
   mean time between temporal patches.
4. Timestamps are the frames' pts in seconds, relative to the first frame (``index / fps`` on a
   constant-rate clip, up to the container's timestamp rounding).

Geometry (see :func:`probe`): frames come out **as a player shows them**. The display matrix
(phone rotation: 90/180/270 degrees, and mirroring) is applied losslessly, identically for both
backends; other angles are refused. A non-square sample aspect ratio (SAR, anamorphic video) is
corrected: the displayed size is ``(round(coded_width * SAR), coded_height)``, swapped by a 90 or
270 degree rotation, and frames are resized to it (or, with ``max_pixels``, straight to the
``patch_factor``-multiple size of that aspect). ``SampledVideo.width``/``height`` are this displayed size;
``coded_width``/``coded_height``, ``rotation``, ``mirrored`` and ``sample_aspect_ratio`` record
what the file stores.

Frame size: with ``max_pixels`` set, each frame is resized keeping its displayed aspect ratio so
that height and width are multiples of ``SamplingConfig.patch_factor`` (the model family's vision
patch times its 2x2 spatial merge: 28 for Qwen2.5-VL's 14-pixel patch, 32 for Qwen3-VL's and Qwen3.5's
16-pixel patch; ``vqalib.model.family.ModelFamily.patch_factor``) and ``height * width <= max_pixels``
(the same rule as transformers' ``smart_resize``, bicubic as in the Qwen processor). Give the
processor ``size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}`` (Qwen2.5-VL; the
family's ``frame_size_kwargs`` for the others) and it keeps these frames as they are. A frame whose
sides are not multiples of the model's factor is resized again by the processor (e.g. 112 x 112 at
factor 28 reaches a factor-32 model as 96 x 96).

Backends: decord (primary; random access with ``get_batch(indices)``) and PyAV (fallback and
selectable; seeks to the keyframe before each needed frame and decodes forward only as far as
needed). Every file is first probed with PyAV (container opens, a video stream exists, the
packet count matches the header's frame count, the first frame decodes and gives the display
matrix): decord can hang or crash on broken files, so it only sees files that passed. decord
0.6 applies the matrix's rotation itself but ignores mirroring and the SAR; :func:`read_frames`
undoes its rotation and applies the full matrix, so both backends give the same pixels. A broken file raises :class:`VideoDecodeError` naming
the file; :func:`sample_many` and :func:`preflight` collect such failures into a report and never
substitute a frame, a video or a score.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np

Backend = Literal["auto", "decord", "pyav"]

#: Qwen2.5-VL: 14-pixel patches merged 2x2 -> frame sides must be multiples of 28 (the default of
#: ``SamplingConfig.patch_factor``; Qwen3-VL and Qwen3.5: 16-pixel patches, 32).
PATCH_FACTOR: int = 28
#: Frames per temporal patch of the Qwen2-VL / Qwen2.5-VL video processor (``temporal_patch_size``).
TEMPORAL_PATCH: int = 2


class VideoDecodeError(RuntimeError):
    """A video could not be opened, probed or decoded. The message names the file and the fix."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


#: FFmpeg demuxers whose seeks land on the requested keyframe (they keep a frame index).
_INDEXED_CONTAINERS = ("mov", "mp4", "matroska", "webm", "avi")

#: File extensions of videos PyAV (FFmpeg) or decord decode, lower case with the dot: what a folder
#: given to :func:`vqalib.inference.sources.list_videos` is searched for. Files with other
#: extensions (or none) are counted and reported as skipped, never dropped silently.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m1v", ".m2v",
                    ".vob", ".ts", ".mts", ".m2ts", ".m2t", ".tts", ".trp", ".mxf", ".flv", ".f4v", ".wmv", ".asf",
                    ".3gp", ".3g2", ".ogv", ".ogg", ".gif", ".apng", ".h264", ".264", ".h265", ".265", ".hevc",
                    ".ivf", ".y4m", ".nut", ".dv", ".rm", ".rmvb", ".yuv")

#: Transfer characteristics (FFmpeg ``AVColorTransferCharacteristic``) of HDR video.
_HDR_TRANSFER = {16: "pq", 18: "hlg"}
_PRIMARIES = {1: "bt709", 5: "bt470bg", 6: "smpte170m", 9: "bt2020", 11: "smpte431", 12: "smpte432"}


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
        keeping aspect ratio to sides that are multiples of ``patch_factor``.
        The default 256 * 28 * 28 = 200,704 pixels (e.g. 588 x 336 for 16:9) gives 256 merged
        visual tokens per pair of frames at factor 28 (at most 196 at factor 32: 448 x 448 -> 14 x 14).
    min_pixels: lower bound of the same resize (upscales tiny frames), as in ``smart_resize``;
        default (``None``) ``4 * patch_factor**2`` (2 x 2 merged patches: 3136 at 28, 4096 at 32).
    frame_multiple: the frame count is rounded down to a multiple of this (Qwen temporal patch 2).
        ``min_frames=1, frame_multiple=1`` samples a one-frame clip (the processor repeats the
        frame to fill its 2-frame temporal patch).
    tokens_per_second: the model's temporal M-RoPE positions per second (Qwen2.5-VL
        ``vision_config.tokens_per_second``, 2). A short clip is sampled with fewer frames than
        ``min_frames`` when more would give two temporal patches the same position (module
        docstring, rule 2); ``None`` turns this off (other models, or to keep ``min_frames``).
    backend: ``"auto"`` (decord if installed, PyAV if decord is missing or fails on a file),
        ``"decord"`` or ``"pyav"``.
    patch_factor: frame sides are multiples of this: the model's vision patch x spatial merge (28:
        Qwen2.5-VL, :data:`PATCH_FACTOR`; 32: Qwen3-VL and Qwen3.5). Take it from the model family
        (``vqalib.model.family.family_of(model).patch_factor``; ``vqalib.train.common.sampling_config``
        and the scorer's ``default_sampling`` do), so the sampled frames reach the model at their size.
        ``dataclasses.replace(cfg, patch_factor=32)`` keeps ``cfg``'s resolved ``min_pixels``; add
        ``min_pixels=None`` to derive it for the new factor.
    """

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 32
    max_pixels: int | None = 256 * 28 * 28
    min_pixels: int | None = None  # None: 4 * patch_factor**2 (set in __post_init__)
    frame_multiple: int = 2
    backend: Backend = "auto"
    tokens_per_second: float | None = 2.0
    patch_factor: int = PATCH_FACTOR

    def __post_init__(self) -> None:
        problems = []
        factor_ok = isinstance(self.patch_factor, int) and not isinstance(self.patch_factor, bool) \
            and self.patch_factor >= 2
        if not factor_ok:
            problems.append(f"patch_factor={self.patch_factor!r} must be an int >= 2 (vision patch x spatial merge: "
                            f"{PATCH_FACTOR} for Qwen2.5-VL, 32 for Qwen3-VL and Qwen3.5)")
        if self.min_pixels is None and factor_ok:
            self.min_pixels = 4 * self.patch_factor ** 2
        factor = self.patch_factor if factor_ok else PATCH_FACTOR
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
        if self.max_pixels is not None and not (isinstance(self.max_pixels, int) and self.max_pixels >= factor**2):
            problems.append(f"max_pixels={self.max_pixels!r} must be None or an int >= {factor**2} (one "
                            f"{factor} x {factor} merged patch at patch_factor={factor})")
        if not (isinstance(self.min_pixels, int) and self.min_pixels >= 1):
            problems.append(f"min_pixels={self.min_pixels!r} must be a positive int")
        elif self.max_pixels is not None and isinstance(self.max_pixels, int) and self.min_pixels > self.max_pixels:
            problems.append(f"min_pixels={self.min_pixels} > max_pixels={self.max_pixels}")
        if self.tokens_per_second is not None and not (
                isinstance(self.tokens_per_second, (int, float)) and self.tokens_per_second > 0
                and math.isfinite(self.tokens_per_second)):
            problems.append(f"tokens_per_second={self.tokens_per_second!r} must be None or a positive number")
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
    """What the PyAV probe learned about a file (packets demuxed, only the first frame decoded).

    ``width``/``height`` are the **displayed** size (SAR-corrected, rotated); ``fps`` is the
    header's rate on a constant-rate clip and ``n_frames / duration`` (the mean rate from the
    pts) on a variable-rate one, so ``n_frames / fps`` is the presentation duration either way.
    """

    path: str
    n_frames: int
    fps: float
    width: int  # displayed width (after SAR and rotation)
    height: int  # displayed height
    codec: str
    pts: list[int] = field(repr=False)  # presentation timestamps of the frames, sorted (stream time base)
    keyframes: list[int] = field(repr=False)  # frame indices of keyframes, sorted
    time_base: Fraction = Fraction(0)  # seconds per pts tick (0: unknown, times are index / fps)
    end_pts: int | None = None  # pts where the last frame ends (last pts + its duration)
    variable_frame_rate: bool = False  # pts not on a regular grid: frames are chosen in presentation time
    coded_width: int = 0  # size stored in the file (0: same as width)
    coded_height: int = 0
    sample_aspect_ratio: Fraction = Fraction(1)  # pixel width / pixel height (anamorphic video != 1)
    rotation: int = 0  # display rotation, degrees counter-clockwise, 0/90/180/270 (ffprobe side data, mod 360)
    mirrored: bool = False  # the display matrix also mirrors the picture
    display_matrix: tuple[int, ...] | None = field(default=None, repr=False)  # 3x3 16.16 (FFmpeg layout)
    notes: list[str] = field(default_factory=list)  # what the probe noticed (rotation, SAR, VFR, header fps)
    pix_fmt: str = ""  # decoded pixel format, e.g. "yuv420p"
    container_format: str = ""  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "mpegts"
    hdr: str | None = None  # "pq" (SMPTE ST 2084) or "hlg" (ARIB STD-B67) transfer; None for SDR
    color_primaries: str = ""  # e.g. "bt709", "bt2020" ("" when unspecified)

    @property
    def seek_reliable(self) -> bool:
        """True for containers with a frame index (MP4/MOV, Matroska/WebM, AVI), where a seek to a
        keyframe's pts lands on that keyframe. MPEG-TS/PS, Ogg, GIF, FLV and raw streams have none
        (FFmpeg seeks by bisection over the bytes and may land frames past the target): the PyAV
        backend decodes those forward from the start (:func:`read_frames`)."""
        return any(k in self.container_format.split(",") for k in _INDEXED_CONTAINERS)

    @property
    def odd_subsampled(self) -> bool:
        """An odd coded side with subsampled chroma (e.g. 127x95 yuv420p): decord 0.6's bundled
        swscale upsamples the chroma differently from PyAV's there (up to ~40 grey levels at colour
        edges; identical on even sizes), so ``backend="auto"`` decodes such files with PyAV."""
        odd = (self.coded_width or self.width) % 2 or (self.coded_height or self.height) % 2
        return bool(odd) and any(k in self.pix_fmt for k in ("420", "422", "411", "410", "nv12", "nv21", "nv16"))

    @property
    def duration(self) -> float:
        """``n_frames / fps`` in seconds (the convention of ``VideoMetadata``): the time the frames cover."""
        return self.n_frames / self.fps

    def times(self) -> np.ndarray:
        """float64 [N] presentation time of every frame in seconds, relative to the first frame."""
        if not self.time_base:
            return np.arange(self.n_frames) / self.fps
        pts = np.asarray(self.pts, dtype=np.int64)
        return (pts - pts[0]) * float(self.time_base)


@dataclass
class SampledVideo:
    """Frames sampled from one video and where they came from."""

    frames: np.ndarray  # uint8 [T, H, W, 3] (RGB), after the resize
    indices: np.ndarray  # int64 [T] source frame indices
    timestamps: np.ndarray  # float64 [T] seconds from the first frame: the frames' pts (index / fps if CFR)
    source_fps: float  # header rate (constant-rate) or n_source_frames / duration (variable-rate)
    width: int  # displayed width of the source (SAR-corrected, rotated): what a player shows
    height: int  # displayed height of the source
    n_source_frames: int
    backend: str  # "decord" or "pyav": the one that decoded these frames
    path: str
    notes: list[str] = field(default_factory=list)  # e.g. "decord failed (...), decoded with PyAV"
    rotation: int = 0  # display rotation applied, degrees counter-clockwise (0/90/180/270)
    mirrored: bool = False  # the display matrix's mirroring was applied too
    coded_width: int = 0  # size stored in the file (0: unknown / same as width)
    coded_height: int = 0
    sample_aspect_ratio: float = 1.0  # stored pixel aspect; frames were resized to correct it
    variable_frame_rate: bool = False  # frames chosen evenly in presentation time (pts), not index
    hdr: str | None = None  # "pq" / "hlg" when the source is HDR (frames are its 8-bit RGB, not tone-mapped)

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
        from it ``second_per_grid_ts = temporal_patch_size / sampled_fps``: with ``fps =
        n_source_frames / duration`` this is the mean time between temporal patches, also on a
        variable-rate clip (where ``VideoMetadata.timestamps``, ``index / fps``, are only
        approximate: use :attr:`timestamps`). ``width``/``height`` are the displayed size.
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


def temporal_positions_distinct(n: int, n_frames: int, source_fps: float, tokens_per_second: float | None) -> bool:
    """Would ``n`` frames give every Qwen2.5-VL temporal patch its own M-RoPE position?

    The processor computes ``second_per_grid_t = 2 / (n / n_frames * source_fps)`` (a float32
    tensor in the batch) and the model ``floor(t * tokens_per_second * second_per_grid_t)`` for
    patch ``t`` (transformers ``Qwen2_5_VLModel.get_vision_position_ids``); the positions are
    distinct iff ``tokens_per_second * second_per_grid_t >= 1`` in float32, or there is one patch.
    """
    if tokens_per_second is None or n <= TEMPORAL_PATCH:
        return True
    spg = np.float32(TEMPORAL_PATCH / (n / n_frames * source_fps))
    return bool(np.float32(tokens_per_second) * spg >= 1.0)


def _frame_counts(n_frames: int, source_fps: float, cfg: SamplingConfig) -> tuple[int, int]:
    """``(n, n before the short-clip rule)``; see :func:`num_sampled_frames`."""
    m = cfg.frame_multiple
    n = n_frames / source_fps * cfg.fps
    n = min(max(n, cfg.min_frames), cfg.max_frames, n_frames)
    n0 = n = int(math.floor(n / m + 1e-9) * m)
    while n > m and not temporal_positions_distinct(n, n_frames, source_fps, cfg.tokens_per_second):
        n -= m
    return n, n0


def num_sampled_frames(n_frames: int, source_fps: float, cfg: SamplingConfig) -> int:
    """How many frames to take: ``duration * fps`` clamped to [min, max] and N, floored to the multiple,
    then lowered (by multiples, to one temporal patch at least) while two Qwen2.5-VL temporal patches
    would share an M-RoPE position (:func:`temporal_positions_distinct`; ``cfg.tokens_per_second``).
    ``duration = n_frames / source_fps``."""
    return _frame_counts(n_frames, source_fps, cfg)[0]


def _too_few_frames(n_frames: int, cfg: SamplingConfig) -> str | None:
    """The error for a clip shorter than ``cfg.min_frames`` frames, naming the setting to change."""
    if n_frames >= cfg.min_frames:
        return None
    if n_frames < cfg.frame_multiple or n_frames == 1:
        what = "1 frame (a still image)" if n_frames == 1 else f"{n_frames} frames"
        return (f"video has {what}, fewer than min_frames={cfg.min_frames}; to sample it set "
                f"SamplingConfig(min_frames={n_frames}, frame_multiple=1) (the Qwen processor repeats the last "
                f"frame to fill its {TEMPORAL_PATCH}-frame temporal patch), or remove the clip")
    fix = n_frames - n_frames % cfg.frame_multiple
    return (f"video has {n_frames} frames, fewer than min_frames={cfg.min_frames}; set "
            f"SamplingConfig(min_frames={fix}) (a multiple of frame_multiple={cfg.frame_multiple}) to sample it")


def frame_indices(n_frames: int, source_fps: float, cfg: SamplingConfig) -> np.ndarray:
    """Source frame indices of a constant-rate clip: the centres of ``n`` equal bins over the clip.

    ``index_i = floor((i + 0.5) * N / n)`` for ``i = 0 .. n-1`` (see the module docstring;
    :func:`select_frames` uses the pts and equals this on a constant-rate clip).
    Raises ``ValueError`` naming the setting to change when the clip has fewer than
    ``cfg.min_frames`` frames.
    """
    problem = _too_few_frames(n_frames, cfg)
    if problem:
        raise ValueError(problem)
    n = num_sampled_frames(n_frames, source_fps, cfg)
    idx = np.floor((np.arange(n) + 0.5) * n_frames / n).astype(np.int64)
    return np.clip(idx, 0, n_frames - 1)


def select_frames(info: VideoInfo, cfg: SamplingConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(indices int64 [T], timestamps float64 [T] seconds, notes)`` for a probed clip.

    The frame on screen at the centre of each of ``n`` equal bins of presentation time (module
    docstring, rules 1-4): on a constant-rate clip exactly :func:`frame_indices`; on a
    variable-rate one the bins are cut in pts (integer arithmetic, no rounding) and a frame may
    be chosen twice when it stays on screen longer than a bin. Raises ``ValueError`` as
    :func:`frame_indices` does.
    """
    problem = _too_few_frames(info.n_frames, cfg)
    if problem:
        raise ValueError(problem)
    N = info.n_frames
    n, n0 = _frame_counts(N, info.fps, cfg)
    notes: list[str] = []
    if n < n0:
        notes.append(f"short clip ({info.duration:.2f} s): {n} frames instead of {n0}, so that Qwen2.5-VL temporal "
                     f"positions stay distinct (at most {TEMPORAL_PATCH * cfg.tokens_per_second:g} frames/s with "
                     f"tokens_per_second={cfg.tokens_per_second:g}; SamplingConfig(tokens_per_second=None) keeps {n0})")
    if info.variable_frame_rate and info.time_base and info.end_pts is not None:
        rel = np.asarray(info.pts, dtype=np.int64) - info.pts[0]
        span = int(info.end_pts - info.pts[0])
        # frame k is on screen during [rel_k, rel_k+1); bin centre c_i = (2i+1) * span / (2n)
        idx = np.searchsorted(2 * n * rel, (2 * np.arange(n, dtype=np.int64) + 1) * span, side="right") - 1
        idx = np.clip(idx, 0, N - 1).astype(np.int64)
        dup = n - len(np.unique(idx))
        if dup:
            notes.append(f"variable frame rate: {dup} of {n} sampled times fall on a frame already taken "
                         "(it stays on screen longer than the sampling interval); it is repeated, as a player shows it")
    else:
        idx = frame_indices(N, info.fps, cfg)
    return idx, info.times()[idx], notes


def resized_size(height: int, width: int, cfg: SamplingConfig) -> tuple[int, int]:
    """Target ``(height, width)``: multiples of ``cfg.patch_factor`` (28 by default), aspect kept, pixels
    within [min_pixels, max_pixels].

    Same rule as transformers' ``smart_resize(height, width, factor=cfg.patch_factor, min_pixels, max_pixels)``.
    With ``cfg.max_pixels=None`` the decoded size is kept.
    """
    if cfg.max_pixels is None:
        return height, width
    return smart_resize(height, width, factor=cfg.patch_factor, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)


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


def _resize_frames(frames: np.ndarray, cfg: SamplingConfig, display_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Resize every frame (bicubic, like the Qwen processor) to :func:`resized_size` of the
    displayed size ``display_hw`` (default: the frames' own size; differs for a non-square SAR)."""
    h, w = display_hw or frames.shape[1:3]
    th, tw = resized_size(h, w, cfg)
    if (th, tw) == frames.shape[1:3]:
        return frames
    out = np.empty((frames.shape[0], th, tw, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        out[i] = _resize_one(f, (th, tw))
    return out


def _resize_one(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One uint8 ``[H, W, 3]`` frame resized to ``size = (height, width)``, PIL bicubic (as the Qwen processor)."""
    from PIL import Image

    th, tw = size
    return np.asarray(Image.fromarray(frame).resize((tw, th), Image.BICUBIC))


# --------------------------------------------------------------------------- display geometry


def display_rotation(matrix: Iterable[int]) -> tuple[float, bool]:
    """``(degrees counter-clockwise, mirrored)`` of an FFmpeg display matrix (9 int32, 16.16).

    Degrees as ``av_display_rotation_get`` (what ffprobe prints as the side data's ``rotation``
    and PyAV as ``VideoFrame.rotation``); ``mirrored`` when the 2x2 part has a negative determinant.
    """
    m = np.asarray(list(matrix), dtype=np.float64)
    s0, s1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if s0 == 0 or s1 == 0:
        return float("nan"), False
    return -math.degrees(math.atan2(m[1] / s1, m[0] / s0)), (m[0] * m[4] - m[1] * m[3]) < 0


def _orientation_ops(matrix: Iterable[int] | None) -> tuple[bool, bool, bool] | None:
    """``(transpose, flip_rows, flip_cols)`` that turn stored frames into displayed ones, or None
    when the matrix is not a multiple of 90 degrees (optionally mirrored).

    FFmpeg's display matrix maps a stored pixel ``(x, y)`` to ``(a x + c y, b x + d y)`` plus a
    translation (``libavutil/display.h``; ``[a b u; c d v; tx ty w]``, row-major). With entries
    in {0, +-1} this is a transpose (``a = d = 0``) followed by flips of the displayed rows (sign
    of ``b`` or ``d``) and columns (sign of ``a`` or ``c``).
    """
    if matrix is None:
        return False, False, False
    m = np.asarray(list(matrix), dtype=np.float64)
    a, b, c, d = (m[[0, 1, 3, 4]] / 65536.0)
    r = np.round([a, b, c, d])
    if np.abs(np.array([a, b, c, d]) - r).max() > 0.02 or not set(r.tolist()) <= {-1.0, 0.0, 1.0}:
        return None
    ra, rb, rc, rd = r
    if ra == 0 and rd == 0 and rb != 0 and rc != 0:
        return True, rb < 0, rc < 0
    if rb == 0 and rc == 0 and ra != 0 and rd != 0:
        return False, rd < 0, ra < 0
    return None


def _apply_ops(frames: np.ndarray, ops: tuple[bool, bool, bool]) -> np.ndarray:
    """Apply ``(transpose, flip_rows, flip_cols)`` to uint8 ``[T, H, W, 3]`` (lossless)."""
    transpose, flip_rows, flip_cols = ops
    if transpose:
        frames = frames.transpose(0, 2, 1, 3)
    if flip_rows:
        frames = frames[:, ::-1]
    if flip_cols:
        frames = frames[:, :, ::-1]
    return np.ascontiguousarray(frames)


def _display_matrix_of(frame) -> tuple[int, ...] | None:
    """The ``DISPLAYMATRIX`` side data of a decoded PyAV frame (FFmpeg copies the stream's to it)."""
    for sd in getattr(frame, "side_data", ()) or ():
        kind = getattr(getattr(sd, "type", None), "name", str(getattr(sd, "type", "")))
        if kind.endswith("DISPLAYMATRIX"):
            raw = bytes(sd)
            if len(raw) >= 36:
                return tuple(int(v) for v in np.frombuffer(raw[:36], dtype=np.int32))
    return None


def _sample_aspect_ratio(stream) -> Fraction:
    """Container SAR if set, else the codec's (FFmpeg's ``av_guess_sample_aspect_ratio`` order); 1 if none."""
    for src in (stream, stream.codec_context):
        sar = getattr(src, "sample_aspect_ratio", None)
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            return Fraction(sar.numerator, sar.denominator)
    return Fraction(1)


def display_size(coded_width: int, coded_height: int, sar: Fraction = Fraction(1),
                 transpose: bool = False) -> tuple[int, int]:
    """``(width, height)`` a player shows: ``(round(coded_width * sar), coded_height)``, swapped when
    the display matrix turns the picture by 90 or 270 degrees."""
    w = max(1, int(round(coded_width * sar))) if sar != 1 else coded_width
    return (coded_height, w) if transpose else (w, coded_height)


# --------------------------------------------------------------------------- probe (PyAV)


def _hdr_of(frame, ctx) -> tuple[str | None, str]:
    """``(hdr, primaries)``: ``"pq"``/``"hlg"`` from the transfer characteristic of the first frame
    (else the stream's), and the colour primaries' name (``""`` when unspecified)."""
    def code(attr: str) -> int:
        for src in (frame, ctx):
            v = getattr(src, attr, None)
            try:
                v = int(v) if v is not None else 0
            except (TypeError, ValueError):
                v = 0
            if v not in (0, 2):  # 2 = unspecified
                return v
        return 0

    prim = code("color_primaries")
    return _HDR_TRANSFER.get(code("color_trc")), _PRIMARIES.get(prim, str(prim) if prim else "")


def _regular_grid(pts: list[int], time_base: Fraction) -> bool:
    """True when the pts lie on a constant-rate grid up to the container's rounding: every pts within
    ``min(1.5 ticks, a quarter frame)`` of the line through the first and last (webm's 1 ms ticks give
    33/34 ms steps at 30 fps; a dropped or held frame moves a pts by a whole frame)."""
    if len(pts) < 3:
        return True
    p = np.asarray(pts, dtype=np.float64) - pts[0]
    step = p[-1] / (len(p) - 1)
    dev = np.abs(p - step * np.arange(len(p))).max()
    return bool(dev <= min(1.5, 0.25 * step) + 1e-9)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Check the container with PyAV and read frame count, pts, fps, geometry and keyframes.

    Demuxes every packet of the first video stream (I/O only) so that the frame count is exact
    and a file cut short (fewer packets than the header announces) is caught here; decodes only
    the first frame, which carries the display matrix (phone rotation). Records the displayed
    size (SAR and rotation applied), whether the frame rate is variable, and notes on each.
    Raises :class:`VideoDecodeError` naming the file and the fix (also for a display rotation
    that is not a multiple of 90 degrees, and a first frame that does not decode).

    The steps, in order (each raises for its own problems): the file (:func:`_check_file`), the
    container and its video stream (:func:`_open_container`, :func:`_video_stream`), the packets
    (:func:`_demux`, :func:`_check_packets`), the first frame (:func:`_first_frame`), the frame rate
    (:func:`_frame_rate`), the rotation (:func:`_rotation`), the displayed size (:func:`display_size`,
    :func:`_sar_note`), HDR (:func:`_hdr_of`, :func:`_hdr_note`) and the keyframes.
    """
    p = Path(path)
    _check_file(p)
    container = _open_container(p)
    try:
        stream, width, height = _video_stream(container, p)
        ctx = stream.codec_context
        packets = _demux(container, stream, p)
        pts = _check_packets(packets, int(stream.frames or 0), p)
        first = _first_frame(packets, ctx, p)
        rate = _frame_rate(stream, pts, packets.durations, p)
        rot = _rotation(first, p)
        sar = _sample_aspect_ratio(stream)
        dw, dh = display_size(width, height, sar, rot.ops[0])
        hdr, primaries = _hdr_of(first, ctx)
        notes = [*rate.notes, *rot.notes, *_sar_note(sar, width, height, dw, dh), *_hdr_note(hdr, primaries)]
        where = {v: i for i, v in enumerate(pts)}
        keyframes = sorted(where[k] for k in packets.key_pts) or [0]
        return VideoInfo(str(p), len(pts), rate.fps, dw, dh, ctx.name, pts, keyframes, time_base=rate.time_base,
                         end_pts=rate.end_pts, variable_frame_rate=rate.variable, coded_width=width,
                         coded_height=height, sample_aspect_ratio=sar, rotation=rot.degrees, mirrored=rot.mirrored,
                         display_matrix=rot.matrix, notes=notes, pix_fmt=str(getattr(first.format, "name", "")),
                         container_format=str(getattr(container.format, "name", "") or ""), hdr=hdr,
                         color_primaries=primaries)
    finally:
        container.close()


def _check_file(p: Path) -> None:
    """The path is a non-empty file (else :class:`VideoDecodeError` with the fix)."""
    if not p.exists():
        raise VideoDecodeError(p, "file does not exist", "check the path / the dataset's video folder")
    if p.is_dir():
        raise VideoDecodeError(p, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(p, "file is empty (0 bytes)", "re-download or re-encode the video")


def _open_container(p: Path):
    """The PyAV container of ``p``; every PyAV/FFmpeg error becomes a named :class:`VideoDecodeError`."""
    import av

    try:
        return av.open(str(p))
    except Exception as e:  # noqa: BLE001 - every PyAV/FFmpeg error becomes a named VideoDecodeError
        raise VideoDecodeError(p, f"cannot open the container: {type(e).__name__}: {e}",
                               "the file is corrupt, truncated or not a video; re-download or re-encode it") from e


def _video_stream(container, p: Path) -> tuple[Any, int, int]:
    """``(stream, coded width, coded height)`` of the container's first video stream, which must have a size."""
    if not container.streams.video:
        raise VideoDecodeError(p, "has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise VideoDecodeError(p, f"video stream reports size {width}x{height}")
    return stream, width, height


@dataclass
class _Packets:
    """What demuxing the video stream found (:func:`_demux`)."""

    pts: list[int] = field(default_factory=list)  # of every packet with a pts and data, in file order
    key_pts: list[int] = field(default_factory=list)  # of the keyframe packets
    durations: dict[int, int] = field(default_factory=dict)  # pts -> packet duration (0: unknown)
    first: Any = None  # the first decoded frame (None: none decoded while demuxing)
    decode_error: Exception | None = None  # the last error of decoding the first frame


def _demux(container, stream, p: Path) -> _Packets:
    """Every packet of ``stream`` (I/O only), decoding packets only until the first frame comes out."""
    ctx = stream.codec_context
    out = _Packets()
    try:
        for packet in container.demux(stream):
            if out.first is None:
                try:  # feed packets until the decoder gives its first frame (B-frame delay, a bad packet)
                    got = ctx.decode(packet if packet.size else None)
                    out.first = got[0] if got else None
                except Exception as e:  # noqa: BLE001 - kept; only "no frame at all" is an error
                    out.decode_error = e
            if packet.pts is None or packet.size == 0:
                continue
            out.pts.append(int(packet.pts))
            out.durations[int(packet.pts)] = int(packet.duration or 0)
            if packet.is_keyframe:
                out.key_pts.append(int(packet.pts))
    except Exception as e:  # noqa: BLE001
        raise VideoDecodeError(p, f"reading packets failed after {len(out.pts)} frames: {type(e).__name__}: {e}",
                               "the file is truncated or corrupt; re-download or re-encode it") from e
    return out


def _check_packets(packets: _Packets, header_frames: int, p: Path) -> list[int]:
    """The sorted pts, after checking there are frames, as many as the header announces, each pts once."""
    pts = packets.pts
    if not pts:
        raise VideoDecodeError(p, "video stream holds no frames")
    if header_frames and len(pts) < header_frames:
        raise VideoDecodeError(p, f"truncated: the header announces {header_frames} frames, only {len(pts)} are present",
                               "re-download or re-encode the video")
    pts.sort()
    if len(set(pts)) != len(pts):
        raise VideoDecodeError(p, "duplicate frame timestamps (pts); frame indices would be ambiguous",
                               "re-encode the video, e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4")
    return pts


def _first_frame(packets: _Packets, ctx, p: Path):
    """The first decoded frame: the one demuxing gave, else what flushing the decoder gives (a clip
    shorter than the decoder's delay); none is a :class:`VideoDecodeError`."""
    if packets.first is not None:
        return packets.first
    try:
        got = ctx.decode(None)
        if got:
            return got[0]
    except Exception as e:  # noqa: BLE001
        packets.decode_error = e
    err = packets.decode_error
    why = f"{type(err).__name__}: {err}" if err else "the decoder returned no frame"
    raise VideoDecodeError(p, f"the first frame does not decode ({why})", "the file is corrupt; re-encode it")


@dataclass
class _Rate:
    """The frame rate :func:`_frame_rate` settled on, and how the pts lie."""

    fps: float
    time_base: Fraction  # seconds per pts tick (0: unknown)
    end_pts: int | None  # where the last frame ends
    variable: bool  # pts off a regular grid
    notes: list[str]


def _frame_rate(stream, pts: list[int], durations: dict[int, int], p: Path) -> _Rate:
    """The header's rate on a constant-rate clip whose pts agree with it; else frames / presentation time.

    A variable-rate clip (pts off a regular grid, :func:`_regular_grid`) gets the mean rate of its
    pts and a note; a header rate that disagrees with regular pts is replaced by theirs, with a note.
    Without pts (or a time base) the header's rate, else ``n / stream duration``; none is an error.
    """
    notes: list[str] = []
    header_rate = stream.average_rate or stream.guessed_rate
    fps = float(header_rate) if header_rate else 0.0
    tb = Fraction(stream.time_base) if stream.time_base else Fraction(0)
    end_pts = None
    regular = True
    if tb and len(pts) >= 2:
        steps = np.diff(np.asarray(pts, dtype=np.int64))
        last = durations.get(pts[-1], 0) or int(steps[-1])
        end_pts = pts[-1] + last
        regular = _regular_grid(pts, tb)
        pts_fps = len(pts) / float((end_pts - pts[0]) * tb)
        if not regular:
            fps = pts_fps
            notes.append(f"variable frame rate: frame durations {float(steps.min() * tb):.3f}-"
                         f"{float(steps.max() * tb):.3f} s, mean {pts_fps:.3f} fps; frames chosen evenly in "
                         "presentation time")
        elif not (fps > 0 and math.isfinite(fps)) or abs(fps / pts_fps - 1) > max(1e-3, 2 / (end_pts - pts[0])):
            if fps > 0 and math.isfinite(fps):
                notes.append(f"header frame rate {fps:.3f} fps disagrees with the timestamps "
                             f"({pts_fps:.3f} fps); using the timestamps")
            fps = pts_fps
    if not (fps > 0 and math.isfinite(fps)):
        if stream.duration and stream.time_base:
            fps = len(pts) / float(stream.duration * stream.time_base)
        else:
            raise VideoDecodeError(p, "frame rate unknown (no average rate and no duration)", "re-encode the video")
    return _Rate(fps, tb, end_pts, not regular, notes)


@dataclass
class _Rotation:
    """The display matrix of the first frame, as :func:`_rotation` reads it."""

    matrix: tuple[int, ...] | None
    degrees: int  # counter-clockwise, 0/90/180/270
    mirrored: bool
    ops: tuple[bool, bool, bool]  # (transpose, flip_rows, flip_cols): stored -> displayed
    notes: list[str]


def _rotation(first, p: Path) -> _Rotation:
    """The first frame's display matrix; a rotation that is not a multiple of 90 degrees is an error."""
    matrix = _display_matrix_of(first)
    if matrix is None:
        return _Rotation(None, 0, False, (False, False, False), [])
    deg, mirrored = display_rotation(matrix)
    ops = _orientation_ops(matrix)
    if ops is None:
        raise VideoDecodeError(p, f"display matrix rotates by {deg:.1f} degrees, not a multiple of 90; frames "
                               "cannot be shown without resampling",
                               "re-encode with the rotation applied, e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4")
    rotation = int(round(deg)) % 360
    notes = []
    if rotation or mirrored:
        notes.append(f"display matrix: rotated {rotation} degrees counter-clockwise"
                     + (", mirrored" if mirrored else "") + "; frames are returned as displayed")
    return _Rotation(matrix, rotation, bool(mirrored), ops, notes)


def _sar_note(sar: Fraction, width: int, height: int, dw: int, dh: int) -> list[str]:
    if sar == 1:
        return []
    return [f"sample aspect ratio {sar.numerator}:{sar.denominator}: stored {width}x{height}, "
            f"displayed {dw}x{dh}; frames are resized to the displayed aspect"]


def _hdr_note(hdr: str | None, primaries: str) -> list[str]:
    if not hdr:
        return []
    return [f"HDR video ({hdr.upper()} transfer{', ' + primaries.upper() + ' primaries' if primaries else ''}): "
            "frames are its values converted to 8-bit RGB without tone mapping, so they look flat and "
            "washed out next to SDR clips; scores of HDR and SDR clips are not comparable (tone-map "
            "first, e.g. ffmpeg -vf zscale=t=linear,tonemap=hable,zscale=t=bt709:m=bt709:p=bt709)"]


# --------------------------------------------------------------------------- backends


def _display_ops(info: VideoInfo) -> tuple[bool, bool, bool]:
    ops = _orientation_ops(info.display_matrix)
    assert ops is not None, "probe refuses other display matrices"
    return ops


def _frame_pipeline(info: VideoInfo, size: tuple[int, int] | None):
    """The per-frame step after decoding: ``stored [H, W, 3] -> displayed (and resized) [h, w, 3]``.

    The display matrix (lossless, :func:`_apply_ops`) and then, with ``size = (height, width)``,
    the bicubic resize of :func:`_resize_frames`, frame by frame as it is decoded, so that only the
    resized frames are kept (a 4K frame is 25 MB; 32 of them were held at full size before)."""
    ops = _display_ops(info)

    def fn(stored: np.ndarray) -> np.ndarray:
        f = _apply_ops(np.asarray(stored, dtype=np.uint8)[None], ops)[0]
        if size is not None and tuple(size) != f.shape[:2]:
            f = _resize_one(f, size)
        return f

    return fn


def _stack(got: dict[int, np.ndarray], indices: np.ndarray) -> np.ndarray:
    return np.stack([got[int(i)] for i in indices]).astype(np.uint8, copy=False)


def _read_decord(info: VideoInfo, indices: np.ndarray, fn) -> tuple[np.ndarray, list[str]]:
    """Random access with decord (decodes from the keyframe before each index only), one frame at a
    time in index order, each passed through ``fn`` (:func:`_frame_pipeline`) as it comes.

    decord 0.6 rotates by the display matrix's angle itself (``av_display_rotation_get``) but
    ignores mirroring: its rotation is undone (lossless) and the full matrix applied, as for PyAV."""
    import decord

    quarter_turns = 0
    if info.display_matrix is not None:
        deg = display_rotation(info.display_matrix)[0]
        quarter_turns = int(round(deg / 90)) % 4
    cw, ch = info.coded_width or info.width, info.coded_height or info.height
    expect = (cw, ch) if quarter_turns % 2 else (ch, cw)
    got: dict[int, np.ndarray] = {}
    try:
        vr = decord.VideoReader(info.path, ctx=decord.cpu(0), num_threads=1)
        if len(vr) != info.n_frames:
            raise VideoDecodeError(info.path, f"decord counts {len(vr)} frames, the PyAV probe {info.n_frames}; "
                                   "indices would differ between backends", "use backend='pyav' for this file")
        for i in sorted(set(int(i) for i in indices)):
            frame = vr.get_batch([i]).asnumpy()[0]
            if frame.shape[:2] != expect:
                raise VideoDecodeError(info.path, f"decord returned {frame.shape[1]}x{frame.shape[0]} frames, expected "
                                       f"{expect[1]}x{expect[0]} (stored {cw}x{ch}, rotated {info.rotation} degrees)",
                                       "use backend='pyav' for this file")
            if quarter_turns:
                frame = np.rot90(frame, k=-quarter_turns, axes=(0, 1))  # back to the stored orientation
            got[i] = fn(frame)
    except VideoDecodeError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoDecodeError(info.path, f"decord failed: {type(e).__name__}: {str(e)[:300]}",
                               "try backend='pyav' or re-encode the video") from e
    return _stack(got, indices), []


class _SeekMissed(Exception):
    """A PyAV seek did not land on the keyframe at or before the target (index-less containers)."""


def _pyav_by_seeking(container, stream, info: VideoInfo, wanted: list[int], got: dict, fn) -> None:
    """For each needed frame, seek to the keyframe at or before it unless decoding forward from the
    current position is shorter, then decode forward up to it. Raises :class:`_SeekMissed` when a
    seek lands past the target or decoding after it gives nothing (the caller then decodes forward
    from the start, which is always right)."""
    pts_to_index = {v: i for i, v in enumerate(info.pts)}
    wanted_set = set(wanted)
    decoder = None
    pos = -1  # index of the last frame decoded
    floor = 0  # frames before the keyframe sought to are not kept (an open GOP's leading B-frames)
    for target in wanted:
        if target in got:
            continue
        kf = info.keyframes[max(bisect.bisect_right(info.keyframes, target) - 1, 0)]
        fresh = False
        if decoder is None or target <= pos or kf > pos:
            container.seek(info.pts[kf], stream=stream, backward=True, any_frame=False)
            decoder = container.decode(stream)
            pos, floor, fresh = -1, kf, True
        while pos < target:
            frame = next(decoder, None)
            if frame is None or frame.pts is None or frame.pts not in pts_to_index:
                raise _SeekMissed
            pos = pts_to_index[frame.pts]
            if fresh and pos > target:
                raise _SeekMissed
            fresh = False
            if pos >= floor and pos in wanted_set and pos not in got:
                got[pos] = fn(frame.to_ndarray(format="rgb24"))
        if target not in got:
            raise _SeekMissed


def _pyav_forward(container, stream, info: VideoInfo, wanted: list[int], got: dict, fn) -> None:
    """Decode from the start of a freshly opened container, in presentation order, keeping the
    needed frames, until the last one (no seek: right for every container)."""
    pts_to_index = {v: i for i, v in enumerate(info.pts)}
    need = set(wanted) - set(got)
    for frame in container.decode(stream):
        if frame.pts is None or frame.pts not in pts_to_index:
            raise VideoDecodeError(info.path, f"decoded a frame with unknown pts {frame.pts}",
                                   "re-encode the video (e.g. ffmpeg -c:v libx264)")
        pos = pts_to_index[frame.pts]
        if pos in need:
            got[pos] = fn(frame.to_ndarray(format="rgb24"))
            need.discard(pos)
            if not need:
                return
    raise VideoDecodeError(info.path, f"decoding stopped before frame {min(need)} of {info.n_frames}",
                           "the file is truncated or corrupt; re-encode it")


def _read_pyav(info: VideoInfo, indices: np.ndarray, fn) -> tuple[np.ndarray, list[str]]:
    """PyAV: containers with a frame index (:attr:`VideoInfo.seek_reliable`: MP4/MOV, Matroska,
    AVI) seek to the keyframe before each needed frame (:func:`_pyav_by_seeking`); others
    (MPEG-TS from broadcast, HLS and camcorders, MPEG-PS, Ogg, GIF, ...), and any file where a seek
    misses, are decoded forward from the start (:func:`_pyav_forward`). Frames are identified by
    their pts, mapped to indices with the probe's sorted pts list (the same numbering as decord),
    and each goes through ``fn`` (:func:`_frame_pipeline`) as it is decoded."""
    import av

    wanted = sorted(set(int(i) for i in indices))
    got: dict[int, np.ndarray] = {}
    container = None
    try:
        if info.seek_reliable:
            container = av.open(info.path)
            try:
                _pyav_by_seeking(container, container.streams.video[0], info, wanted, got, fn)
            except _SeekMissed:
                pass
            container.close()
            container = None
        if len(got) < len(wanted):
            container = av.open(info.path)
            _pyav_forward(container, container.streams.video[0], info, wanted, got, fn)
    except VideoDecodeError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoDecodeError(info.path, f"PyAV decoding failed: {type(e).__name__}: {e}",
                               "the file is corrupt; re-download or re-encode it") from e
    finally:
        if container is not None:
            container.close()
    return _stack(got, indices), []


def read_frames(path: str | os.PathLike, indices: Iterable[int], backend: Backend = "auto",
                info: VideoInfo | None = None, size: tuple[int, int] | None = None) -> tuple[np.ndarray, str, list[str]]:
    """Decode the given source frames, RGB uint8 ``[T, H, W, 3]`` at the coded resolution with the
    display matrix applied (rotated/mirrored as a player shows them; the SAR is corrected later, by
    the resize in :func:`sample_video`). Returns ``(frames, backend used, notes)``.

    ``size=(height, width)`` resizes each frame (bicubic, as :func:`_resize_frames`) right after it
    is decoded, so only resized frames are held in memory (what :func:`sample_video` does; the
    pixels are identical to resizing the full-size result afterwards).

    ``backend="auto"`` uses decord when installed and falls back to PyAV when decord fails on the
    file (the fallback is recorded in the notes, not hidden); odd-size files with subsampled chroma
    go to PyAV (:attr:`VideoInfo.odd_subsampled`), so ``auto`` gives the same pixels with or
    without decord. Containers without a frame index (:attr:`VideoInfo.seek_reliable` false:
    MPEG-TS ``.ts/.mts/.m2ts``, MPEG-PS ``.mpg``, Ogg, GIF, ...) go to PyAV, decoded forward from
    the start: decord 0.6 returns other frames than asked there (or fails on a single-GOP clip),
    so ``backend="decord"`` refuses them with a :class:`VideoDecodeError`.
    """
    info = info or probe(path)
    idx = np.asarray(list(indices), dtype=np.int64)
    if idx.size == 0:
        raise ValueError(f"{path}: no frame indices requested")
    if idx.min() < 0 or idx.max() >= info.n_frames:
        raise ValueError(f"{path}: frame indices must lie in [0, {info.n_frames - 1}], got {idx.min()}..{idx.max()}")
    fn = _frame_pipeline(info, size)
    if backend == "decord":
        if not decord_available():
            raise ImportError("backend='decord' but decord is not installed (pip install decord); use backend='pyav'")
        if not info.seek_reliable:
            raise VideoDecodeError(info.path, f"decord cannot decode this {info.container_format} file frame-accurately "
                                   "(the container has no frame index; decord's seeks return other frames)",
                                   "use backend='pyav' or 'auto'")
        frames, notes = _read_decord(info, idx, fn)
        return frames, "decord", notes
    if backend == "pyav":
        frames, notes = _read_pyav(info, idx, fn)
        return frames, "pyav", notes
    if backend != "auto":
        raise ValueError(f"backend={backend!r} must be 'auto', 'decord' or 'pyav'")
    if info.odd_subsampled:
        frames, notes = _read_pyav(info, idx, fn)
        return frames, "pyav", [f"odd size {info.coded_width}x{info.coded_height} with {info.pix_fmt} chroma: decoded "
                                "with PyAV (decord's chroma upsampling differs at colour edges)"] + notes
    if not info.seek_reliable:
        frames, notes = _read_pyav(info, idx, fn)
        return frames, "pyav", [f"{info.container_format} container (no frame index): decoded with PyAV from the start "
                                "(seeks there are not frame-accurate)"] + notes
    if decord_available():
        try:
            frames, notes = _read_decord(info, idx, fn)
            return frames, "decord", notes
        except VideoDecodeError as e:
            frames, notes = _read_pyav(info, idx, fn)
            return frames, "pyav", [f"decord failed ({e.problem}); decoded with PyAV"] + notes
    frames, notes = _read_pyav(info, idx, fn)
    return frames, "pyav", ["decord not installed; decoded with PyAV"] + notes


# --------------------------------------------------------------------------- public API


def sample_video(path: str | os.PathLike, cfg: SamplingConfig | None = None) -> SampledVideo:
    """Sample frames from one video per ``cfg`` (see the module docstring for the rules).

    Frames are as a player shows them (display matrix and SAR applied, module docstring);
    ``notes`` records the rotation, SAR, variable frame rate, short-clip rule and backend fallback.
    Raises :class:`VideoDecodeError` naming the file when it is missing, empty, truncated,
    corrupt, or shorter than ``cfg.min_frames`` frames (the message names the setting to change).
    """
    cfg = cfg or SamplingConfig()
    info = probe(path)
    try:
        idx, ts, select_notes = select_frames(info, cfg)
    except ValueError as e:
        raise VideoDecodeError(path, str(e)) from e
    frames, used, notes = read_frames(path, idx, cfg.backend, info=info,
                                      size=resized_size(info.height, info.width, cfg))
    return SampledVideo(
        frames=frames,
        indices=idx,
        timestamps=ts,
        source_fps=info.fps,
        width=info.width,
        height=info.height,
        n_source_frames=info.n_frames,
        backend=used,
        path=str(path),
        notes=info.notes + select_notes + notes,
        rotation=info.rotation,
        mirrored=info.mirrored,
        coded_width=info.coded_width,
        coded_height=info.coded_height,
        sample_aspect_ratio=float(info.sample_aspect_ratio),
        variable_frame_rate=info.variable_frame_rate,
        hdr=info.hdr,
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
    ``n_frames``, ``fps``, ``duration``, ``width``, ``height`` (displayed size), ``n_sampled``,
    ``rotation`` (degrees counter-clockwise), ``mirrored``, ``coded_width``, ``coded_height``,
    ``sample_aspect_ratio``, ``variable_frame_rate``, ``hdr`` (``"pq"``/``"hlg"``/None) and ``notes``
    (``"; "``-joined: rotation, SAR, VFR, HDR, short-clip rule, backend). Filter ``df[~df.ok]`` for
    the unreadable ones.
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
                               "duration": None, "width": None, "height": None, "n_sampled": None, "rotation": None,
                               "mirrored": None, "coded_width": None, "coded_height": None,
                               "sample_aspect_ratio": None, "variable_frame_rate": None, "hdr": None, "notes": ""}
        try:
            info = probe(p)
            row.update(n_frames=info.n_frames, fps=info.fps, duration=info.duration, width=info.width, height=info.height,
                       rotation=info.rotation, mirrored=info.mirrored, coded_width=info.coded_width,
                       coded_height=info.coded_height, sample_aspect_ratio=float(info.sample_aspect_ratio),
                       variable_frame_rate=info.variable_frame_rate, hdr=info.hdr, notes="; ".join(info.notes))
            try:
                idx, _, select_notes = select_frames(info, cfg)
            except ValueError as e:
                raise VideoDecodeError(p, str(e)) from e
            row["n_sampled"] = len(idx)
            row["notes"] = "; ".join(info.notes + select_notes)
            if decode:
                _, _, read_notes = read_frames(p, idx, cfg.backend, info=info,
                                               size=resized_size(info.height, info.width, cfg))
                row["notes"] = "; ".join(info.notes + select_notes + read_notes)
            row["ok"] = True
        except VideoDecodeError as e:
            row["error"] = str(e)
        rows.append(row)
    df = pd.DataFrame(rows)
    if all(v is None for v in df["video_id"]):
        df = df.drop(columns="video_id")
    return df
