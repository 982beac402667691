"""The embedded sample dataset: UltraVQA-like clips, simulated raters and rationales, no download.

``ensure_sample_dataset(size)`` writes (once, then caches) a folder in the schema of
:mod:`vqalib.data.dataset`::

    dataset.json        generator settings, counts, settings hash
    videos.jsonl        one row per clip (video_id, path, duration, fps, width, height, category, source, split)
    ratings.jsonl       one row per (video, rater, phase, dimension): score on the 9-level grid + tags
    rationales.jsonl    one row per (video, dimension): a short rationale in the paper's template style
    latent.jsonl        the generator's ground truth (latent levels, applied degradations); not part of the schema
    raters.jsonl        the generator's rater pool (bias, noise sd per phase); not part of the schema
    clips/*.mp4         H.264, 112x112, 8 fps, 4 s (32 frames): 2 fps sampling gives 8 frames

How a clip is made (formulas in ``data_cards/sample_dataset.md``): a photograph from
``skimage.data`` is the scene; a virtual camera pans/zooms over it; each of the five dimensions has
a latent level ``L`` on the grid and a severity ``sev = (5 - L) / 4`` in [0, 1] that scales named,
deliberately salient degradations (chosen to be learnable by a tiny VLM from 8 frames at 112 px,
see ``../shared/design/TINY_MODEL_NOTES.md``). Motion amplitude is not a defect: its level sets the
camera speed. Raters see the latent level through a personal bias and noise (pilot phase noisier),
tick the tags of the degradations actually applied (with some misses and false ticks), and a
rationale per dimension is written from the aggregated score, the level keyword and the tags.

Everything is seeded: same size, seed and settings give byte-identical files.

Other rating schemas (``schema=``, :mod:`vqalib.schema.rating`): the clips are the same (rendered from
the five latent levels); the raters rate the schema's dimensions instead, each dimension's latent
value a function of the five (:func:`schema_latents`: ``overall_quality`` the mean of the four quality
levels, ``visual_quality`` of aesthetic and clarity, ``temporal_consistency`` motion quality,
``text_alignment`` content, a paper dimension itself, anything else the quality mean), mapped
linearly from 1-5 onto the schema's ``[lo, hi]``; rater biases and noise scale with the span, scores
are snapped to the schema's K levels; rationales are one generic sentence with the level keyword.
The folder gets ``rating_schema.json``; the cache key includes the schema's fingerprint. The
paper's schema (the default) writes exactly the files it always did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vqalib.schema import levels as L
from vqalib.schema import rating as RS
from vqalib.core.runs import cache_dir, resolve_path

#: Bump when the generator's output changes for the same settings (part of the cache key).
GENERATOR_VERSION = "9"  # 9: screen-in-screen before clarity, low resolution upscaled bilinear; 8: blur sigma 3.5 at sev 1; 7: stutter holds <= 4 frames; 6: cues a tiny model can tell apart (issue 12; docs/training.md); 5: paper keywords

SIZES = ("smoke", "default", "large")

#: skimage.data photographs used as scenes, and the category each belongs to.
PHOTOS: dict[str, str] = {
    "astronaut": "people",
    "camera": "people",
    "chelsea": "animal",
    "cat": "animal",
    "coffee": "food",
    "rocket": "vehicle",
    "motorcycle": "vehicle",
    "hubble_deep_field": "science",
    "immunohistochemistry": "science",
    "coins": "object",
}

SIZE_PX = 112  # frame width = height
FPS = 8
N_FRAMES = 32  # 4 s
CANVAS_SHORT = 256  # photo resized so its short side has this many pixels
VIEW = 160  # canvas pixels covered by the 112-px frame at zoom 1

#: Degradation types per dimension that the generator can apply (a subset of ``levels.TAGS``).
APPLIED_TYPES: dict[str, tuple[str, ...]] = {
    "motion_quality": ("camera_shake", "stutter", "flicker"),
    "aesthetic_quality": ("exposure_error", "abnormal_colour", "poor_composition"),
    "content_quality": ("subtitle_watermark", "black_borders", "screen_in_screen"),
    "clarity_quality": ("low_resolution", "blocking", "noise"),  # blur + haze are always applied
}


@dataclass
class SynthConfig:
    """Settings of the generator. Everything here is part of the cache key.

    Strengths are given for severity 1 (level 1.0); a clip at level ``L`` gets ``sev = (5 - L)/4``
    times them. Pixel amounts are in output (112 px) frame pixels.
    """

    n_clips: dict[str, int] = field(default_factory=lambda: {"smoke": 32, "default": 800, "large": 4000})
    #: clips that also get a pilot-phase rating round (all clips get the final round)
    n_pilot_clips: dict[str, int] = field(default_factory=lambda: {"smoke": 32, "default": 240, "large": 800})
    level_correlation: float = 0.2  # correlation of the latent levels between dimensions (Gaussian copula)
    test_fraction: float = 0.2  # hash-based split by video id (see vqalib.data.dataset.split_of)
    # --- motion amplitude (camera speed; level 1.0 = static) ---
    pan_px_per_level: float = 1.5  # pan speed = (L - 1) * this, px per frame (8 fps); 6 px/frame at 5.0
    zoom_share: float = 0.3  # share of moving clips that also zoom (log-zoom rate 0.25 * speed / 56 per frame)
    # --- motion quality ---
    shake_px: float = 2.0  # per-frame i.i.d. camera jitter std (px) at sev 1 (v5: 6, which masked camera speed)
    shake_deg: float = 3.0  # per-frame rotation jitter std (degrees) at sev 1
    stutter_hold: int = 4  # frames held at sev 1: hold = 1 + round(sev * (stutter_hold - 1)) (v6: 8, which froze whole 2-fps frame pairs)
    flicker_amp: float = 0.35  # per-frame brightness gain 1 +- sev * amp * U(0.5, 1)
    flicker_always: bool = True  # a clip with a motion-quality defect always flickers, plus shake and/or stutter (v5: False)
    # --- aesthetic ---
    exposure_under: float = 0.6  # under-exposure gain 1 - sev * this
    exposure_over: float = 1.5  # over-exposure gain 1 + sev * this (then clipped)
    colour_cast: float = 0.6  # channel gain 1 + sev * this * cast direction
    tilt_deg: float = 25.0  # horizon tilt at sev 1
    cutoff_frac: float = 0.35  # subject pushed off-centre by sev * this * frame
    composition_alone: bool = False  # poor composition may be the only aesthetic defect (v5: True); False: only as a second one
    # --- content ---
    subtitle_px: int = 26  # subtitle bar height 8 + sev * this
    border_px: int = 28  # black bar thickness per side at sev 1
    pip_shrink: float = 0.45  # screen-in-screen: content scaled to 1 - sev * this
    # --- clarity (blur + haze always; one optional extra) ---
    blur_sigma: float = 3.5  # Gaussian blur sigma at sev 1 (v7: 2.5; 3.5 hid camera speed from a random vision tower, not from tiny-pretrained: docs/training.md)
    haze: float = 0.45  # blend weight towards light grey (0.7) at sev 1
    mosaic_block: int = 8  # low-resolution block size at sev 1: 1 + round(sev * (block - 1))
    crf_base: int = 20  # H.264 CRF of every clip
    crf_range: int = 24  # blocking: CRF = base + sev * range
    noise_std: float = 4.0 / 255  # noise std at sev 1 (kept small on purpose)
    # --- raters ---
    n_raters: int = 12  # rater pool size
    raters_per_clip: tuple[int, int] = (3, 4)  # min, max raters per clip and phase (same raters for all 5 dimensions)
    rater_bias_sd: float = 0.2  # per-rater bias (all dimensions)
    rater_dim_bias_sd: float = 0.1  # extra per-rater, per-dimension bias
    rater_noise: tuple[float, float] = (0.25, 0.45)  # per-rater noise sd range, final phase
    pilot_noise_factor: float = 2.2  # pilot phase: noise sd x this
    pilot_bias_factor: float = 2.0  # pilot phase: biases x this
    careless_rate: dict[str, float] = field(default_factory=lambda: {"pilot": 0.06, "final": 0.02})
    tag_hit: dict[str, float] = field(default_factory=lambda: {"pilot": 0.7, "final": 0.9})
    tag_false: dict[str, float] = field(default_factory=lambda: {"pilot": 0.12, "final": 0.05})

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def settings_hash(self, size: str, seed: int, schema: "RS.RatingSchema | str | None" = None) -> str:
        """Hash of everything that decides the output (settings, size, seed, generator version, and the
        rating schema's fingerprint when it is not the paper's)."""
        d = {"config": self.to_dict(), "size": size, "seed": seed, "version": GENERATOR_VERSION}
        s = RS.resolve(schema)
        if not s.is_paper:
            d["rating_schema"] = s.fingerprint()
        blob = json.dumps(d, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------
# cache entry point


def ensure_sample_dataset(size: str = "default", seed: int = 0, root: str | os.PathLike | None = None,
                          config: SynthConfig | None = None, progress: bool = True,
                          schema: "RS.RatingSchema | str | None" = None) -> Path:
    """Return the folder of the sample dataset, generating it first if needed.

    The dataset lives in ``cache_dir()/sample-<size>-seed<seed>/<settings hash>/`` (or in ``root``
    when given; a relative ``root`` is taken from the project root). It is reused when its ``dataset.json`` carries the same settings hash and is
    complete; otherwise it is generated into a temporary folder and moved into place, so a
    half-written dataset is never seen by another process. ``schema``: the rating schema the raters
    use (a schema, preset name or file; default the paper's), part of the cache key and of the
    cache folder's name (``sample-<size>-seed<seed>-<schema name>``) when not the paper's.
    """
    if size not in SIZES:
        raise ValueError(f"unknown sample size {size!r}; use one of {SIZES}")
    cfg = config or SynthConfig()
    schema = RS.resolve(schema)
    key = cfg.settings_hash(size, seed, schema)
    sub = f"sample-{size}-seed{seed}" + ("" if schema.is_paper else f"-{schema.name}")
    target = resolve_path(root) if root is not None else cache_dir() / sub / key
    if _is_complete(target, key):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{target.name}.lock"):  # a second process waits instead of generating too
        if _is_complete(target, key):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        try:
            generate_dataset(tmp, size=size, seed=seed, config=cfg, progress=progress, schema=schema)
            tmp.chmod(0o755)  # mkdtemp makes it private
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def dataset_root(data_dir: str | os.PathLike = "", size: str = "default", seed: int = 0,
                 schema: "RS.RatingSchema | str | None" = None) -> Path:
    """The dataset folder a notebook or trainer works on: ``data_dir`` (relative paths from the project
    root) when given, else the embedded sample dataset of ``size``, ``seed`` and ``schema`` (default the
    paper's; generated on first use)."""
    if data_dir:
        return resolve_path(data_dir)
    return Path(ensure_sample_dataset(size=size, seed=seed, schema=schema))


@contextmanager
def _lock(path: Path):
    """An exclusive advisory file lock (POSIX ``flock``; no-op where ``fcntl`` is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_complete(path: Path, key: str) -> bool:
    meta = path / "dataset.json"
    if not meta.is_file():
        return False
    try:
        info = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return info.get("settings_hash") == key and info.get("complete") is True


# ----------------------------------------------------------------------------------------------
# generation


def generation_workers(n_clips: int) -> int:
    """Processes that render clips: 1 below :data:`PARALLEL_MIN_CLIPS` clips (starting workers costs more
    than it saves) or off Linux, else the CPUs this process may use, at most 8; ``$VQALIB_GEN_WORKERS``
    overrides it, and an explicit ``workers=`` argument of :func:`generate_dataset` / :func:`map_clips` overrides
    both (off Linux both are ignored: :func:`map_clips` renders in the calling process there)."""
    env = os.environ.get("VQALIB_GEN_WORKERS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"$VQALIB_GEN_WORKERS={env!r}: must be an integer >= 1")
        return int(env)
    if n_clips < PARALLEL_MIN_CLIPS or not _CAN_FORK:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus))


#: Below this many clips :func:`generation_workers` renders in the calling process.
PARALLEL_MIN_CLIPS = 100


def map_clips(fn, jobs: list, workers: int | None = None):
    """``fn(job)`` for every job, results in the order of ``jobs``, in ``workers`` processes (default
    :func:`generation_workers`). Each job carries its own seeds, so the results do not depend on the
    number of processes (``tests/unit/test_synth.py`` checks byte-identical datasets)."""
    workers = generation_workers(len(jobs)) if workers is None else int(workers)
    if workers <= 1 or len(jobs) < 2 or not _CAN_FORK:
        yield from map(fn, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork, as torch's DataLoader does on Linux (the renderer runs torch single-threaded): "spawn" would
    # re-run the caller's script in every worker, which breaks any script without an
    # ``if __name__ == "__main__":`` guard (tests/unit/test_synth.py runs such a script)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as ex:
        yield from ex.map(fn, jobs, chunksize=4)


#: Worker processes are forked, which is safe on Linux only (macOS: system libraries are not fork-safe);
#: elsewhere :func:`map_clips` renders in the calling process.
_CAN_FORK = sys.platform.startswith("linux")


def _plan_render_write(job: tuple) -> dict[str, Any]:
    path, photo, lv, cfg, plan_seed, render_seed = job
    plan = plan_clip(lv, cfg, np.random.default_rng(plan_seed))
    frames = render_clip(photo, plan, cfg, np.random.default_rng(render_seed))
    write_mp4(path, frames, fps=FPS, crf=plan["crf"])
    return plan


def generate_dataset(out: str | os.PathLike, size: str = "default", seed: int = 0,
                     config: SynthConfig | None = None, progress: bool = True, workers: int | None = None,
                     schema: "RS.RatingSchema | str | None" = None) -> Path:
    """Write the full sample dataset into ``out`` (no caching; see :func:`ensure_sample_dataset`).

    Clips are rendered and encoded in ``workers`` processes (default :func:`generation_workers`); the
    files are the same for any number. A relative ``out`` is taken from the project root, as in
    :func:`vqalib.data.dataset.load_dataset` (:func:`vqalib.core.runs.resolve_path`), so the folder written is
    the folder read back from any working directory. ``schema`` (default the paper's): the rating
    schema the simulated raters use (module docstring); saved as ``rating_schema.json`` when not the paper's."""
    cfg = config or SynthConfig()
    schema = RS.resolve(schema)
    out = resolve_path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    n = int(cfg.n_clips[size])
    n_pilot = min(int(cfg.n_pilot_clips[size]), n)
    rng = np.random.default_rng([seed, 0])
    start = time.perf_counter()

    levels = sample_latent_levels(n, cfg.level_correlation, rng)  # [n, 5] on the grid
    photos = list(PHOTOS)
    photo_idx = rng.integers(0, len(photos), size=n)
    from vqalib.data.dataset import split_of

    video_rows, latent_rows = [], []
    bar = _progress(n, progress, f"sample-{size}: clips")
    jobs = [(out / "clips" / f"syn{i:05d}.mp4", photos[int(photo_idx[i])],
             {k: float(levels[i, j]) for j, k in enumerate(L.DIMENSION_KEYS)}, cfg, [seed, 1, i], [seed, 2, i])
            for i in range(n)]
    for i, plan in enumerate(map_clips(_plan_render_write, jobs, workers)):
        vid, photo = f"syn{i:05d}", jobs[i][1]
        video_rows.append({
            "video_id": vid, "path": f"clips/{vid}.mp4", "duration": N_FRAMES / FPS, "fps": float(FPS),
            "width": SIZE_PX, "height": SIZE_PX, "category": PHOTOS[photo], "source": f"skimage.data.{photo}",
            "split": split_of(vid, cfg.test_fraction),
        })
        latent_rows.append({"video_id": vid, "levels": plan["levels"], "applied": plan["applied"], "params": plan["params"],
                            "crf": plan["crf"]})
        bar.update(1)
    bar.close()

    pilot_ids = set(np.sort(rng.choice(n, size=n_pilot, replace=False)).tolist()) if n_pilot else set()
    if schema.is_paper:
        ratings, raters = simulate_ratings(latent_rows, pilot_ids, cfg, np.random.default_rng([seed, 3]))
        rationales = write_rationales(latent_rows, ratings, np.random.default_rng([seed, 4]))
    else:
        for lat in latent_rows:
            lat["schema_levels"] = schema_latents(lat["levels"], schema)
        ratings, raters = simulate_ratings(latent_rows, pilot_ids, cfg, np.random.default_rng([seed, 3]), schema=schema)
        rationales = write_rationales(latent_rows, ratings, np.random.default_rng([seed, 4]), schema=schema)

    _write_jsonl(out / "videos.jsonl", video_rows)
    _write_jsonl(out / "ratings.jsonl", ratings)
    _write_jsonl(out / "rationales.jsonl", rationales)
    _write_jsonl(out / "latent.jsonl", latent_rows)
    _write_jsonl(out / "raters.jsonl", raters)
    meta = {
        "name": f"vqalib sample dataset ({size})",
        "generator": "vqalib.synth", "generator_version": GENERATOR_VERSION,
        "size": size, "seed": seed, "settings_hash": cfg.settings_hash(size, seed, schema), "config": cfg.to_dict(),
        "clip": {"width": SIZE_PX, "height": SIZE_PX, "fps": FPS, "frames": N_FRAMES, "codec": "h264"},
        "counts": {"videos": n, "ratings": len(ratings), "rationales": len(rationales), "pilot_videos": n_pilot},
        "complete": True,
    }
    if not schema.is_paper:
        meta["rating_schema"] = {"name": schema.name, "fingerprint": schema.fingerprint()}
        schema.save(out)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    # wall time varies between runs: kept out of dataset.json so the dataset files stay byte-identical
    (out / "generation_time.txt").write_text(f"{time.perf_counter() - start:.1f} s\n")
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=False) + "\n")


def _progress(total: int, enabled: bool, desc: str):
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=desc, leave=False)
        except ImportError:  # pragma: no cover
            pass

    class _Null:
        def update(self, k: int) -> None: ...
        def close(self) -> None: ...

    return _Null()


