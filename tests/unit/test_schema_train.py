"""Training under any rating schema (issue 23): the collator's answers, score positions, targets and masks for
MOS9, QALIGN5 and INT10; missing labels left out and masked; soft labels in ASO's reward; the schema read from
the dataset, checked against the config and the init_from checkpoint, and saved with every checkpoint.
The paper's default stays as it was (the existing collator/trainer tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model_helpers import synthetic_clip
from vqalib.schema import rating
from vqalib.schema.rating import INT10, MOS9, PAPER, QALIGN5
from vqalib.train.collator import (ClipExample, Examples, VideoCollator, answer_text, keyword_spans, load_examples,
                                   reveals_score, scrub_rationale, short_rationale)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


class _Clips:
    """A frame cache stand-in: a synthetic clip per path (no decoding)."""

    def get(self, path):
        return synthetic_clip(seed=abs(hash(str(path))) % 1000)

    draw = get


@pytest.fixture(scope="module")
def proc():
    from vqalib.model.loading import load_model_and_processor

    return load_model_and_processor("tiny")[1]


def _ex(vid: str, scores: dict, tags: dict | None = None, **kw) -> ClipExample:
    return ClipExample(vid, Path(f"{vid}.mp4"), scores, {}, tags or {}, **kw)


def _level_at(batch, proc, b: int, d: int, schema) -> str:
    """The level string whose token ids sit at the score position of (b, d)."""
    from vqalib.method.distributions import level_token_ids

    p = int(batch["score_positions"][b, d])
    assert p >= 0
    ids = batch["input_ids"][b].tolist()
    hits = [s for s, seq in zip(schema.strings, level_token_ids(proc.tokenizer, schema=schema))
            if tuple(ids[p:p + len(seq)]) == tuple(seq)]
    return max(hits, key=len)  # "10" over its prefix "1"


def test_mos9_collator_answer_positions_and_targets(proc):
    exs = [_ex("a", {"overall_quality": 3.5}, {"overall_quality": ["blur"]}), _ex("b", {"overall_quality": 1.0})]
    col = VideoCollator(proc, _Clips(), schema=MOS9)
    assert answer_text(exs[0], "short", MOS9) == "Seen: blur.\n\nOverall Quality: 3.5"
    assert answer_text(exs[1], "none", MOS9) == "Overall Quality: 1.0"
    batch = col(exs)
    assert batch["score_positions"].shape == (2, 1) and batch["targets"].tolist() == [[3.5], [1.0]]
    assert batch["label_mask"].tolist() == [[True], [True]] and "soft_targets" not in batch
    assert [_level_at(batch, proc, b, 0, MOS9) for b in range(2)] == ["3.5", "1.0"]
    labels = batch["labels"][0]
    assert proc.tokenizer.decode(labels[labels != -100]) == "Seen: blur.\n\nOverall Quality: 3.5<|im_end|>"
    # the prompt is the schema's instruction, not the paper's five dimensions
    prompt = proc.tokenizer.decode(batch["input_ids"][0])
    assert "Overall Quality" in prompt and "Motion Amplitude" not in prompt


def test_qalign5_words_are_written_and_their_first_token_is_the_score_position(proc):
    exs = [_ex("a", {"overall_quality": 4.0}), _ex("b", {"overall_quality": 5.0}), _ex("c", {"overall_quality": 1.0})]
    assert answer_text(exs[0], "none", QALIGN5) == "Overall Quality: good"
    batch = VideoCollator(proc, _Clips(), schema=QALIGN5, rationale="none")(exs)
    assert batch["targets"].tolist() == [[4.0], [5.0], [1.0]]
    assert [_level_at(batch, proc, b, 0, QALIGN5) for b in range(3)] == ["good", "excellent", "bad"]


def test_int10_three_dimensions_prefix_levels_and_targets(proc):
    ex = _ex("a", {"visual_quality": 10.0, "temporal_consistency": 1.0, "text_alignment": 7.0})
    assert answer_text(ex, "none", INT10) == "Visual Quality: 10\nTemporal Consistency: 1\nText Alignment: 7"
    batch = VideoCollator(proc, _Clips(), schema=INT10, rationale="none")([ex])
    assert batch["score_positions"].shape == (1, 3) and batch["targets"].tolist() == [[10.0, 1.0, 7.0]]
    assert [_level_at(batch, proc, 0, d, INT10) for d in range(3)] == ["10", "1", "7"]
    # repeat (GRPO's G copies) keeps one row per copy
    rep = VideoCollator(proc, _Clips(), schema=INT10, with_answers=False, repeat=2)([ex])
    assert rep["targets"].shape == (2, 3) and rep["score_positions"].tolist() == [[-1] * 3] * 2


def test_a_missing_dimension_has_no_score_line_and_is_masked(proc):
    ex = _ex("a", {"visual_quality": 8.0, "text_alignment": 3.0},  # no temporal_consistency label
             ratings={"visual_quality": [8.0, 7.0], "text_alignment": [3.0]})
    full = _ex("b", {"visual_quality": 2.0, "temporal_consistency": 9.0, "text_alignment": 5.0},
               ratings={"visual_quality": [2.0], "temporal_consistency": [9.0], "text_alignment": [5.0]})
    text = answer_text(ex, "none", INT10)
    assert text == "Visual Quality: 8\nText Alignment: 3" and "Temporal" not in text
    batch = VideoCollator(proc, _Clips(), schema=INT10, rationale="none", with_raters=True)([ex, full])
    assert batch["label_mask"].tolist() == [[True, False, True], [True, True, True]]
    assert math.isnan(float(batch["targets"][0, 1])) and batch["targets"][0, [0, 2]].tolist() == [8.0, 3.0]
    assert int(batch["score_positions"][0, 1]) == -1
    assert [_level_at(batch, proc, 0, d, INT10) for d in (0, 2)] == ["8", "3"]
    assert bool(batch["rater_scores"][0, 1].isnan().all())  # no rating of a missing label: NaN, not an error
    exs = Examples([ex, full], INT10)
    assert exs.n_missing == {"visual_quality": 0, "temporal_consistency": 1, "text_alignment": 0}
    rep = exs.missing_report()
    assert rep["n_missing"] == 1 and rep["n_clips_with_missing"] == 1 and rep["n_clips"] == 2
    assert ex.targets(INT10)[1] != ex.targets(INT10)[1]  # NaN


def test_aso_target_masks_missing_labels_and_uses_the_soft_label():
    from vqalib.method.aso import optimal_policy, reward_abs
    from vqalib.train.aso_trainer import aso_target
    from vqalib.train.common import load_config

    cfg = load_config("aso", None, {"lam": 0.5, "beta": 2.0})
    k = INT10.n_levels
    logp_ref = torch.log_softmax(torch.randn(2, 3, k, generator=torch.Generator().manual_seed(0)), -1)
    scores = torch.tensor([[8.0, float("nan"), 3.0], [2.0, 9.0, 5.0]])
    t = aso_target(cfg, logp_ref, scores, schema=INT10)
    assert t.shape == (2, 3, k) and bool(t[0, 1].isnan().all()) and not bool(t[1].isnan().any())
    v = torch.arange(1.0, 11.0, dtype=torch.float64)
    want = optimal_policy(logp_ref[1, 1].double(), -2.0 * (v - 9.0).abs(), 0.5, schema=INT10).float()
    assert torch.allclose(t[1, 1], want, atol=1e-6)
    # soft label: R(s) = -beta sum_j t_j |s - v_j|
    soft = torch.zeros(2, 3, k)
    soft[..., 6], soft[..., 8] = 0.25, 0.75  # 7 and 9
    soft[0, 1] = float("nan")
    r = reward_abs(target=soft[1, 0].double(), beta=2.0, schema=INT10)
    assert torch.allclose(r, -2.0 * (0.25 * (v - 7).abs() + 0.75 * (v - 9).abs()))
    ts = aso_target(cfg, logp_ref, scores, schema=INT10, soft=soft)
    want = optimal_policy(logp_ref[1, 0].double(), r, 0.5, schema=INT10).float()
    assert torch.allclose(ts[1, 0], want, atol=1e-6) and bool(ts[0, 1].isnan().all())
    assert not torch.allclose(ts[1, 0], t[1, 0])  # the soft label moves pi* off the mean's one-hot reward


def test_aso_score_loss_leaves_masked_dimensions_out():
    from vqalib.train.aso_trainer import score_loss

    raw = torch.log_softmax(torch.randn(1, 3, 10), -1) - 0.1
    target = torch.softmax(torch.randn(1, 3, 10), -1)
    mask = torch.tensor([[True, False, True]])
    got = score_loss(raw, target, True, mask=mask)
    each = -(target * raw).sum(-1)
    assert torch.allclose(got, (each[0, 0] + each[0, 2]) / 2)


def test_score_token_mask_covers_each_level_s_own_tokens(proc):
    from vqalib.method.distributions import level_token_ids
    from vqalib.train.aso_trainer import score_token_mask

    ex = _ex("a", {"visual_quality": 10.0, "temporal_consistency": 1.0, "text_alignment": 7.0})
    batch = VideoCollator(proc, _Clips(), schema=INT10, rationale="none")([ex])
    ids = level_token_ids(proc.tokenizer, schema=INT10)
    m = score_token_mask(batch["labels"], batch["score_positions"], level_ids=ids)
    picked = proc.tokenizer.decode(batch["input_ids"][0][m[0]])
    assert picked.replace(" ", "") == "1017"  # "10" (2 tokens), "1", "7": no newline, no other token


def test_rationale_helpers_follow_the_schema():
    # score words and numbers of the schema's levels are tells
    assert reveals_score("The picture is excellent overall.", QALIGN5) == ["excellent"]
    assert reveals_score("I would give it 10 today.", INT10) == ["10"]
    assert reveals_score("I would give it 10 today.") == []  # the paper reads 1-5 only
    assert scrub_rationale("Sharp detail. It deserves a 9.", INT10) == "Sharp detail."
    # tags of the schema's dimensions; a dimension that is not a quality (an amount) is left out
    sch = rating.make_schema("two", [rating.Dimension("sharpness", "Sharpness", tags=("blur",)),
                                     rating.Dimension("motion_amount", "Motion Amount", tags=("static",), quality=False)],
                             values=[1, 2, 3])
    assert short_rationale({"sharpness": ["blur"], "motion_amount": ["static"]}, sch) == "Seen: blur."
    assert short_rationale({"overall_quality": ["blocking"]}, MOS9) == "Seen: compression blocking."  # levels.TAG_TEXT
    assert short_rationale({"overall_quality": ["dropped_frames"]}, MOS9) == "Seen: dropped frames."
    # the keyword target finds the schema's keywords
    ex = _ex("a", {"overall_quality": 4.0})
    ex.rationales = {"overall_quality": "Crisp and steady, overall Good."}
    spans = keyword_spans(ex, QALIGN5)
    assert len(spans) == 1 and spans[0][2] == 4.0 and spans[0][3] is True


# ------------------------------------------------------------------------------------------------ datasets

RATERS = ("r1", "r2", "r3")


def _dataset(root: Path, schema, scores: dict[str, dict[str, list[float] | None]], mos_std: dict | None = None) -> Path:
    """A dataset folder under ``schema``: one 8-frame clip per video, the given per-rater scores per
    dimension (``None``: that label is missing), or a MOS row with a std when ``mos_std`` names the video."""
    from vqalib.data.synth import write_mp4

    videos, ratings = [], []
    for i, (vid, dims) in enumerate(scores.items()):
        (root / "clips").mkdir(parents=True, exist_ok=True)
        write_mp4(root / "clips" / f"{vid}.mp4", np.full((8, 56, 56, 3), 40 + 50 * i, dtype=np.uint8), fps=8)
        videos.append({"video_id": vid, "path": f"clips/{vid}.mp4", "duration": 1.0, "fps": 8.0, "width": 56,
                       "height": 56, "category": "test", "source": "unit", "split": "train"})
        for dim, vals in dims.items():
            if vals is None:
                continue
            if mos_std and vid in mos_std:
                ratings.append({"video_id": vid, "rater": "mos", "phase": "final", "dimension": dim,
                                "score": float(vals[0]), "std": mos_std[vid], "tags": [], "comment": ""})
                continue
            for phase in ("pilot", "final"):
                for rater, v in zip(RATERS, vals):
                    ratings.append({"video_id": vid, "rater": rater, "phase": phase, "dimension": dim,
                                    "score": float(v), "tags": [], "comment": ""})
    (root / "videos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in videos))
    (root / "ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ratings))
    (root / "rationales.jsonl").write_text("")
    schema.save(root)
    return root


def test_load_examples_reads_the_dataset_schema_and_leaves_missing_labels_out(tmp_path):
    root = _dataset(tmp_path / "int10", INT10, {
        "v1": {"visual_quality": [7, 8, 9], "temporal_consistency": [1, 2, 2], "text_alignment": [10, 10, 9]},
        "v2": {"visual_quality": [3, 3, 4], "temporal_consistency": None, "text_alignment": [5, 6, 7]}})
    exs = load_examples(str(root), "train")
    assert exs.schema == INT10 and [e.video_id for e in exs] == ["v1", "v2"]
    assert exs[0].scores == {"visual_quality": 8.0, "temporal_consistency": 2.0, "text_alignment": 10.0}
    assert exs[1].scores == {"visual_quality": 3.0, "text_alignment": 6.0}
    assert exs.n_missing["temporal_consistency"] == 1 and exs.missing_report()["n_missing"] == 1
    assert answer_text(exs[1], "short", exs.schema) == "Seen: no defects.\n\nVisual Quality: 3\nText Alignment: 6"
    assert load_examples(str(root), "train", schema="int10").schema == INT10  # stated and equal: fine
    with pytest.raises(ValueError, match=r"(?s)mos9.*int10"):
        load_examples(str(root), "train", schema="mos9")


def test_gaussian_schema_gives_soft_targets_from_mos_and_std(tmp_path, proc):
    gauss = rating.schema_from_dict({"preset": "mos9", "name": "mos9-gauss", "target_rule": "gaussian"})
    root = _dataset(tmp_path / "g", gauss, {"v1": {"overall_quality": [3.3]}, "v2": {"overall_quality": [4.6]}},
                    mos_std={"v1": 0.6, "v2": 0.0})
    exs = load_examples(str(root), "train")
    assert exs.schema == gauss and exs[0].scores == {"overall_quality": 3.5}  # SFT text: the nearest level
    t = np.asarray(exs[0].soft["overall_quality"])
    assert t.shape == (9,) and t.sum() == pytest.approx(1.0) and np.allclose(t, gauss.target(3.3, 0.6))
    assert (t > 0.05).sum() >= 3  # spread over the levels around 3.3
    assert np.asarray(exs[1].soft["overall_quality"]).tolist() == gauss.target(4.6, 0.0).tolist()  # std 0: one-hot
    batch = VideoCollator(proc, _Clips(), schema=gauss, rationale="none")(list(exs))
    assert batch["soft_targets"].shape == (2, 1, 9)
    assert torch.allclose(batch["soft_targets"][0, 0], torch.as_tensor(t, dtype=torch.float32))


# ------------------------------------------------------------------------------------------------ checkpoints


def test_checkpoints_carry_the_schema_and_a_mismatch_is_refused(tmp_path):
    from types import SimpleNamespace

    from vqalib.train.base import _SaveSchema, check_init_schema, checkpoint_schema
    from vqalib.train.common import load_config, write_manifest

    sft = tmp_path / "sft"
    sft.mkdir()
    write_manifest(load_config("sft", None, {"output_dir": str(sft)}), sft)
    assert checkpoint_schema(sft) == PAPER  # a stage folder from before schemas: the paper's
    assert checkpoint_schema(tmp_path) is None  # not a stage's folder (a base model): unknown, not checked
    MOS9.save(sft)
    assert checkpoint_schema(sft) == MOS9
    cfg = load_config("aso", None, {"init_from": str(sft), "output_dir": str(tmp_path / "aso")})
    assert check_init_schema(cfg, MOS9) == MOS9
    with pytest.raises(ValueError, match=r"(?s)mos9.*int10"):
        check_init_schema(cfg, INT10)
    # every checkpoint-N the Trainer saves gets the schema too
    (tmp_path / "run" / "checkpoint-3").mkdir(parents=True)
    _SaveSchema(INT10).on_save(SimpleNamespace(output_dir=str(tmp_path / "run")),
                               SimpleNamespace(global_step=3, is_world_process_zero=True), None)
    assert rating.schema_of_folder(tmp_path / "run" / "checkpoint-3") == INT10


def test_config_rating_schema_is_validated():
    from vqalib.train.common import load_config

    assert load_config("sft", None, {"rating_schema": "int10"}).rating_schema == "int10"
    with pytest.raises(ValueError, match="rating_schema='nope'"):
        load_config("sft", None, {"rating_schema": "nope"})


def test_the_paper_default_batch_is_the_paper_answer_with_a_full_mask(proc):
    from vqalib.schema import prompts
    from vqalib.schema.levels import DIMENSION_KEYS

    ex = _ex("a", dict(zip(DIMENSION_KEYS, [3.5, 2.0, 4.0, 1.0, 5.0])), {"clarity_quality": ["blur"]})
    batch = VideoCollator(proc, _Clips())([ex])
    want = prompts.format_answer(ex.scores, "Seen: blur.")
    assert answer_text(ex) == answer_text(ex, "short", PAPER) == want
    labels = batch["labels"][0]
    assert proc.tokenizer.decode(labels[labels != -100]) == want + "<|im_end|>"
    assert batch["label_mask"].tolist() == [[True] * 5] and "soft_targets" not in batch
    assert batch["score_positions"].shape == (1, 5) and (batch["score_positions"] >= 0).all()


def test_aso_refuses_an_eps_floor_too_large_for_the_schema_s_levels():
    from vqalib.train.aso_trainer import prepare_aso
    from vqalib.train.common import load_config

    cfg = load_config("aso", None, {"eps": 0.105})  # < 1/9 (the config check), >= 1/10
    exs = Examples([_ex("a", {"visual_quality": 8.0, "temporal_consistency": 2.0, "text_alignment": 3.0})], INT10)
    with pytest.raises(ValueError, match=r"1/10"):
        prepare_aso(cfg, None, None, exs, None, progress=False)


def test_a_checkpoint_of_the_same_answers_starts_a_stage_on_data_with_another_raw_scale(tmp_path):
    """A KoNViD import (raw 1-5) flipped to DMOS keeps the dimensions and levels: its SFT checkpoint starts ASO
    on it (the data's schema is used); other levels are refused listing what differs."""
    from vqalib.schema import rating
    from vqalib.train.base import check_init_schema
    from vqalib.train.common import load_config, write_manifest

    mos = rating.make_schema("konvid-mos-mos9", [{"name": "Overall Quality", "raw_range": [1, 5]}], MOS9.values,
                             MOS9.strings, MOS9.keywords, benchmark_dimension="overall_quality")
    dmos = rating.make_schema("konvid-dmos", [{"name": "Overall Quality", "raw_range": [1, 5], "higher_is_better": False}],
                              MOS9.values, MOS9.strings, MOS9.keywords, benchmark_dimension="overall_quality")
    sft = tmp_path / "sft"
    sft.mkdir()
    write_manifest(load_config("sft", None, {"output_dir": str(sft)}), sft)
    mos.save(sft)
    cfg = load_config("aso", None, {"init_from": str(sft), "output_dir": str(tmp_path / "aso")})
    assert check_init_schema(cfg, dmos) == mos
    assert check_init_schema(cfg, MOS9) == mos
    with pytest.raises(ValueError, match=r"level values: \[1\.0, 2\.0, 3\.0, 4\.0, 5\.0\] \(the data's\)"):
        check_init_schema(cfg, rating.QALIGN5)


def test_rating_schema_setting_names_what_differs(tmp_path):
    from vqalib.schema import rating
    from vqalib.train.collator import check_schema

    renamed = rating.schema_from_dict({**MOS9.to_dict(), "name": "my-mos"})
    assert check_schema(MOS9, renamed, "d") is MOS9  # the same schema under another name
    konvid = rating.make_schema("konvid", [{"name": "Overall Quality", "raw_range": [1, 5]}], MOS9.values,
                                MOS9.strings, MOS9.keywords, benchmark_dimension="overall_quality")
    with pytest.raises(ValueError, match=r"overall_quality raw_range: \(1\.0, 5\.0\) \(the dataset's\) vs None "
                                         r"\(rating_schema\).*drop rating_schema"):
        check_schema(konvid, "mos9", "d")
