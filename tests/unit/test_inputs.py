"""build_batch: processor outputs the model needs (mm_token_type_ids, second_per_grid_ts), labels, padding."""

from __future__ import annotations

import pytest
import torch

from model_helpers import synthetic_clip
from vqalib.model import loading as models
from vqalib.schema import prompts
from vqalib.model.inputs import build_batch
from vqalib.schema.levels import DIMENSION_KEYS

ANSWER = prompts.format_answer(dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), "Soft but steady.")


@pytest.fixture(scope="module")
def tiny():
    model, proc = models.load_model_and_processor("tiny")
    return model.eval(), proc


def test_video_tokens_and_mm_token_type_ids(tiny):
    _, proc = tiny
    clip = synthetic_clip(n_frames=8)
    b = build_batch(proc, [clip])
    vid = proc.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    is_video = b["input_ids"] == vid
    assert torch.equal(b["mm_token_type_ids"] == 2, is_video)
    assert set(b["mm_token_type_ids"].unique().tolist()) == {0, 2}
    assert int(is_video.sum()) == int(b["video_grid_thw"][0].prod()) // 4
    assert b["video_grid_thw"][0].tolist() == [4, 8, 8]  # 8 frames / temporal patch 2, 112 px / 14
    assert b.sampling[0]["model_height"] == 112 and b.sampling[0]["n_frames"] == 8


def test_second_per_grid_ts_follows_the_sampled_fps(tiny):
    _, proc = tiny
    # 8 frames out of 60 at 30 fps: sampled at 4 fps, so one temporal patch (2 frames) spans 0.5 s
    b = build_batch(proc, [synthetic_clip(n_source_frames=60), synthetic_clip(n_source_frames=240)])
    assert b["second_per_grid_ts"].tolist() == pytest.approx([0.5, 2.0])
    assert b.sampling[0]["sampled_fps"] == pytest.approx(4.0)


def test_labels_cover_only_the_answer_and_im_end(tiny):
    _, proc = tiny
    b = build_batch(proc, [synthetic_clip()], [ANSWER])
    lab = b["labels"][0]
    kept = lab[lab != -100]
    assert proc.tokenizer.decode(kept) == ANSWER + "<|im_end|>"
    n_prompt = b.prompt_lengths[0]
    assert (lab[:n_prompt] == -100).all() and (lab[n_prompt:] != -100).all()


def test_appended_answer_equals_tokenising_the_whole_chat(tiny):
    _, proc = tiny
    clip = synthetic_clip()
    b = build_batch(proc, [clip], [ANSWER])
    text = proc.apply_chat_template(prompts.build_messages(answer=ANSWER), tokenize=False)
    full = proc(text=[text], videos=[clip.frames], video_metadata=[clip.metadata()], return_tensors="pt",
                do_sample_frames=False, size={"shortest_edge": 12544, "longest_edge": 12544})
    ids = full["input_ids"][0].tolist()
    assert b["input_ids"][0].tolist() == ids[: len(ids) - 1]  # the template adds a final "\n" after <|im_end|>


def test_score_positions_point_at_the_score_digits(tiny):
    _, proc = tiny
    answers = [ANSWER, prompts.format_answer({k: 1.0 for k in DIMENSION_KEYS})]
    for side in ("left", "right"):
        b = build_batch(proc, [synthetic_clip(seed=0), synthetic_clip(seed=1)], answers, padding_side=side)
        for i, ans in enumerate(answers):
            want = prompts.parse_answer(ans).scores
            for d, k in enumerate(DIMENSION_KEYS):
                p = int(b.score_positions[i, d])
                assert proc.tokenizer.decode(b["input_ids"][i, p: p + 3]) == f"{want[k]:.1f}"
    bad = build_batch(proc, [synthetic_clip()], ["Motion Quality: great"])
    assert bad.score_positions.tolist() == [[-1] * 5]


def test_left_and_right_padding_give_the_same_loss_and_logits(tiny):
    model, proc = tiny
    clips = [synthetic_clip(seed=0), synthetic_clip(seed=1)]
    answers = [ANSWER, "Short."]
    with torch.no_grad():
        outs = {}
        for side in ("left", "right"):
            b = build_batch(proc, clips, answers, padding_side=side)
            logits = model(**b).logits
            am = b["attention_mask"].bool()
            outs[side] = [logits[i][am[i]] for i in range(2)]
    for i in range(2):
        torch.testing.assert_close(outs["left"][i], outs["right"][i], atol=1e-5, rtol=1e-5)


def test_mm_token_type_ids_change_the_output(tiny):
    """Without mm_token_type_ids the model silently drops M-RoPE: the logits must differ."""
    model, proc = tiny
    b = build_batch(proc, [synthetic_clip()], [ANSWER])
    with torch.no_grad():
        with_mm = model(**b).logits
        without = model(**{k: v for k, v in b.items() if k != "mm_token_type_ids"}).logits
    assert (with_mm - without).abs().max() > 1e-4


def test_bad_inputs_raise_clearly(tiny):
    _, proc = tiny
    with pytest.raises(ValueError, match="2 videos but 1 answers"):
        build_batch(proc, [synthetic_clip(), synthetic_clip()], ["x"])
    with pytest.raises(TypeError, match="sample_video"):
        build_batch(proc, [torch.zeros(8, 112, 112, 3)])
    with pytest.raises(ValueError, match="padding_side"):
        build_batch(proc, [synthetic_clip()], padding_side="middle")
