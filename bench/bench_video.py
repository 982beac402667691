"""Sampling at 2 fps on the real clips: decord seek vs PyAV keyframe seek vs decode-all.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_video.py [--repeats 3] [--fps 2] [--clips DIR]

For every clip the same frame indices (``vqalib.video.frames.frame_indices``) are decoded three ways, full
size, RGB, without the resize:
  decord   ``VideoReader.get_batch(indices)`` (1 decoding thread)
  pyav     seek to the keyframe before each needed frame, decode forward only as needed
  all      decode every frame with PyAV and convert it to RGB, keep the needed ones (the naive loader)
Time includes opening the file (and decord's index build) but not the PyAV probe. Reported:
median seconds, sampled frames per second, and the speed-up over decode-all.

Then the cost of choosing frames by presentation time (issue 8), per clip, side by side:
  probe    ``vqalib.video.frames.probe`` (demux every packet + decode the first frame for the display
           matrix + the regular-grid check) vs demux-only (what the probe did before)
  select   ``select_frames`` on the pts (the variable-frame-rate path, forced) vs the index rule
           ``frame_indices`` (microseconds; both give the same indices on these constant-rate clips)
and the extra probe time as a share of sampling one clip with decord.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import dataclasses

from vqalib.video.frames import (SamplingConfig, _frame_pipeline, _read_decord, _read_pyav, decord_available, frame_indices,
                          probe, select_frames)


def decode_all(info, indices):
    """Decode every frame (RGB), then index: what a loader without seeking does."""
    import av

    with av.open(info.path) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    return np.stack(frames)[indices]


def demux_only(path):
    """What the probe did before it decoded the first frame: open the file and read every packet's pts."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(p.pts for p in c.demux(s) if p.pts is not None and p.size)


def best(fn, repeats, loops=1):
    """Median seconds per call over ``repeats`` runs of ``loops`` calls."""
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        ts.append((time.perf_counter() - t0) / loops)
    return statistics.median(ts)


def selection_costs(clips, cfg, repeats, decode_s):
    """Print the per-clip cost of the presentation-time selection (see the module docstring)."""
    print(f"\n{'clip':28s} {'demux s':>8s} {'probe s':>8s} {'ratio':>6s} {'index us':>9s} {'pts us':>8s} "
          f"{'ratio':>6s} {'extra/decode':>12s}")
    tot = [0.0, 0.0, 0.0]
    for clip in clips:
        d = best(lambda: demux_only(clip), repeats)
        pr = best(lambda: probe(clip), repeats)
        info = probe(clip)
        vfr = dataclasses.replace(info, variable_frame_rate=True)
        old = frame_indices(info.n_frames, info.fps, cfg)
        assert np.array_equal(select_frames(vfr, cfg)[0], old), f"{clip.name}: pts path differs from the index rule"
        i_s = best(lambda: frame_indices(info.n_frames, info.fps, cfg), repeats, 200)
        p_s = best(lambda: select_frames(vfr, cfg), repeats, 200)
        extra = (pr - d) + (p_s - i_s)
        tot[0] += d
        tot[1] += pr
        tot[2] += decode_s[clip]
        print(f"{clip.name[:28]:28s} {d:8.4f} {pr:8.4f} {pr / d:5.2f}x {i_s * 1e6:9.1f} {p_s * 1e6:8.1f} "
              f"{p_s / i_s:5.1f}x {100 * extra / decode_s[clip]:11.1f}%")
    print(f"total: probe {tot[1]:.3f} s vs demux-only {tot[0]:.3f} s ({tot[1] / tot[0]:.2f}x); extra probe time "
          f"= {100 * (tot[1] - tot[0]) / tot[2]:.1f}% of sampling the clips")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--clips", default=str(here.parent / "shared" / "data" / "videos"), help="folder searched for *.mp4")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--max-frames", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    clips = sorted(Path(args.clips).rglob("*.mp4"))
    if not clips:
        raise SystemExit(f"no .mp4 files under {args.clips}")
    cfg = SamplingConfig(fps=args.fps, max_frames=args.max_frames, max_pixels=None)
    methods = {"pyav": lambda i, x: _read_pyav(i, x, _frame_pipeline(i, None)),
               "all": lambda i, x: (decode_all(i, x), [])}
    if decord_available():
        methods = {"decord": lambda i, x: _read_decord(i, x, _frame_pipeline(i, None)), **methods}
    print(f"{'clip':28s} {'size':>9s} {'N':>4s} {'T':>3s} " + " ".join(f"{m + ' s':>9s} {m + ' f/s':>10s}" for m in methods)
          + "  " + " ".join(f"{m + '/all':>10s}" for m in methods if m != "all"))
    totals = {m: [0.0, 0] for m in methods}
    decode_s = {}
    for clip in clips:
        info = probe(clip)
        idx = frame_indices(info.n_frames, info.fps, cfg)
        ref = None
        res = {}
        for name, fn in methods.items():
            ts = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                frames, _ = fn(info, idx)
                ts.append(time.perf_counter() - t0)
            if ref is None:
                ref = frames
            elif not np.array_equal(ref, frames):
                print(f"  note: {name} frames differ from the first method on {clip.name} "
                      f"(max |diff| {np.abs(ref.astype(int) - frames.astype(int)).max()})")
            res[name] = statistics.median(ts)
            totals[name][0] += res[name]
            totals[name][1] += len(idx)
        decode_s[clip] = res[next(iter(methods))]
        print(f"{clip.name[:28]:28s} {f'{info.width}x{info.height}':>9s} {info.n_frames:4d} {len(idx):3d} "
              + " ".join(f"{res[m]:9.3f} {len(idx) / res[m]:10.1f}" for m in methods) + "  "
              + " ".join(f"{res['all'] / res[m]:9.1f}x" for m in methods if m != "all"))
    print("total: " + ", ".join(f"{m} {n / s:.1f} frames/s ({s:.2f} s)" for m, (s, n) in totals.items())
          + "; speed-up over decode-all: "
          + ", ".join(f"{m} {totals['all'][0] / totals[m][0]:.1f}x" for m in methods if m != "all"))
    selection_costs(clips, cfg, args.repeats, decode_s)


if __name__ == "__main__":
    main()
