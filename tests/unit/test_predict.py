"""Prediction loop: generation with video inputs, vision tokens suppressed, parse, exact distributions
(``predict_to_file`` end to end: ``tests/integration/test_predict_runs.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from model_helpers import synthetic_clip, write_clip
from vqalib.model import loading as models
from vqalib.eval import predict
from vqalib.schema import prompts
from vqalib.method import distributions as scoring
from vqalib.model.inputs import build_batch
from vqalib.schema.levels import DIMENSION_KEYS, LEVELS
from vqalib.eval.predictions_file import validate_predictions
from vqalib.video.frames import SamplingConfig

SAMPLING = SamplingConfig(fps=2.0, max_frames=8, max_pixels=112 * 112, min_pixels=112 * 112)


@pytest.fixture(scope="module")
def tiny():
    model, proc = models.load_model_and_processor("tiny")
    return model.eval(), proc


def test_predict_rows_failures_and_manifest(tiny, tmp_path):
    model, proc = tiny
    paths = [write_clip(tmp_path / f"c{i}.mp4", seed=i) for i in range(3)]
    (tmp_path / "empty.mp4").write_bytes(b"")
    items = pd.DataFrame({"video_id": ["a", "b", "c", "e"], "path": [str(p) for p in paths] + [str(tmp_path / "empty.mp4")],
                          "clarity_quality": [3.0, 4.0, None, 2.0]})
    res = predict.predict(model, proc, items, sampling=SAMPLING, max_new_tokens=12, batch_size=2)
    assert [f["video_id"] for f in res.failures] == ["e"] and "empty" in res.failures[0]["error"]
    df = res.rows
    assert len(df) == 15 and set(df["video_id"]) == {"a", "b", "c"}
    validate_predictions(df)  # the evaluation side's checks: dist sums to 1, readouts agree, statuses
    assert df.loc[(df.video_id == "b") & (df.dimension == "clarity_quality"), "target"].item() == 4.0
    assert df.loc[df.dimension == "motion_quality", "target"].isna().all()
    failed = df[df.parse_status != "ok"]
    assert failed["parsed_score"].isna().all(), "a failed parse must never carry a score"
    assert (failed["dist_prefix"] == "canonical").all()
    assert failed["parse_reason"].notna().all() and df.loc[df.parse_status == "ok", "parse_reason"].isna().all()
    counts = res.manifest["parse_status_counts"]
    assert sum(sum(c.values()) for c in counts.values()) == 15
    assert res.manifest["n_failed_videos"] == 1 and res.manifest["sampling"]["fps"] == 2.0
    assert res.manifest["clips"][0]["model_height"] == 112


def test_vision_tokens_are_never_generated(tiny):
    model, proc = tiny
    vid = proc.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    hook = model.lm_head.register_forward_hook(lambda m, i, out: out.index_add(
        -1, torch.tensor([vid]), torch.full((*out.shape[:-1], 1), 100.0)))
    try:
        b = build_batch(proc, [synthetic_clip()])
        plain = model.generate(**b.model_inputs(False), max_new_tokens=4, do_sample=False)
        assert (plain[:, b["input_ids"].shape[1]:] == vid).all(), "the hook must make <|video_pad|> the greedy choice"
        ids = predict.generate_ids(model, proc, b, max_new_tokens=4)
    finally:
        hook.remove()
    banned = {proc.tokenizer.convert_tokens_to_ids(t) for t in predict.VISION_TOKENS}
    assert not (set(ids.flatten().tolist()) & banned)


def test_generate_matches_greedy_full_forward_passes(tiny):
    """generate (KV cache, M-RoPE deltas) picks the same tokens as full passes with the video."""
    model, proc = tiny
    b = build_batch(proc, [synthetic_clip(seed=0), synthetic_clip(seed=3, n_source_frames=60)])
    gen = predict.generate_ids(model, proc, b, max_new_tokens=5)
    banned = [proc.tokenizer.convert_tokens_to_ids(t) for t in predict.VISION_TOKENS]
    inputs = b.model_inputs(False)
    ids, mm, am = inputs["input_ids"], inputs["mm_token_type_ids"], inputs["attention_mask"]
    with torch.no_grad():
        for step in range(gen.shape[1]):
            logits = model(**{**inputs, "input_ids": ids, "mm_token_type_ids": mm, "attention_mask": am}).logits[:, -1]
            logits[:, banned] = -float("inf")
            nxt = logits.argmax(-1)
            assert torch.equal(nxt, gen[:, step]), f"step {step}"
            ids = torch.cat([ids, nxt[:, None]], 1)
            mm = torch.cat([mm, torch.zeros_like(nxt)[:, None]], 1)
            am = torch.cat([am, torch.ones_like(nxt)[:, None]], 1)


def test_score_answers_uses_the_generated_text_or_the_canonical_prefix(tiny):
    model, proc = tiny
    clips = [synthetic_clip(seed=0), synthetic_clip(seed=1)]
    good = prompts.format_answer(dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Steady.")
    broken = "Steady.\n\nMotion Quality: 4.0\nMotion Amplitude: lots"
    dist, outside, kinds, parses = predict.score_answers(model, proc, clips, [good, broken])
    assert kinds == ["generated", "canonical"]
    assert np.allclose(dist.sum(-1), 1.0, atol=1e-5) and ((outside >= 0) & (outside <= 1)).all()
    cont = scoring.number_continuation_ids(proc.tokenizer)  # prediction counts a bare "3" as 3.0 (test_bare_level.py)
    with torch.no_grad():
        lp, _ = scoring.level_logprobs(model, build_batch(proc, clips[:1], [good]), continue_ids=cont)
    np.testing.assert_allclose(dist[0], lp[0].exp().numpy(), atol=1e-6)
    # canonical prefix for dimension 2: rationale, the parsed 4.0, then the argmax of dimension 1
    amp = float(LEVELS[int(np.argmax(dist[1, 1]))])
    cano = f"Steady.\n\nMotion Quality: 4.0\nMotion Amplitude: {amp:.1f}\nAesthetic Quality: 1.0"
    with torch.no_grad():
        lp2, _ = scoring.level_logprobs(model, build_batch(proc, clips[1:], [cano]), continue_ids=cont)
    np.testing.assert_allclose(dist[1, 2], lp2[0, 2].exp().numpy(), atol=1e-6)
    assert parses[1].status["motion_amplitude"] == "unparsable" and parses[1].scores["motion_amplitude"] is None
