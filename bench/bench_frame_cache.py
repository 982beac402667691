"""Peak host memory of the training frame cache as the number of clips grows: before -> after.

*Before* is the frame cache as it was (reconstructed below, :class:`UnboundedFrameCache`): every
decoded clip kept in a dict for the whole run and written as an uncompressed ``.npz``. *After* is
``vqalib.train.collator.FrameCache`` with a memory budget (``frame_cache_mb``) and a disk budget
(``frame_disk_cache_mb``). Each cache runs in its own fresh process, which walks the clips once
(like ASO's pi_ref pass) and reports its peak RSS (``ru_maxrss``, which only grows: the peak over the
first n clips) after each count of ``--clips``; both run side by side in one invocation.

Clips are generated H.264 mp4s at the 7B sampling's frame size: 16 frames of 588 x 336 (the
200,704-pixel budget at 16:9, 2 fps over 8 s: an 8-s KoNViD clip, 9.0 MiB decoded). ``--sources``
distinct files are generated; the N clips are hard links to them (distinct paths, so distinct cache
entries; decoding is the same work). Both caches write their disk copies into a temporary
``VQALIB_CACHE``, whose size is reported too. Last, on the real KoNViD clips in
``../shared/data/videos/konvid``: decode and write CPU time, and what deflate would save (why the
disk copies stay uncompressed).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frame_cache.py
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


class UnboundedFrameCache:
    """The frame cache before issue 19 (vqalib/train/collator.py at 56d816e), for comparison: a dict
    of every decoded clip, and an uncompressed ``np.savez`` per clip on disk."""

    def __init__(self, sampling, disk: bool = True):
        self.sampling = sampling
        self.disk = disk
        self._mem: dict = {}
        self.n_decoded = 0
        self.n_from_disk = 0

    def _key(self, path: Path) -> str:
        st = path.stat()
        cfg = self.sampling.to_dict() if hasattr(self.sampling, "to_dict") else dataclasses.asdict(self.sampling)
        raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sorted(cfg.items())}"
        return hashlib.sha1(raw.encode()).hexdigest()[:20]

    def get(self, path):
        from vqalib.core.runs import cache_dir
        from vqalib.video.frames import SampledVideo, sample_video

        path = Path(path)
        key = str(path)
        if key in self._mem:
            return self._mem[key]
        video = None
        disk_path = None
        if self.disk:
            disk_path = cache_dir() / "frames" / f"{self._key(path)}.npz"
            if disk_path.is_file():
                with np.load(disk_path, allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
                    meta["indices"] = np.asarray(meta["indices"], dtype=np.int64)
                    meta["timestamps"] = np.asarray(meta["timestamps"], dtype=np.float64)
                    video = SampledVideo(frames=z["frames"], **meta)
                self.n_from_disk += 1
        if video is None:
            video = sample_video(path, self.sampling)
            self.n_decoded += 1
            if disk_path is not None:
                disk_path.parent.mkdir(parents=True, exist_ok=True)
                meta = {f.name: getattr(video, f.name) for f in dataclasses.fields(video) if f.name != "frames"}
                meta = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in meta.items()}
                meta["path"] = str(meta["path"])
                tmp = disk_path.with_name(disk_path.stem + f".{os.getpid()}.tmp.npz")
                np.savez(tmp, frames=video.frames, meta=np.asarray(json.dumps(meta)))
                os.replace(tmp, disk_path)
        self._mem[key] = video
        return video


def sampling():
    from vqalib.video.frames import SamplingConfig

    # the 7B configs' sampling; PyAV for both caches (decord's start-up per file only adds time here)
    return SamplingConfig(fps=2.0, max_frames=32, max_pixels=200704, backend="pyav")


def make_clips(folder: Path, n: int, sources: int, frames: int, height: int, width: int) -> list[Path]:
    """``sources`` generated 8-s clips at 2 fps (moving gradients + noise), then ``n`` hard links."""
    from vqalib.data.synth import write_mp4

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    src = []
    for s in range(sources):
        clip = np.empty((frames, height, width, 3), dtype=np.uint8)
        for t in range(frames):
            base = (xx * (1 + s) + yy * 2 + 9 * t) % 256
            noise = rng.integers(0, 24, (height, width, 3))
            clip[t] = np.clip(base[..., None] * np.array([1.0, 0.7, 0.4]) + noise, 0, 255).astype(np.uint8)
        src.append(write_mp4(folder / f"src{s}.mp4", clip, fps=2))
    out = []
    for i in range(n):
        p = folder / f"clip{i:05d}.mp4"
        if not p.exists():
            os.link(src[i % sources], p)
        out.append(p)
    return out


def child(args) -> None:
    """One measurement: walk the clips once with one cache; at every count of ``args.counts`` print the
    peak RSS so far (``ru_maxrss`` only grows, so it is the peak over the first n clips), the bytes the
    cache holds and the size of its disk folder, as one JSON line."""
    from vqalib.core.runs import cache_dir
    from vqalib.train.collator import FrameCache

    counts = sorted(int(c) for c in args.counts.split(","))
    clips = sorted(Path(args.clips_dir).glob("clip*.mp4"))[:counts[-1]]
    if args.child == "before":
        cache = UnboundedFrameCache(sampling(), disk=True)
    else:
        cache = FrameCache(sampling(), disk=True, memory_mb=args.budget_mb, disk_mb=args.disk_mb)
    rows, t0 = [], time.perf_counter()
    for i, p in enumerate(clips, 1):
        v = cache.get(p)
        del v
        if i in counts:
            held = sum(x.frames.nbytes for x in cache._mem.values()) if args.child == "before" else cache.mem_bytes
            rows.append({"n": i, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "held": held,
                         "disk_bytes": sum(f.stat().st_size for f in (cache_dir() / "frames").glob("*.npz")),
                         "n_decoded": cache.n_decoded, "s_per_clip": (time.perf_counter() - t0) / i})
    print(json.dumps(rows))


def run_child(cache: str, counts: str, clips_dir: Path, budget_mb: float, disk_mb: float) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    tmp = tempfile.mkdtemp(prefix="bench_frame_cache_")
    env["VQALIB_CACHE"] = tmp
    cmd = [sys.executable, __file__, "--child", cache, "--counts", counts, "--clips-dir", str(clips_dir),
           "--budget-mb", str(budget_mb), "--disk-mb", str(disk_mb)]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        if out.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["rm", "-rf", tmp], check=False)


def konvid_disk_format() -> list[dict]:
    """Why the disk copies are not compressed: on each real KoNViD clip in ../shared/data, the decode
    time, the time to write the uncompressed ``.npz`` (the cache's format) and what deflate level 1
    would save (raw / compressed) at what CPU time."""
    import zlib

    from vqalib.video.frames import sample_video

    rows = []
    for p in sorted((ROOT.parent / "shared" / "data" / "videos" / "konvid").glob("*.mp4")):
        t = time.process_time()
        v = sample_video(p, sampling())
        decode = time.process_time() - t
        raw = np.ascontiguousarray(v.frames).tobytes()
        t = time.process_time()
        packed = zlib.compress(raw, 1)
        deflate = time.process_time() - t
        with tempfile.TemporaryDirectory() as tmp:
            t = time.process_time()
            np.savez(Path(tmp) / "x.npz", frames=v.frames)
            write = time.process_time() - t
        rows.append({"clip": p.name, "mib": len(raw) / MIB, "decode_s": decode, "write_s": write,
                     "ratio": len(raw) / len(packed), "deflate_s": deflate})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="25,50,100,200", help="clip counts at which to report, comma-separated")
    ap.add_argument("--budget-mb", type=float, default=256, help="after: frame_cache_mb (in-memory budget, MiB)")
    ap.add_argument("--disk-mb", type=float, default=128, help="after: frame_disk_cache_mb (disk budget, MiB)")
    ap.add_argument("--sources", type=int, default=4, help="distinct generated mp4 files")
    ap.add_argument("--frames", type=int, default=16, help="frames per clip (2 fps)")
    ap.add_argument("--height", type=int, default=336)
    ap.add_argument("--width", type=int, default=588)
    ap.add_argument("--child", choices=["before", "after"], help=argparse.SUPPRESS)
    ap.add_argument("--counts", help=argparse.SUPPRESS)
    ap.add_argument("--clips-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    counts = sorted(int(c) for c in args.clips.split(","))
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bench_frame_cache_clips_") as tmp:
        clips_dir = Path(tmp)
        make_clips(clips_dir, counts[-1], args.sources, args.frames, args.height, args.width)
        clip_mib = args.frames * args.height * args.width * 3 / MIB
        print(f"clips: {args.frames} frames of {args.width}x{args.height} ({clip_mib:.1f} MiB decoded each), walked once "
              f"(like ASO's pi_ref pass) by a fresh process per cache; after: frame_cache_mb={args.budget_mb:g}, "
              f"frame_disk_cache_mb={args.disk_mb:g}")
        before = run_child("before", args.clips, clips_dir, args.budget_mb, args.disk_mb)
        after = run_child("after", args.clips, clips_dir, args.budget_mb, args.disk_mb)
    print(f"{'clips':>6} | {'peak RSS before':>15} | {'after':>9} | {'before/after':>12} | {'held before':>11} | "
          f"{'after':>7} | {'disk before':>11} | {'after':>7} | s/clip before, after")
    for b, a in zip(before, after):
        print(f"{b['n']:>6} | {b['peak_rss'] / MIB:>11.0f} MiB | {a['peak_rss'] / MIB:>5.0f} MiB | "
              f"{b['peak_rss'] / a['peak_rss']:>11.2f}x | {b['held'] / MIB:>7.0f} MiB | {a['held'] / MIB:>3.0f} MiB | "
              f"{b['disk_bytes'] / MIB:>7.0f} MiB | {a['disk_bytes'] / MIB:>3.0f} MiB | "
              f"{b['s_per_clip']:.2f}, {a['s_per_clip']:.2f}")
    (b0, b1), (a0, a1) = (before[0], before[-1]), (after[0], after[-1])
    print(f"peak RSS growth {b0['n']} -> {b1['n']} clips: before x{b1['peak_rss'] / b0['peak_rss']:.2f} "
          f"(+{(b1['peak_rss'] - b0['peak_rss']) / MIB:.0f} MiB), after x{a1['peak_rss'] / a0['peak_rss']:.2f} "
          f"(+{(a1['peak_rss'] - a0['peak_rss']) / MIB:.0f} MiB); disk growth: before x"
          f"{b1['disk_bytes'] / b0['disk_bytes']:.2f}, after x{a1['disk_bytes'] / a0['disk_bytes']:.2f}")
    for r in konvid_disk_format():
        print(f"real clip {r['clip']} ({r['mib']:.1f} MiB decoded), CPU s: decode {r['decode_s']:.2f}, uncompressed write "
              f"{r['write_s']:.3f}; deflate-1 would be {r['ratio']:.2f}x smaller for {r['deflate_s']:.2f} CPU s more")
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