def sample_latent_levels(n: int, correlation: float, rng: np.random.Generator) -> np.ndarray:
    """Latent levels ``[n, 5]`` on the grid, uniform marginals, mild correlation (Gaussian copula).

    ``z ~ N(0, (1 - rho) I + rho 11^T)``, ``u = Phi(z)``, level index ``floor(9 u)``.
    """
    from scipy.stats import norm

    d = len(L.DIMENSION_KEYS)
    cov = (1 - correlation) * np.eye(d) + correlation * np.ones((d, d))
    z = rng.multivariate_normal(np.zeros(d), cov, size=n, method="cholesky")
    idx = np.minimum((norm.cdf(z) * L.N_LEVELS).astype(int), L.N_LEVELS - 1)
    return L.LEVELS[idx]


def severity(level: float) -> float:
    """Degradation severity of a latent level: ``(5 - L) / 4`` (0 at 5.0, 1 at 1.0)."""
    return (L.SCORE_MAX - level) / (L.SCORE_MAX - L.SCORE_MIN)


def amplitude_tag(level: float) -> str:
    """Motion-amplitude tag for a level: 1.0 static, <=2.5 slight, <=3.5 moderate, else large."""
    if level <= 1.0:
        return "static"
    if level <= 2.5:
        return "slight_motion"
    if level <= 3.5:
        return "moderate_motion"
    return "large_motion"


