"""Peak memory of sampling a 4K clip: frames kept at full size, then resized (before) vs resized one
by one as they are decoded (after, ``vqalib.video.frames.sample_video``), side by side in one run.

    .venv/bin/python bench/bench_video_memory.py [--frames 32] [--backends pyav,decord]

Generates a 3840x2160 H.264 clip of ``--frames`` frames at 2 fps in a temporary folder (so the
default sampling, 2 fps with at most 32 frames, decodes every frame), then for each backend runs
each way in a fresh Python process and reads the process's peak resident set size
(``ru_maxrss``) minus its resident size just before decoding (after imports and the probe): the
memory one clip costs one DataLoader worker. Prints MB before -> after, the ratio, the seconds
each took, and checks that both give identical frames.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
from vqalib.video import frames as V
path, way, backend, out = sys.argv[1:5]
cfg = V.SamplingConfig(backend=backend)
info = V.probe(path)
idx, _, _ = V.select_frames(info, cfg)
def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20
base = rss_mb()
t0 = time.perf_counter()
if way == "before":  # what sample_video did: all frames at full size, then the resize
    full, _, _ = V.read_frames(path, idx, backend, info=info)
    frames = V._resize_frames(full, cfg, (info.height, info.width))
    del full
else:
    frames = V.sample_video(path, cfg).frames
secs = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
np.save(out, frames)
print(json.dumps({"peak_mb": peak - base, "s": secs, "shape": list(frames.shape)}))
"""


def make_clip(path: Path, n: int, w: int = 3840, h: int = 2160) -> None:
    """Moving gradients, H.264 (ultrafast), 2 fps; every frame differs (cheap to encode and decode)."""
    import av

    yy, xx = np.mgrid[0:h, 0:w]
    base = ((xx + yy) % 256).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=2, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.stack([base + 8 * i, base[::-1] - 4 * i, base[:, ::-1] + 2 * i], -1)
            for pk in s.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=32, help="frames in the generated clip (all are sampled)")
    ap.add_argument("--backends", default=None, help="comma list (default: pyav, and decord when installed)")
    args = ap.parse_args()
    from vqalib.video.frames import decord_available

    backends = args.backends.split(",") if args.backends else ["pyav"] + (["decord"] if decord_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "uhd.mp4"
        make_clip(clip, args.frames)
        print(f"clip: 3840x2160, {args.frames} frames at 2 fps, {clip.stat().st_size / 2**20:.1f} MB")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for backend in backends:
            res = {}
            for way in ("before", "after"):
                out = Path(tmp) / f"{backend}_{way}.npy"
                r = subprocess.run([sys.executable, "-c", CHILD, str(clip), way, backend, str(out)], env=env,
                                   capture_output=True, text=True, timeout=600, check=True)
                res[way] = json.loads(r.stdout.strip().splitlines()[-1])
            same = np.array_equal(np.load(Path(tmp) / f"{backend}_before.npy"), np.load(Path(tmp) / f"{backend}_after.npy"))
            b, a = res["before"], res["after"]
            print(f"{backend:7s} peak extra RSS {b['peak_mb']:7.0f} MB -> {a['peak_mb']:6.0f} MB "
                  f"({b['peak_mb'] / max(a['peak_mb'], 1e-9):.1f}x less); time {b['s']:.2f} s -> {a['s']:.2f} s "
                  f"({b['s'] / a['s']:.2f}x); frames {a['shape']} identical: {same}")


if __name__ == "__main__":
    main()
