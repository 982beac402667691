"""Qwen3-VL and Qwen3.5 through the same inputs, level scorer and decoding as Qwen2.5-VL (issue 24), on the
tiny presets of each family (the real config shrunk, the real processor and tokenizer files from
``../shared/data/qwen3_vl`` and ``../shared/data/qwen3_5``):

* the one-pass level scores (tree-masked for Qwen3-VL, one batched pass over the trie's branches for
  Qwen3.5's recurrent layers) equal plain teacher-forced passes, per level, within 1e-5, for the paper's
  nine levels and for the integers 1..10 ("1" a prefix of "10"), on two clips of different sizes and
  lengths;
* a clip alone and in a left-padded batch with a longer clip give the same level scores and the same
  greedy answer;
* the times the model reads (``<t seconds>`` before each temporal patch) are the sampled presentation
  times, on a constant-rate and a variable-frame-rate mp4 (where ``index / fps`` is wrong); Qwen2.5-VL
  reads none in the text and gets ``second_per_grid_ts``;
* Qwen3.5's prompt ends with the empty think block (``enable_thinking=False`` passed explicitly), the
  answer's labels start after it, and a generated answer that starts with a think block is read (parsed
  and teacher-forced) exactly as the answer without it, through the decode path of prediction, ``score``
  and the rollouts (:func:`vqalib.model.generation.decode_answers`);
* the vision cache of GRPO (:mod:`vqalib.train.vision_cache`) gives the un-patched forward's logits on both
  families (Qwen3-VL's deepstack features included).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import shared_data_or_skip
from model_helpers import synthetic_clip
from vqalib.method import distributions as scoring
from vqalib.model import generation
from vqalib.model.family import QWEN2_5_VL, QWEN3_5, QWEN3_VL, family_of
from vqalib.model.inputs import build_batch, patch_times, times_in_text
from vqalib.schema import levels, prompts
from vqalib.schema.rating import INT10, PAPER

PRESETS = {"tiny-qwen3-vl": ("qwen3_vl", QWEN3_VL), "tiny-qwen3.5": ("qwen3_5", QWEN3_5)}
TOL = 1e-5
MEASURED: dict[str, float] = {}  # printed at the end of each test (-s): the differences the report quotes


@pytest.fixture(scope="module", params=list(PRESETS))
def fam(request):
    """(preset, model in eval mode, processor) of one tiny family."""
    from vqalib.model.loading import load_model_and_processor

    folder, family = PRESETS[request.param]
    shared_data_or_skip(folder, "tokenizer.json")
    model, proc = load_model_and_processor(request.param)
    assert family_of(model) is family and family_of(proc) is family
    return request.param, model.eval(), proc


def clips():
    """Two clips of different frame sizes and lengths (sides multiples of 32, the patch x merge of both
    families): 4 frames of 64 x 64 and 6 frames of 96 x 64."""
    return [synthetic_clip(n_frames=4, size=(64, 64), seed=1), synthetic_clip(n_frames=6, size=(96, 64), seed=2)]


def answers(schema):
    if schema is INT10:
        return ["Visual Quality: 10\nTemporal Consistency: 1\nText Alignment: 7",
                "Some flicker in the second half.\n\nVisual Quality: 3\nTemporal Consistency: 10\nText Alignment: 1"]
    return [prompts.format_answer(dict(zip(levels.DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Soft."),
            prompts.format_answer({k: 2.5 for k in levels.DIMENSION_KEYS}, "Sharp edges, steady motion, a clear "
                                  "subject and colours that match the prompt.")]


def _kw(schema):
    return {} if schema is PAPER else {"schema": schema}


# ----------------------------------------------------------------------------- (a) one pass = independent passes


@pytest.mark.parametrize("schema", [PAPER, INT10], ids=["paper", "int10"])
def test_one_pass_equals_independent_passes(fam, schema):
    preset, model, proc = fam
    vids = clips()
    b = build_batch(proc, vids, answers(schema), **_kw(schema))
    assert (b.score_positions > 0).all()
    assert b["input_ids"].shape[0] == 2 and len(set(b.prompt_lengths)) == 2  # different lengths: one row padded
    if schema is INT10:
        assert scoring.prefix_levels(b.level_ids) == {0: (proc.tokenizer.convert_tokens_to_ids("0"),)}
    with torch.no_grad():
        one = scoring.level_logprobs_raw(model, b, schema=schema)
        # the nine paper levels have one length: each dimension's nine plain passes run as one batch of rows
        ref = scoring.level_logprobs_independent(model, b, batched_levels=True, schema=schema)
    assert one.shape == (2, schema.n_dims, schema.n_levels) and torch.isfinite(one).all()
    diff = float((one - ref).abs().max())
    MEASURED[f"{preset}/{schema.name}/one_pass_vs_independent"] = diff
    print(f"\n{preset} {schema.name}: one pass vs independent passes max |diff| = {diff:.2e}")
    assert scoring.reads_tree_mask(model) is family_of(model).tree_mask
    torch.testing.assert_close(one, ref, atol=TOL, rtol=0)


# ----------------------------------------------------------------------------- (b) alone = in a batch


def test_a_clip_alone_and_in_a_batch_score_and_answer_the_same(fam):
    preset, model, proc = fam
    short, long = clips()
    ans = answers(PAPER)
    with torch.no_grad():
        alone = scoring.level_logprobs_raw(model, build_batch(proc, [short], ans[:1]))
        both_b = build_batch(proc, [short, long], ans)
        assert int((both_b["attention_mask"][0] == 0).sum()) > 0  # the short clip is left padded
        both = scoring.level_logprobs_raw(model, both_b)
    diff = float((alone[0] - both[0]).abs().max())
    MEASURED[f"{preset}/alone_vs_batch"] = diff
    print(f"\n{preset}: level scores alone vs in a batch max |diff| = {diff:.2e}")
    torch.testing.assert_close(both[0], alone[0], atol=TOL, rtol=0)

    from vqalib.eval.predict import generate_ids

    ids_alone = generate_ids(model, proc, build_batch(proc, [short]), max_new_tokens=12)
    ids_both = generate_ids(model, proc, build_batch(proc, [short, long]), max_new_tokens=12)
    n = ids_alone.shape[1]
    assert n == 12  # a random tiny model does not stop early: the whole answer is compared
    assert ids_both[0, :n].tolist() == ids_alone[0].tolist()


# ----------------------------------------------------------------------------- (c) the times the model reads


def _cfr_and_vfr(tmp_path):
    """A constant-rate mp4 (24 frames at 12 fps) and the variable-rate phone clip of
    ``test_video_geometry`` (1 s at 30 fps, then 2 s at 5 fps), both 128 x 96, sampled at 2 fps."""
    from test_video_geometry import write_clip
    from vqalib.video.frames import SamplingConfig, sample_video

    cfr = write_clip(tmp_path / "cfr.mp4", n=24, fps=12)
    vfr = write_clip(tmp_path / "vfr.mp4", pts=list(range(30)) + [30 + 6 * k for k in range(10)],
                     time_base=Fraction(1, 30), fps=30)
    cfg = SamplingConfig(fps=2.0, min_frames=4, max_frames=64, max_pixels=None, backend="pyav")
    return sample_video(cfr, cfg), sample_video(vfr, cfg)


def _rounded(times):
    return [float(f"{t:.1f}") for t in times]  # the processor writes f"<{t:.1f} seconds>"


def test_the_times_in_the_text_are_the_sampled_presentation_times(fam, tmp_path):
    preset, model, proc = fam
    tok = proc.tokenizer
    cfr, vfr = _cfr_and_vfr(tmp_path)
    assert not cfr.variable_frame_rate and vfr.variable_frame_rate
    for clip in (cfr, vfr):
        b = build_batch(proc, [clip])
        assert "second_per_grid_ts" not in b  # these families read times as text, not through M-RoPE
        got = times_in_text(tok, b["input_ids"][0].tolist())
        want = patch_times(clip)
        assert len(want) == int(b["video_grid_thw"][0, 0]) == len(clip.timestamps) // 2
        assert got == _rounded(want), (clip.path, got, want)
        np.testing.assert_allclose(got, want, atol=0.05 + 1e-9)
        assert b.sampling[0]["patch_times"] == [round(t, 4) for t in want]
    # the VFR clip's frame indices over the mean rate are not its times: index / fps would be read wrong
    by_index = patch_times(type("Idx", (), {"timestamps": [i / vfr.source_fps for i in vfr.indices]})())
    assert _rounded(by_index) != _rounded(patch_times(vfr))
    assert max(abs(a - b) for a, b in zip(by_index, patch_times(vfr))) > 0.3
    # and for the constant-rate clip both agree (the check above is about the variable rate)
    assert _rounded(patch_times(type("Idx", (), {"timestamps": [i / cfr.source_fps for i in cfr.indices]})())) \
        == _rounded(patch_times(cfr))


def test_qwen2_5_vl_reads_no_times_in_the_text_but_second_per_grid_ts(tmp_path):
    from vqalib.model.loading import load_model_and_processor

    _, proc = load_model_and_processor("tiny")
    assert family_of(proc) is QWEN2_5_VL
    cfr, vfr = _cfr_and_vfr(tmp_path)
    for clip in (cfr, vfr, synthetic_clip()):
        b = build_batch(proc, [clip])
        text = proc.tokenizer.decode(b["input_ids"][0].tolist())
        assert "seconds" not in text and times_in_text(proc.tokenizer, b["input_ids"][0].tolist()) == []
        assert "second_per_grid_ts" in b and b["second_per_grid_ts"].shape == (1,)
    b = build_batch(proc, [vfr])  # the mean time between temporal patches of the variable-rate clip
    assert float(b["second_per_grid_ts"][0]) == pytest.approx(2 * vfr.duration / len(vfr.indices), rel=1e-5)


# ----------------------------------------------------------------------------- (d) think blocks


THINK = "<think>\nThe motion looks jerky, so Visual Quality: 1.0 maybe.\n</think>\n\n"


def test_qwen3_5_prompt_ends_with_the_empty_think_block_and_answers_start_after_it(fam):
    preset, model, proc = fam
    if preset != "tiny-qwen3.5":
        pytest.skip("Qwen3.5's chat template only")
    fam_ = family_of(proc)
    assert fam_.template_kwargs == {"enable_thinking": False}
    tok = proc.tokenizer
    messages = prompts.build_messages(None)
    explicit = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    thinking = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    assert explicit.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not thinking.endswith("</think>\n\n")  # the option reaches the template (else the test proves nothing)
    assert fam_.prompt_text(proc, messages) == explicit
    ans = answers(PAPER)[0]
    b = build_batch(proc, [clips()[0]], [ans])
    ids = b["input_ids"][0].tolist()
    P = b.prompt_lengths[0]
    assert tok.decode(ids[:P]).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    lab = b["labels"][0]
    assert int((lab != -100).nonzero()[0]) == P  # the labels start right after the think block
    assert tok.decode(lab[P:].tolist()) == ans + "<|im_end|>"
    parse = b.parses[0]
    assert parse.ok and parse.scores == prompts.parse_answer(ans).scores
    for d, k in enumerate(levels.DIMENSION_KEYS):  # each score position holds the first digit of its score
        assert tok.decode([ids[int(b.score_positions[0, d])]]) == f"{parse.scores[k]:.1f}"[0]


def test_think_tags_are_suppressed_and_a_think_block_never_reaches_the_parser(fam):
    preset, model, proc = fam
    tok = proc.tokenizer
    think_ids = {tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")}
    banned = set(generation.suppressed_token_ids(proc, model))
    assert think_ids <= banned  # Qwen3-VL and Qwen3.5 both carry the tags
    assert {tok.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<|vision_start|>")} <= banned
    assert "<think>" in generation.describe(generation.GenerationSettings.greedy(4), proc, model)["suppressed_tokens"]

    from vqalib.eval.predict import score_answers

    ans = answers(PAPER)[0]
    written = tok(THINK + ans + "<|im_end|>", add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert int(written[0, 0]) in think_ids  # the think tags are single (non-special) tokens that survive decoding
    (read,) = generation.decode_answers(proc, written, model)
    assert read == ans
    assert prompts.parse_answer(read).scores == prompts.parse_answer(ans).scores
    clip = clips()[0]
    with torch.no_grad():
        d_read, o_read, kinds, parses = score_answers(model, proc, [clip], [read])
        d_plain, o_plain, _, _ = score_answers(model, proc, [clip], [ans])
        raw = tok.batch_decode(written, skip_special_tokens=True)  # what the old decode gave the parser
        d_raw, _, _, _ = score_answers(model, proc, [clip], raw)
    assert kinds == ["generated"] and parses[0].rationale == "Soft."
    np.testing.assert_array_equal(d_read, d_plain)
    np.testing.assert_array_equal(o_read, o_plain)
    # without the family's answer_text the think block is teacher-forced before the scores: other values
    assert np.abs(d_raw - d_plain).max() > 1e-4


def test_rollout_texts_drop_the_think_block(fam):
    """GRPO's / on-policy ASO's rollouts decode through the same path (a one-token rollout of the model,
    then the decoder on a completion that opens with a think block)."""
    from vqalib.train.grpo import sample_completions

    preset, model, proc = fam
    prompt = build_batch(proc, [clips()[0]]).model_inputs(False)
    torch.manual_seed(0)
    roll = sample_completions(model, proc, prompt, max_new_tokens=3)
    assert not any("<think>" in t for t in roll["texts"])
    banned = set(generation.suppressed_token_ids(proc, model))
    assert not set(roll["completion"].flatten().tolist()) & banned
    tok = proc.tokenizer
    ids = tok(THINK + "Visual Quality: 4", add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert generation.decode_answers(proc, ids, model) == ["Visual Quality: 4"]


# ----------------------------------------------------------------------------- the vision cache


def test_vision_cache_gives_the_unpatched_forward(fam):
    """``reuse_video_features`` with a repeated clip (a GRPO group): the logits of the un-patched forward
    (Qwen3-VL: merged and deepstack features tiled), each distinct clip encoded once."""
    from vqalib.train.vision_cache import reuse_video_features

    preset, model, proc = fam
    a, b = clips()
    batch = build_batch(proc, [a, a, b]).model_inputs(False)
    with torch.no_grad():
        plain = model(**batch).logits
        with reuse_video_features(model, share=True) as cache:
            cached = model(**batch).logits
            again = model(**batch).logits
    assert cache.n_videos == 6 and cache.n_encoded == 2  # 3 asked per call; 2 distinct, encoded once in the block
    diff = float((plain - cached).abs().max())
    MEASURED[f"{preset}/vision_cache"] = diff
    print(f"\n{preset}: logits with the vision cache vs without max |diff| = {diff:.2e}")
    torch.testing.assert_close(cached, plain, atol=TOL, rtol=0)
    torch.testing.assert_close(again, plain, atol=TOL, rtol=0)
    if preset == "tiny-qwen3-vl":  # the deepstack features matter: without them the logits differ
        from vqalib.train.vision_cache import _owner

        owner = _owner(model)
        orig = owner.get_video_features

        def merged_only(*args, **kw):
            out = orig(*args, **kw)
            out.deepstack_features = [tuple(torch.zeros_like(t) for t in layer) for layer in out.deepstack_features]
            return out

        owner.get_video_features = merged_only
        try:
            with torch.no_grad():
                no_deep = model(**batch).logits
        finally:
            del owner.get_video_features
        assert float((no_deep - plain).abs().max()) > 1e-3