def plan_clip(lv: dict[str, float], cfg: SynthConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Choose which named degradations a clip gets and their parameters from its latent levels.

    Per defect dimension with ``sev > 0``: one primary type, plus a second with probability 0.5
    (clarity: blur + haze always, plus one extra type with probability 0.7). Stutter is only chosen
    when the camera moves (level of motion amplitude >= 2.5): frozen frames of a static shot are
    invisible. Returns ``{"applied": {dim: [tags]}, "params": {...}, "crf": int}``.
    """
    applied: dict[str, list[str]] = {k: [] for k in L.DIMENSION_KEYS}
    p: dict[str, Any] = {}
    # the scene parameters below come from their own stream, so they do not depend on how many draws the
    # level-dependent choices made (a clip differs from its clean version only by its degradations)
    prm = np.random.default_rng(int(rng.integers(0, 2**62)))
    speed = (lv["motion_amplitude"] - 1.0) * cfg.pan_px_per_level
    angle = float(rng.uniform(0, 2 * np.pi))
    zooms = speed > 0 and rng.random() < cfg.zoom_share
    p["camera"] = {"speed_px": round(speed, 3), "direction_rad": round(angle, 4),
                   "zoom_rate": round((1 if rng.random() < 0.5 else -1) * 0.25 * speed / 56, 5) if zooms else 0.0}
    applied["motion_amplitude"] = [amplitude_tag(lv["motion_amplitude"])]

    def choose(dim: str, allowed: tuple[str, ...]) -> list[str]:
        if severity(lv[dim]) <= 0:
            return []
        first = str(rng.choice(allowed))
        rest = [t for t in allowed if t != first]
        picked = [first]
        if rest and rng.random() < 0.5:
            picked.append(str(rng.choice(rest)))
        return [t for t in allowed if t in picked]  # stable order

    mq_allowed = APPLIED_TYPES["motion_quality"] if lv["motion_amplitude"] >= 2.5 else ("camera_shake", "flicker")
    if cfg.flicker_always:  # flicker (temporal brightness instability) + one or two of the others
        others = choose("motion_quality", tuple(t for t in mq_allowed if t != "flicker"))
        applied["motion_quality"] = [t for t in APPLIED_TYPES["motion_quality"] if t in others or t == "flicker"] \
            if others else []
    else:
        applied["motion_quality"] = choose("motion_quality", mq_allowed)
    if cfg.composition_alone:
        applied["aesthetic_quality"] = choose("aesthetic_quality", APPLIED_TYPES["aesthetic_quality"])
    else:  # a photometric defect (exposure, colour) first; tilt / cut-off, hard to see at 112 px, only as a second one
        applied["aesthetic_quality"] = choose("aesthetic_quality", ("exposure_error", "abnormal_colour"))
        if len(applied["aesthetic_quality"]) == 1 and rng.random() < 0.5:
            applied["aesthetic_quality"].append("poor_composition")
    applied["content_quality"] = choose("content_quality", APPLIED_TYPES["content_quality"])
    sev_c = severity(lv["clarity_quality"])
    if sev_c > 0:
        applied["clarity_quality"] = ["blur"]
        if rng.random() < 0.7:
            applied["clarity_quality"].append(str(rng.choice(APPLIED_TYPES["clarity_quality"])))
    # parameters of the optional choices (drawn always, from the scene stream)
    p["exposure_dir"] = "under" if prm.random() < 0.5 else "over"
    casts = np.array([[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1], [1, 1, -1.0], [1, -1, 1.0]])
    p["cast"] = casts[prm.integers(0, len(casts))].tolist()
    p["tilt_sign"] = 1 if prm.random() < 0.5 else -1
    p["cutoff_dir_rad"] = round(float(prm.uniform(0, 2 * np.pi)), 4)
    p["border_kind"] = "letterbox" if prm.random() < 0.6 else "pillarbox"
    p["start_offset"] = prm.uniform(-0.15, 0.15, size=2).round(4).tolist()  # of the canvas
    crf = cfg.crf_base
    if "blocking" in applied["clarity_quality"]:
        crf = int(round(cfg.crf_base + sev_c * cfg.crf_range))
    return {"applied": applied, "params": p, "crf": crf, "levels": lv}


@lru_cache(maxsize=None)
def _canvas(photo: str) -> np.ndarray:
    """The scene: an skimage.data photograph as float32 RGB [H, W, 3], short side 256 px."""
    import skimage.data as skd
    from skimage.color import gray2rgb
    from skimage.transform import resize

    img = skd.stereo_motorcycle()[0] if photo == "motorcycle" else getattr(skd, photo)()
    if img.ndim == 2:
        img = gray2rgb(img)
    img = img[..., :3].astype(np.float32) / 255.0
    h, w = img.shape[:2]
    s = CANVAS_SHORT / min(h, w)
    out = resize(img, (int(round(h * s)), int(round(w * s))), anti_aliasing=True, order=1)
    return np.ascontiguousarray(out.astype(np.float32))


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


@contextmanager
def _torch_threads(n: int):
    """Run torch ops with ``n`` intra-op threads, then restore the caller's setting. The renderer uses one:
    some ops (``area`` interpolation) round differently with other thread counts, which made the clips
    depend on the machine's cores, and one thread is also the faster for 112-px frames."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


def render_clip(photo: str, plan: dict[str, Any], cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Render the 32 frames ``uint8 [T, 112, 112, 3]`` of one clip from its plan (see the data card).
    Pixel values do not depend on the number of CPU cores (torch runs single-threaded here)."""
    with _torch_threads(1):
        return _render_clip(photo, plan, cfg, rng)


def _render_clip(photo: str, plan: dict[str, Any], cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """:func:`render_clip`'s work, one named step per stage, in this order (the order of the random draws,
    which :data:`GENERATOR_VERSION` and ``tests/unit/test_synth.py``'s pinned hash hold fixed):

    time index (stutter) -> camera (pan/zoom, tilt, cut-off, shake: draws) -> filming the canvas ->
    screen-in-screen -> clarity (blur, haze, low resolution, noise: draws) -> aesthetic photometry
    (exposure, colour cast) -> flicker (draws, always) -> 8-bit frames -> post-production overlays
    (borders, subtitles/watermark: draws). Compression is applied by the encoder (CRF).
    """
    import torch

    p, ap = plan["params"], plan["applied"]
    sev = {k: severity(v) for k, v in plan["levels"].items()}
    canvas = _canvas(photo)
    tau = _time_index(ap, sev, cfg)
    centre, zoom, angle = _camera_path(canvas.shape[:2], tau, p, ap, sev, cfg, rng)
    with torch.no_grad():
        fr = _film(canvas, centre, zoom, angle)  # [T, 3, H, W] in [0, 1]
        if "screen_in_screen" in ap["content_quality"]:
            fr = _screen_in_screen(fr, sev["content_quality"], cfg)
        fr = _clarity(fr, ap, sev["clarity_quality"], cfg, rng)
        fr = _photometry(fr, p, ap, sev["aesthetic_quality"], cfg)
        fr = _flicker(fr, tau, ap, sev["motion_quality"], cfg, rng)
        fr = fr.clamp(0, 1)
        frames = (fr.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return _post_production(frames, p, ap, sev["content_quality"], cfg, rng)


def _time_index(ap: dict[str, list[str]], sev: dict[str, float], cfg: SynthConfig) -> np.ndarray:
    """The source time of each of the :data:`N_FRAMES` frames, float64 ``[T]``: ``t``, or, with stutter,
    ``t`` held for ``1 + round(sev * (stutter_hold - 1))`` frames (frozen / dropped frames)."""
    t = np.arange(N_FRAMES, dtype=np.float64)
    tau = t.copy()
    if "stutter" in ap["motion_quality"]:
        hold = 1 + int(round(sev["motion_quality"] * (cfg.stutter_hold - 1)))
        tau = np.floor(t / hold) * hold
    return tau


def _camera_path(canvas_hw: tuple[int, int], tau: np.ndarray, p: dict[str, Any], ap: dict[str, list[str]],
                 sev: dict[str, float], cfg: SynthConfig, rng: np.random.Generator):
    """The virtual camera per frame, in canvas pixels: ``(centre [T, 2], zoom [T], angle [T] rad)``.

    Pan at the plan's speed and direction from the start offset, zoom ``exp(rate * tau)``; poor composition
    tilts the frame and shifts it towards a cut-off; camera shake adds Gaussian jitter to the centre and the
    angle (two draws: ``[T, 2]`` then ``[T]``), held with the frames of a stutter."""
    ch, cw = canvas_hw
    scale = VIEW / SIZE_PX
    cam = p["camera"]
    v = cam["speed_px"] * scale * np.array([np.cos(cam["direction_rad"]), np.sin(cam["direction_rad"])])
    centre0 = np.array([cw / 2, ch / 2]) + np.array(p["start_offset"]) * np.array([cw, ch])
    tilt = 0.0
    if "poor_composition" in ap["aesthetic_quality"]:
        s_a = sev["aesthetic_quality"]
        tilt = p["tilt_sign"] * np.deg2rad(cfg.tilt_deg) * s_a
        d = p["cutoff_dir_rad"]
        centre0 = centre0 + cfg.cutoff_frac * s_a * VIEW * np.array([np.cos(d), np.sin(d)]) * 1.4
    centre = centre0[None, :] + tau[:, None] * v[None, :]
    zoom = np.exp(cam["zoom_rate"] * tau) * (1.6 if cam["zoom_rate"] < 0 else 1.0)
    angle = np.full(len(tau), tilt)
    if "camera_shake" in ap["motion_quality"]:
        s_m = sev["motion_quality"]
        jit = rng.normal(0, cfg.shake_px * s_m * scale, size=(len(tau), 2))
        rot = rng.normal(0, np.deg2rad(cfg.shake_deg) * s_m, size=len(tau))
        idx = tau.astype(int)  # held frames keep their jitter
        centre = centre + jit[idx]
        angle = angle + rot[idx]
    return centre, zoom, angle


def _film(canvas: np.ndarray, centre: np.ndarray, zoom: np.ndarray, angle: np.ndarray):
    """Sample the canvas along the camera path: float32 tensor ``[T, 3, 112, 112]`` (bilinear, reflected
    borders; grid ``canvas = centre + (scale/zoom) R(angle) (u, v)``, ``align_corners=False``)."""
    import torch
    import torch.nn.functional as F

    ch, cw = canvas.shape[:2]
    scale = VIEW / SIZE_PX
    u = np.arange(SIZE_PX) - (SIZE_PX - 1) / 2
    uu, vv = np.meshgrid(u, u, indexing="xy")
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    k = (scale / zoom)[:, None, None]
    x = centre[:, 0, None, None] + k * (cos * uu - sin * vv)
    y = centre[:, 1, None, None] + k * (sin * uu + cos * vv)
    grid = np.stack([(2 * x + 1) / cw - 1, (2 * y + 1) / ch - 1], axis=-1).astype(np.float32)
    src = torch.from_numpy(canvas).permute(2, 0, 1)[None].expand(len(centre), -1, -1, -1)
    return F.grid_sample(src, torch.from_numpy(grid), mode="bilinear", padding_mode="reflection", align_corners=False)


def _screen_in_screen(fr, s_k: float, cfg: SynthConfig):
    """The scene filmed off a monitor: the picture shrunk by ``pip_shrink * sev`` inside a dark frame with a
    light bezel line. It comes before clarity, photometry and flicker, which then apply to the whole captured
    frame, monitor included (version 9; before, the shrink came last and scaled the blur down with the picture)."""
    import torch
    import torch.nn.functional as F

    inner = max(16, int(round(SIZE_PX * (1 - cfg.pip_shrink * s_k))))
    small = F.interpolate(fr, size=(inner, inner), mode="bilinear", align_corners=False, antialias=True)
    bg = torch.full_like(fr, 0.18)
    bg[:, 1] = 0.22  # a dark "monitor" frame with a light bezel line
    o = (SIZE_PX - inner) // 2
    bg[:, :, max(0, o - 2):o + inner + 2, max(0, o - 2):o + inner + 2] = 0.75
    bg[:, :, o:o + inner, o:o + inner] = small
    return bg


def _clarity(fr, ap: dict[str, list[str]], s_c: float, cfg: SynthConfig, rng: np.random.Generator):
    """Blur (sigma ``blur_sigma * sev``) and haze (towards 0.7 by ``haze * sev``) when ``sev > 0``, then low
    resolution (an ``area`` downscale by up to ``mosaic_block``, bilinear upscale) and Gaussian noise (one draw
    ``[T, 3, H, W]``) where applied."""
    import torch
    import torch.nn.functional as F

    if s_c > 0:
        fr = _gaussian_blur(fr, cfg.blur_sigma * s_c)
        w = cfg.haze * s_c
        fr = fr * (1 - w) + 0.7 * w
        if "low_resolution" in ap["clarity_quality"]:
            b = 1 + int(round(s_c * (cfg.mosaic_block - 1)))
            small = F.interpolate(fr, size=(max(1, round(SIZE_PX / b)),) * 2, mode="area")
            # a player's bilinear upscale: soft, like the blur (version 9; nearest-neighbour blocks
            # added sharp edges, which read as detail)
            fr = F.interpolate(small, size=(SIZE_PX, SIZE_PX), mode="bilinear", align_corners=False)
    if "noise" in ap["clarity_quality"]:
        noise = rng.standard_normal(size=(len(fr), 3, SIZE_PX, SIZE_PX), dtype=np.float32)
        fr = fr + torch.from_numpy(noise) * (cfg.noise_std * s_c)
    return fr


def _photometry(fr, p: dict[str, Any], ap: dict[str, list[str]], s_a: float, cfg: SynthConfig):
    """Aesthetic photometry: an exposure gain (under: ``1 - exposure_under * sev``, over: ``1 + exposure_over
    * sev``) and a colour cast (per-channel gain ``1 + colour_cast * sev * cast``), where applied."""
    import torch

    if "exposure_error" in ap["aesthetic_quality"]:
        gain = 1 - cfg.exposure_under * s_a if p["exposure_dir"] == "under" else 1 + cfg.exposure_over * s_a
        fr = fr * gain
    if "abnormal_colour" in ap["aesthetic_quality"]:
        g = 1 + cfg.colour_cast * s_a * torch.tensor(p["cast"], dtype=torch.float32)
        fr = fr * g[None, :, None, None]
    return fr


def _flicker(fr, tau: np.ndarray, ap: dict[str, list[str]], s_m: float, cfg: SynthConfig, rng: np.random.Generator):
    """Brightness flicker: a gain ``1 + flicker_amp * sev * (±1 * U(0.5, 1))`` per source frame. The signs and
    sizes are drawn for every clip, flicker or not, so the draws after it do not depend on the plan."""
    import torch

    flick = rng.choice([-1.0, 1.0], size=len(tau)) * rng.uniform(0.5, 1.0, size=len(tau))
    if "flicker" in ap["motion_quality"]:
        gains = 1 + cfg.flicker_amp * s_m * flick[tau.astype(int)]
        fr = fr * torch.from_numpy(gains.astype(np.float32))[:, None, None, None]
    return fr


def _post_production(frames: np.ndarray, p: dict[str, Any], ap: dict[str, list[str]], s_k: float, cfg: SynthConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """Content overlays added after filming (static, crisp) on the 8-bit frames: black borders of
    ``round(border_px * sev)`` pixels (letterbox: top and bottom; pillarbox: left and right), then a burnt-in
    subtitle bar and watermark (:func:`_overlay_text`; draws), where applied."""
    if "black_borders" in ap["content_quality"]:
        b = int(round(cfg.border_px * s_k))
        if b > 0:
            if p["border_kind"] == "letterbox":
                frames[:, :b] = 0
                frames[:, SIZE_PX - b:] = 0
            else:
                frames[:, :, :b] = 0
                frames[:, :, SIZE_PX - b:] = 0
    if "subtitle_watermark" in ap["content_quality"]:
        frames = _overlay_text(frames, s_k, cfg, rng)
    return frames


def _gaussian_blur(fr, sigma: float):
    """Gaussian blur (spatial axes only) of a ``[T, C, H, W]`` tensor, reflect borders (scipy: fast on CPU)."""
    import torch
    from scipy.ndimage import gaussian_filter

    if sigma < 0.3:
        return fr
    return torch.from_numpy(gaussian_filter(fr.numpy(), (0, 0, sigma, sigma), mode="reflect", truncate=3.0))


_CAPTIONS = ("subscribe now", "LIVE  breaking news", "episode 12", "follow for more", "(music playing)",
             "www.example.tv", "replay  HD")


def _overlay_text(frames: np.ndarray, s_k: float, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Burn in a subtitle bar at the bottom and a watermark at the top right (static over time).

    Bar height ``8 + sev * subtitle_px``, bar opacity ``0.5 + 0.4 sev``; watermark opacity ``0.3 + 0.6 sev``.
    """
    from PIL import Image, ImageDraw

    h = int(round(8 + s_k * cfg.subtitle_px))
    layer = Image.new("RGBA", (SIZE_PX, SIZE_PX), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle([0, SIZE_PX - h, SIZE_PX, SIZE_PX], fill=(0, 0, 0, int(255 * (0.5 + 0.4 * s_k))))
    text = _CAPTIONS[int(rng.integers(0, len(_CAPTIONS)))]
    draw.text((4, SIZE_PX - h + max(0, (h - 12) // 2)), text, fill=(255, 255, 255, 255), font=_font(max(8, min(14, h - 2))))
    wm = "TV+" if rng.random() < 0.5 else "@clip"
    draw.text((SIZE_PX - 40, 3), wm, fill=(255, 255, 255, int(255 * (0.3 + 0.6 * s_k))), font=_font(11 + int(6 * s_k)))
    rgba = np.asarray(layer, dtype=np.float32) / 255.0
    a = rgba[..., 3:4]
    out = frames.astype(np.float32) * (1 - a)[None] + (rgba[..., :3] * 255.0 * a)[None]
    return (out + 0.5).clip(0, 255).astype(np.uint8)


def rgb_to_yuv420p(img: np.ndarray) -> np.ndarray:
    """BT.601 limited-range RGB -> planar YUV 4:2:0 as PyAV's ``yuv420p`` array ``[H * 3/2, W]``.

    Done here in numpy (chroma = mean of each 2x2 block) rather than by swscale, whose first call in
    a process can round differently from later calls, which made clips not byte-reproducible.
    """
    x = img.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    h, w = y.shape

    def sub(c):
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [np.rint(y), np.rint(sub(cb)).reshape(h // 4, w), np.rint(sub(cr)).reshape(h // 4, w)]
    return np.clip(np.concatenate(planes, axis=0), 0, 255).astype(np.uint8)


#: x264 settings of every clip: single thread, no lookahead, no B-frames, no weighted prediction.
X264_PARAMS = "threads=1:rc-lookahead=0:no-mbtree=1:weightp=0:bframes=0:scenecut=0"


def _yuv_frame(img: np.ndarray):
    """A PyAV yuv420p frame whose row padding (linesize > width) is zero, not left uninitialised."""
    import av

    h, w = img.shape[:2]
    yuv = rgb_to_yuv420p(img)
    planes = [yuv[:h], yuv[h:h + h // 4].reshape(h // 2, w // 2), yuv[h + h // 4:].reshape(h // 2, w // 2)]
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, arr in zip(frame.planes, planes):
        buf = np.zeros((plane.height, plane.line_size), dtype=np.uint8)
        buf[:, :arr.shape[1]] = arr
        plane.update(buf.tobytes())
    return frame


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS, crf: int = 20) -> Path:
    """Encode ``uint8 [T, H, W, 3]`` frames (H, W multiples of 4) as H.264 yuv420p mp4 with PyAV.

    Colour conversion in numpy (:func:`rgb_to_yuv420p`), zeroed row padding and a single-threaded
    encoder without lookahead (:data:`X264_PARAMS`) keep the output byte-identical for identical frames.
    """
    import av

    path = Path(path)
    t, h, w = frames.shape[:3]
    if h % 4 or w % 4:
        raise ValueError(f"{path}: frame size {w}x{h} must be a multiple of 4 for yuv420p")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # x264 with several threads is not byte-reproducible
        # the lookahead (mbtree, B-frame decision, weighted prediction) made ~1 clip in 10 differ
        # between runs of the same frames; without it the output is byte-identical (tested)
        stream.options = {"crf": str(int(crf)), "preset": "veryfast", "threads": "1",
                          "x264-params": X264_PARAMS}
        for img in frames:
            for packet in stream.encode(_yuv_frame(img)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ----------------------------------------------------------------------------------------------
# simulated raters


def simulate_ratings(latent_rows: list[dict], pilot_ids: set[int], cfg: SynthConfig,
                     rng: np.random.Generator,
                     schema: "RS.RatingSchema | str | None" = None) -> tuple[list[dict], list[dict]]:
    """Ratings rows for every clip (final phase) and the pilot clips (pilot phase).

    Rater ``r`` has a bias ``b_r ~ N(0, rater_bias_sd)``, a per-dimension bias
    ``b_rd ~ N(0, rater_dim_bias_sd)`` and a noise sd ``s_r ~ U(rater_noise)``; in the pilot phase
    biases are x ``pilot_bias_factor`` and noise x ``pilot_noise_factor``. A rating is
    ``snap_to_grid(L + b_r + b_rd + s_r * e)``, except that with probability ``careless_rate`` it is a
    uniformly random level. Tags: each applied tag is ticked with probability ``tag_hit``, a tag
    not applied with probability ``tag_false``; a rater who gives 5.0 ticks none. Motion amplitude's
    tag is the rater's own amount word for their score.

    ``schema`` (default the paper's): another schema's dimensions are rated around
    ``lat["schema_levels"]`` (:func:`schema_latents`), biases and noise times ``span / 4``, scores
    snapped to its levels (careless: a uniformly random level); tags are the dimension's tags among
    the degradations applied to the paper dimensions it derives from.
    """
    schema = RS.resolve(schema)
    keys = schema.keys
    unit = schema.span / (L.SCORE_MAX - L.SCORE_MIN)  # rater error in schema units per paper unit (1 on the paper's)
    latent = "levels" if schema.is_paper else "schema_levels"
    R = cfg.n_raters
    bias = rng.normal(0, cfg.rater_bias_sd, size=R) * unit
    dim_bias = rng.normal(0, cfg.rater_dim_bias_sd, size=(R, len(keys))) * unit
    noise_sd = rng.uniform(*cfg.rater_noise, size=R) * unit
    rows: list[dict] = []
    lo, hi = cfg.raters_per_clip
    for phase in ("pilot", "final"):
        nf = cfg.pilot_noise_factor if phase == "pilot" else 1.0
        bf = cfg.pilot_bias_factor if phase == "pilot" else 1.0
        for i, lat in enumerate(latent_rows):
            if phase == "pilot" and i not in pilot_ids:
                continue
            k = int(rng.integers(lo, hi + 1))
            raters = np.sort(rng.choice(R, size=k, replace=False))
            for r in raters:
                for j, dim in enumerate(keys):
                    raw = lat[latent][dim] + bf * (bias[r] + dim_bias[r, j]) + nf * noise_sd[r] * rng.normal()
                    score = float(schema.snap(raw))
                    if rng.random() < cfg.careless_rate[phase]:
                        score = float(schema.values[rng.integers(0, schema.n_levels)])
                    tags = _rater_tags(dim, lat["applied"][dim], score, phase, cfg, rng) if schema.is_paper else \
                        _schema_rater_tags(schema, dim, lat, score, phase, cfg, rng)
                    rows.append({"video_id": lat["video_id"], "rater": f"r{r:02d}", "phase": phase,
                                 "dimension": dim, "score": score, "tags": tags, "comment": ""})
    raters_truth = [{"rater": f"r{r:02d}", "bias": round(float(bias[r]), 4),
                     "dimension_bias": {d: round(float(dim_bias[r, j]), 4) for j, d in enumerate(keys)},
                     "noise_sd_final": round(float(noise_sd[r]), 4),
                     "noise_sd_pilot": round(float(noise_sd[r] * cfg.pilot_noise_factor), 4)} for r in range(R)]
    return rows, raters_truth


#: Which paper dimensions a schema dimension's latent value is the mean of (by key; see :func:`schema_latents`).
LATENT_SOURCES: dict[str, tuple[str, ...]] = {
    "overall_quality": ("motion_quality", "aesthetic_quality", "content_quality", "clarity_quality"),
    "visual_quality": ("aesthetic_quality", "clarity_quality"),
    "technical_quality": ("motion_quality", "clarity_quality"),
    "technical": ("motion_quality", "clarity_quality"),
    "aesthetic": ("aesthetic_quality",),
    "temporal_consistency": ("motion_quality",),
    "text_alignment": ("content_quality",),
    **{k: (k,) for k in L.DIMENSION_KEYS},
}


def latent_sources(key: str) -> tuple[str, ...]:
    """The paper dimensions whose latent levels a schema dimension's latent value averages
    (:data:`LATENT_SOURCES`; any other key: the four quality dimensions)."""
    return LATENT_SOURCES.get(key, LATENT_SOURCES["overall_quality"])


def schema_latents(levels: dict[str, float], schema: "RS.RatingSchema") -> dict[str, float]:
    """A clip's latent value per schema dimension: the mean of its source levels (1-5), mapped linearly
    onto the schema's ``[lo, hi]`` (not snapped)."""
    out = {}
    for d in schema.keys:
        m = float(np.mean([levels[k] for k in latent_sources(d)]))
        out[d] = schema.lo + schema.span * (m - L.SCORE_MIN) / (L.SCORE_MAX - L.SCORE_MIN)
    return out


def _schema_rater_tags(schema: "RS.RatingSchema", dim: str, lat: dict, score: float, phase: str, cfg: SynthConfig,
                       rng: np.random.Generator) -> list[str]:
    """A rater's tags on another schema's dimension: its own tags among the degradations applied to the paper
    dimensions it derives from, each ticked with probability ``tag_hit``; none at the top level."""
    valid = schema.dimension(dim).tags
    applied = [t for src in latent_sources(dim) for t in lat["applied"].get(src, []) if t in valid]
    draws = rng.random(len(valid))
    return [] if score >= schema.hi else [t for t, u in zip(valid, draws) if t in applied and u < cfg.tag_hit[phase]]


def _rater_tags(dim: str, applied: list[str], score: float, phase: str, cfg: SynthConfig,
                rng: np.random.Generator) -> list[str]:
    draws = rng.random(len(L.TAGS[dim]))
    if dim == "motion_amplitude":
        return [amplitude_tag(score)]
    if score >= L.SCORE_MAX:
        return []
    out = []
    for t, u in zip(L.TAGS[dim], draws):
        if (t in applied and u < cfg.tag_hit[phase]) or (t not in applied and u < cfg.tag_false[phase]):
            out.append(t)
    return out


# ----------------------------------------------------------------------------------------------
# rationales (paper Figs. 3-6, paraphrased: dimension, level keyword, observed tags, judgement)

_GOOD = {
    "motion_quality": "movement is smooth and stable, with no shake, stutter or flicker",
    "motion_amplitude": "",
    "aesthetic_quality": "exposure, colour and framing are well balanced",
    "content_quality": "the picture is clean, with no overlays, borders or nested screens",
    "clarity_quality": "edges and fine textures stay sharp throughout",
}
_EFFECT = {
    "motion_quality": "which disturbs the viewing experience",
    "aesthetic_quality": "which weakens the visual appeal",
    "content_quality": "which distracts from the main content",
    "clarity_quality": "so fine detail is lost",
}
_EFFECT_ALT = {
    "motion_quality": "the motion is uncomfortable to watch",
    "aesthetic_quality": "the visual appeal suffers",
    "content_quality": "the main content is partly hidden or distracted from",
    "clarity_quality": "fine detail is hard to make out",
}
_AMOUNT = {
    "static": "the camera and scene are almost static",
    "slight_motion": "there is only slight camera motion",
    "moderate_motion": "the camera moves at a moderate pace",
    "large_motion": "the camera moves fast, with large displacement between frames",
}


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def rationale_text(dim: str, score: float, tags: list[str], rng: np.random.Generator | None = None) -> str:
    """One rationale sentence for a dimension from its score, level keyword and observed tags.

    Follows the idea of the paper's output templates: name the dimension, its evaluation keyword,
    what was observed (tags) and a short judgement. ``rng`` picks one of two phrasings.
    """
    name = L.NAME_OF[dim]
    kw = L.keyword(score)
    alt = bool(rng.random() < 0.5) if rng is not None else False
    if dim == "motion_amplitude":
        amount = _AMOUNT[tags[0]] if tags else _AMOUNT[amplitude_tag(score)]
        return (f"{name} is {kw.lower()}: {amount}." if not alt
                else f"{amount[0].upper() + amount[1:]}, so the {name.lower()} is rated {kw.lower()}.")
    if not tags:
        return (f"{name} is {kw.lower()}: {_GOOD[dim]}." if not alt
                else f"No notable defects: {_GOOD[dim]}, so the {name.lower()} is {kw.lower()}.")
    seen = _join([L.TAG_TEXT[t] for t in tags])
    return (f"{name} is {kw.lower()}: the video shows {seen}, {_EFFECT[dim]}." if not alt
            else f"Because of {seen}, {_EFFECT_ALT[dim]}; the {name.lower()} is {kw.lower()}.")


def schema_rationale_text(schema: "RS.RatingSchema", dim: str, score: float, tags: list[str]) -> str:
    """The rationale of a schema other than the paper's: one generic sentence with the dimension's
    name, the level's keyword and string, and the tags seen (their text when the paper has one)."""
    name, kw, text = schema.name_of(dim), schema.keyword(score), schema.string(score)
    lo, hi = schema.strings[0], schema.strings[-1]
    rated = f"rated {text} on the scale {lo} to {hi}"
    head = f"{name} is {kw.lower()} ({rated})" if kw.lower() != text.lower() else f"{name} is {rated}"
    if tags:
        return f"{head}: the video shows {_join([L.TAG_TEXT.get(t, t.replace('_', ' ')) for t in tags])}."
    return f"{head}."


def write_rationales(latent_rows: list[dict], ratings: list[dict], rng: np.random.Generator,
                     schema: "RS.RatingSchema | str | None" = None) -> list[dict]:
    """Per (video, dimension) rationale from the final-phase mean score (snapped) and the tags ticked
    by at least half of the final-phase raters (the paper synthesises rationales from score + tags).
    ``schema`` other than the paper's: :func:`schema_rationale_text` (``rng`` unused)."""
    from collections import defaultdict

    schema = RS.resolve(schema)

    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    votes: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in ratings:
        if r["phase"] != "final":
            continue
        key = (r["video_id"], r["dimension"])
        scores[key].append(r["score"])
        for t in r["tags"]:
            votes[key][t] += 1
    rows = []
    if not schema.is_paper:
        for lat in latent_rows:
            for dim in schema.keys:
                key = (lat["video_id"], dim)
                n = len(scores[key])
                score = float(schema.snap(np.mean(scores[key])))
                tags = [] if score >= schema.hi else [t for t in schema.dimension(dim).tags if votes[key].get(t, 0) * 2 >= n]
                rows.append({"video_id": lat["video_id"], "dimension": dim,
                             "rationale": schema_rationale_text(schema, dim, score, tags)})
        return rows
    for lat in latent_rows:
        for dim in L.DIMENSION_KEYS:
            key = (lat["video_id"], dim)
            n = len(scores[key])
            score = float(L.snap_to_grid(np.mean(scores[key])))
            tags = [t for t in L.TAGS[dim] if votes[key].get(t, 0) * 2 >= n]
            if dim == "motion_amplitude":
                tags = [amplitude_tag(score)]
            elif score >= L.SCORE_MAX:
                tags = []
            rows.append({"video_id": lat["video_id"], "dimension": dim, "rationale": rationale_text(dim, score, tags, rng)})
    return rows
