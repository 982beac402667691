"""Benchmark: the K-level scorer's pass on each model family's tiny preset, side by side in one process.

For ``tiny`` (Qwen2.5-VL), ``tiny-qwen3-vl`` (Qwen3-VL) and ``tiny-qwen3.5`` (Qwen3.5), on the same clips:

* ``one pass``   : :func:`vqalib.method.distributions.level_logprobs_raw` - the tree-masked pass where every
                   language-model layer reads the mask, else the branch pass (one batched sequence per clip x
                   dimension x trie leaf, the video encoded once per clip);
* ``branch, video per row``: the branch pass with each row encoding its clip again (what it cost before the
                   video was shared; Qwen3.5 only);
* ``5 x 9 batched``: the independent teacher-forced passes, the 9 levels of a dimension stacked
                   (:func:`level_logprobs_independent` with ``batched_levels=True``);
* ``fwd+bwd``    : the one pass with a backward (ASO's use).

Prints ms per clip, the ratios and the largest |difference| to the independent passes. Needs the real files
in ../shared/data/qwen3_vl and qwen3_5. Example::

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_family_level_pass.py --clips 2 --frames 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scoring import _time as _best  # noqa: E402  (best of n: (seconds, last result))
from model_helpers import synthetic_clip  # noqa: E402
from vqalib.method import distributions as D  # noqa: E402
from vqalib.model.family import family_of  # noqa: E402
from vqalib.model.inputs import build_batch  # noqa: E402
from vqalib.model.loading import load_model_and_processor  # noqa: E402
from vqalib.schema import prompts  # noqa: E402
from vqalib.schema.levels import DIMENSION_KEYS  # noqa: E402


def _pixels_per_row(model, batch, order, clips):
    return {"pixel_values_videos": torch.cat([batch["pixel_values_videos"][clips[b]] for b in order])}


def bench(preset: str, clips: int, frames: int, repeats: int) -> dict:
    model, proc = load_model_and_processor(preset)
    model.eval()
    fam = family_of(model)
    side = fam.patch_factor * 4  # 112 px for Qwen2.5-VL, 128 px for the Qwen3 families
    videos = [synthetic_clip(n_frames=frames, size=(side, side), n_source_frames=frames * 15, seed=i) for i in range(clips)]
    scores = dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0]))
    answer = prompts.format_answer(scores, prompts.template_rationale("clarity_quality", 2.5, ["blur"]))
    batch = build_batch(proc, videos, [answer] * clips)
    row = {"preset": preset, "pass": "tree" if D.reads_tree_mask(model) else "branch",
           "tokens": int(batch["input_ids"].shape[1])}
    with torch.no_grad():
        t_one, one = _best(lambda: D.level_logprobs_raw(model, batch), repeats)
        t_ind, ind = _best(lambda: D.level_logprobs_independent(model, batch, batched_levels=True), 1)
        if row["pass"] == "branch":
            with mock.patch.object(D, "_video_once", _pixels_per_row):
                t_rows, per_row = _best(lambda: D.level_logprobs_raw(model, batch), repeats)
            row["branch_video_per_row_ms"] = 1000 * t_rows / clips
            row["video_once_speedup"] = t_rows / t_one
            row["max_diff_video_per_row"] = float((per_row - one).abs().max())
    model.train()

    def fwd_bwd():
        model.zero_grad()
        D.level_logprobs_raw(model, batch).nan_to_num().sum().backward()

    t_fb, _ = _best(fwd_bwd, repeats)
    row.update(one_pass_ms=1000 * t_one / clips, independent_5x9_ms=1000 * t_ind / clips, ratio=t_ind / t_one,
               fwd_bwd_ms=1000 * t_fb / clips, max_diff=float((one - ind).abs().max()))
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--presets", nargs="+", default=["tiny", "tiny-qwen3-vl", "tiny-qwen3.5"])
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = [bench(p, a.clips, a.frames, a.repeats) for p in a.presets]
    print(f"{a.clips} clips x {a.frames} frames, best of {a.repeats}, ms per clip")
    print("| preset | pass | tokens | one pass | 5 x 9 batched | ratio | branch, video per row | video-once gain | fwd+bwd | max diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        per_row = f"{r['branch_video_per_row_ms']:.1f}" if "branch_video_per_row_ms" in r else "-"
        gain = f"{r['video_once_speedup']:.2f}x" if "video_once_speedup" in r else "-"
        print(f"| {r['preset']} | {r['pass']} | {r['tokens']} | {r['one_pass_ms']:.1f} | {r['independent_5x9_ms']:.1f} | "
              f"{r['ratio']:.1f}x | {per_row} | {gain} | {r['fwd_bwd_ms']:.1f} | {r['max_diff']:.1e} |")


if __name__ == "__main__":
    main()
