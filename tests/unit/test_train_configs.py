"""Training configs and answer texts: every shipped YAML loads, overrides are typed, the short
rationale never gives the score away, and a missing rationale is an error, not a silent default."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqalib.schema.levels import DIMENSION_KEYS, KEYWORDS
from vqalib.train.collator import ClipExample, answer_text, short_rationale
from vqalib.train.common import ASOConfig, GRPOConfig, SFTConfig, load_config, parse_overrides
from vqalib.train.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "env" / "train_configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    stage = path.stem.split("_")[0]
    cfg = load_config(stage, path)
    assert isinstance(cfg, {"sft": SFTConfig, "grpo": GRPOConfig, "aso": ASOConfig}[stage])
    if "7b" in path.stem:  # paper values
        assert cfg.bf16 and cfg.device == "cuda"
        assert cfg.batch_size * cfg.grad_accum * (8 if cfg.finetune == "full" else 1) == 32
        if stage == "sft" and cfg.finetune == "full":
            assert cfg.lr == 1e-6 and cfg.weight_decay == 0.01 and cfg.lr_scheduler == "cosine" and cfg.num_epochs == 1
        if stage == "aso":
            assert cfg.lr == 5e-6 and cfg.lam == 1.0 and cfg.beta == 1.0
        if stage == "grpo":
            assert cfg.num_generations == 8 and cfg.kl_coef == 0.1


def test_overrides_are_typed_and_checked():
    cfg = load_config("aso", None, ["lam=0.5", "on_policy=yes", "max_steps=7"])
    assert cfg.lam == 0.5 and cfg.on_policy is True and cfg.max_steps == 7
    with pytest.raises(ValueError, match="max_steps.*not a valid int"):
        load_config("sft", None, ["max_steps=1.5"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides(["lr"])
    with pytest.raises(ValueError, match="finetune='half'"):
        load_config("sft", None, ["finetune=half"])


def _example(rationales=None):
    scores = {k: 1.0 + i for i, k in enumerate(DIMENSION_KEYS)}
    tags = {"clarity_quality": ["blur"], "motion_amplitude": ["large_motion"], "motion_quality": ["flicker"]}
    return ClipExample("v1", Path("v1.mp4"), scores, rationales or {}, tags)


def test_short_rationale_names_defects_but_no_score():
    text = short_rationale(_example().tags)
    assert text == "Seen: brightness flicker, blur."  # amplitude tags (an amount, not a defect) left out
    assert not any(ch.isdigit() for ch in text)
    assert not any(kw.lower() in text.lower() for kw in KEYWORDS.values())
    assert short_rationale({}) == "Seen: no defects."


def test_answer_text_modes():
    ex = _example()
    assert answer_text(ex, "none").startswith("Motion Quality: 1.0")
    assert answer_text(ex, "short").startswith("Seen: brightness flicker, blur.\n\nMotion Quality: 1.0")
    with pytest.raises(ValueError, match="no rationales but rationale='full'"):
        answer_text(ex, "full")
    full = _example({k: f"Reason {i}." for i, k in enumerate(DIMENSION_KEYS)})
    assert answer_text(full, "full").startswith("Reason 0.\nReason 1.")


# ------------------------------------------------------------------ issue 9: what pi_ref is read after

def test_scrubbed_rationales_drop_every_sentence_naming_a_level():
    from vqalib.schema.prompts import parse_answer, template_rationale
    from vqalib.train.collator import reveals_score, scrub_rationale

    rats = {k: template_rationale(k, 1.0 + i, ["blur"] if k == "clarity_quality" else []) for i, k in enumerate(DIMENSION_KEYS)}
    ex = _example(rats)
    full = parse_answer(answer_text(ex, "full")).rationale
    assert reveals_score(full)  # the dataset's rationales name the level ("... is abysmal.")
    scrubbed = answer_text(ex, "scrubbed")
    assert not reveals_score(parse_answer(scrubbed).rationale)
    assert "The video shows blur." in scrubbed  # the visual evidence stays
    assert scrubbed.endswith(answer_text(ex, "none"))  # the score lines are unchanged
    # inputs from the wild: paper-style "Overall ..." lines, numbers, synonyms, decimals inside a sentence
    text = ("Dynamic Motion Quality Reason: smooth pan.\nOverall Clarity: Overall clarity quality Satisfactory.\n"
            "Rated 4/5 overall. The frame is 1080p. Score 3.5! Motion is decent. Sharp edges.")
    # issue 20: "1080p" is a template tell (clarity score 5) and the emptied "Overall Clarity:" heading goes
    assert scrub_rationale(text) == "Dynamic Motion Quality Reason: smooth pan.\nSharp edges."
    # the sample dataset's style: keyword and evidence in one sentence; only the clause with the keyword goes
    assert scrub_rationale("Clarity Quality is subpar: the video shows blur, so fine detail is lost.") == \
        "the video shows blur, so fine detail is lost."
    # issue 20: the sample dataset's motion-amount sentence is chosen by the level (synth.amplitude_tag): a tell
    assert scrub_rationale("The camera moves at a moderate pace, so the motion amplitude is rated acceptable.") == ""
    for word in KEYWORDS.values():
        assert reveals_score(f"It looks {word.lower()} overall.")


def test_teacher_forced_aso_refuses_rationales_that_name_the_score():
    with pytest.raises(ValueError, match="rationale=full teacher-forces rationales that name the score"):
        load_config("aso", None, ["rationale=full"])
    for mode in ("scrubbed", "short", "none"):
        assert load_config("aso", None, [f"rationale={mode}"]).rationale == mode
    # on-policy reads pi_ref after the model's own (scrubbed) sample, so the mode does not matter there
    assert load_config("aso", None, ["rationale=full", "on_policy=true"]).on_policy


def test_pi_ref_collator_warns_on_a_revealing_mode():
    from vqalib.train.aso_trainer import pi_ref_collator

    with pytest.warns(UserWarning, match="may name the score"):
        pi_ref_collator(None, None, "full")


def test_shipped_aso_configs_read_pi_ref_after_score_free_text_and_state_lambda_beta():
    import yaml

    from vqalib.train.collator import SCORE_FREE_MODES

    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "env" / "train_configs").glob("aso_*.yaml")):
        raw = yaml.safe_load(path.read_text())
        assert {"lam", "beta", "rationale", "rationale_loss", "reward", "penalise_outside"} <= set(raw), path.name
        cfg = load_config("aso", path)
        # issue 20: target_position=keyword reads pi at the keyword itself, before the text that names the level
        assert cfg.on_policy or cfg.rationale in SCORE_FREE_MODES or cfg.target_position == "keyword", path.name
        assert cfg.rationale_loss == "kl", path.name  # the paper's whole-sequence KL
    for path in sorted((root / "env" / "train_configs").glob("grpo_*.yaml")):
        raw = yaml.safe_load(path.read_text())
        assert {"kl_coef", "acc_rounding", "group_by", "reward"} <= set(raw), path.name
    # notebook 06's parameter sets: tests/unit/test_stage_config.py::test_every_parameter_set_resolves_to_a_valid_config


def test_on_policy_ce_is_refused_and_kl_is_the_default():
    assert ASOConfig().rationale_loss == "kl"
    with pytest.raises(ValueError, match="self-training"):
        load_config("aso", None, ["on_policy=true", "rationale_loss=ce"])
    assert load_config("aso", None, ["on_policy=true", "rationale_loss=kl"]).on_policy


def test_pi_ref_key_changes_with_everything_that_changes_pi_ref(tmp_path):
    from vqalib.train.aso_trainer import pi_ref_key

    ckpt = tmp_path / "sft"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"weights-1")
    (ckpt / "config.json").write_text("{}")
    base = {"init_from": str(ckpt), "rationale": "short"}
    exs = [_example()]
    key = pi_ref_key(load_config("aso", None, base), exs)
    assert key == pi_ref_key(load_config("aso", None, base), exs)  # deterministic
    for change in ({"finetune": "lora"}, {"finetune": "qlora"}, {"bf16": True}, {"augment": False},
                   {"rationale": "none"}, {"instruction": "Rate it."}, {"max_pixels": 50176}):
        assert pi_ref_key(load_config("aso", None, {**base, **change}), exs) != key, change
    import dataclasses

    # issue 20: pi_ref read at the keyword is another distribution than at the score line
    assert pi_ref_key(dataclasses.replace(load_config("aso", None, base), target_position="keyword"), exs) != key
    relabelled = _example()
    relabelled.scores["clarity_quality"] = 1.5  # an earlier score line is teacher-forced: labels count
    assert pi_ref_key(load_config("aso", None, base), [relabelled]) != key
    (ckpt / "model.safetensors").write_bytes(b"weights-2")  # same path and config, new weights
    assert pi_ref_key(load_config("aso", None, base), exs) != key


def test_multi_rater_scores_reach_the_batch_keys_helper():
    from vqalib.train.collator import NON_MODEL_KEYS, rater_scores

    ex = _example()
    ex.ratings = {k: [1.0 + i, 2.0 + i] + ([3.0] if i == 0 else []) for i, k in enumerate(DIMENSION_KEYS)}
    r = rater_scores([ex], repeat=2)
    assert r.shape == (2, 5, 3) and float(r[0, 0, 2]) == 3.0 and bool(r[0, 1, 2].isnan())
    assert "rater_scores" in NON_MODEL_KEYS
    ex.ratings["content_quality"] = []
    with pytest.raises(ValueError, match="no rater score for 'content_quality'"):
        rater_scores([ex])


#: the notebook that trains each stage (its default CONFIG is the stage's tiny YAML; how its parameters and
#: SET reach the config: tests/unit/test_stage_config.py)
NOTEBOOK_OF = {"sft": "04_sft", "grpo": "05_grpo", "aso": "06_aso"}


@pytest.mark.parametrize("stage", ["sft", "grpo", "aso"])
def test_train_without_config_is_the_demo_config(stage, capsys):
    """``python -m vqalib train STAGE`` with no ``--config`` trains with ``STAGE_tiny.yaml``, whose
    settings are the ones the notebook trains with by default. (Before: the dataclass defaults, e.g.
    SFT on the all-random ``tiny`` model with short rationales, 300 steps, weight decay 0.01.)"""
    import ast
    import json

    import papermill as pm

    from vqalib.train.cli import main

    assert main([stage, "--print-config"]) == 0
    out = capsys.readouterr()
    bare = json.loads(out.out)
    assert f"config: {CONFIGS[0].parent / f'{stage}_tiny.yaml'} (no --config given" in out.err
    assert main([stage, "--config", f"env/train_configs/{stage}_tiny.yaml", "--print-config"]) == 0
    assert bare == json.loads(capsys.readouterr().out)

    params = pm.inspect_notebook(str(CONFIGS[0].parents[2] / "notebooks" / f"{NOTEBOOK_OF[stage]}.ipynb"))
    assert ast.literal_eval(params["CONFIG"]["default"]) == f"env/train_configs/{stage}_tiny.yaml"


def test_cli_rejects_bad_config(capsys):
    assert main(["aso", "--set", "lam=0"]) == 2
    assert "lambda must be > 0" in capsys.readouterr().err
    assert main(["aso", "--set", "rationale=full"]) == 2  # pi_ref would be read after the score is named
    assert "rationale=full teacher-forces rationales that name the score" in capsys.readouterr().err
    assert main(["sft", "--set", "finetun=lora"]) == 2
    assert "unknown sft config key 'finetun'" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 24: Qwen3-VL-8B-Instruct beside the 7B configs

ROOT = Path(__file__).resolve().parents[2]
QWEN3_VL_8B = sorted((ROOT / "env" / "train_configs").glob("*_qwen3vl_8b*.yaml"))
#: each Qwen3-VL-8B config and the 7B config it is the counterpart of
COUNTERPART = {"sft_qwen3vl_8b_lora": "sft_7b_lora", "grpo_qwen3vl_8b_lora": "grpo_7b_lora", "aso_qwen3vl_8b_lora": "aso_7b"}


def test_qwen3_vl_8b_configs_are_shipped_for_every_stage():
    assert sorted(p.stem for p in QWEN3_VL_8B) == sorted(COUNTERPART)


@pytest.mark.parametrize("path", QWEN3_VL_8B, ids=[p.stem for p in QWEN3_VL_8B])
def test_qwen3_vl_8b_configs_hold_what_the_7b_configs_hold(path):
    """LoRA, bf16, model Qwen/Qwen3-VL-8B-Instruct of the Qwen3-VL family; the 7B configs' checks (paper values
    in test_shipped_configs_load; DataLoader workers within a frame budget in test_frame_cache.py) hold; every
    other setting equals the 7B counterpart's except the run folders and what LoRA on one GPU changes (ASO:
    full FT on 8 GPUs x grad_accum 4 -> LoRA with grad_accum 32 and the LoRA lr of notebook 06's qwen7b_lora set)."""
    import dataclasses

    from vqalib.model.family import QWEN3_VL, family_of
    from vqalib.train.common import config_family, sampling_config, training_arguments

    stage = path.stem.split("_")[0]
    cfg = load_config(stage, path)
    assert isinstance(cfg, {"sft": SFTConfig, "grpo": GRPOConfig, "aso": ASOConfig}[stage])
    assert cfg.model == "Qwen/Qwen3-VL-8B-Instruct" and cfg.finetune == "lora" and cfg.bf16
    assert family_of(cfg.model) is QWEN3_VL and config_family(cfg) is QWEN3_VL  # init_from absent here: the model's
    # the 7B configs' paper values (test_shipped_configs_load)
    assert cfg.device == "cuda" and cfg.batch_size * cfg.grad_accum == 32
    if stage == "aso":
        assert cfg.lam == 1.0 and cfg.beta == 1.0 and cfg.rationale_loss == "kl"
    if stage == "grpo":
        assert cfg.num_generations == 8 and cfg.kl_coef == 0.1
    # the 7B configs' worker and frame-cache budget (tests/unit/test_frame_cache.py)
    cpu = load_config(stage, path, ["device=cpu", "output_dir=runs/test_frame_cache"])
    assert cpu.num_workers > 0 and 0 < (1 + cpu.num_workers) * cpu.frame_cache_mb <= 4096 and cpu.frame_disk_cache_mb > 0
    args = training_arguments(cpu)
    assert args.dataloader_num_workers == cpu.num_workers and args.dataloader_persistent_workers
    # frames at Qwen3-VL's factor 32: 448 x 448 stays 448 x 448
    s = sampling_config(cfg)
    assert s.patch_factor == 32 and s.min_pixels == 4 * 32 * 32
    from vqalib.video.frames import resized_size

    assert resized_size(448, 448, s) == (448, 448) and resized_size(1080, 1920, s) == (320, 576)
    # every other setting is the 7B counterpart's
    ref = load_config(stage, ROOT / "env" / "train_configs" / f"{COUNTERPART[path.stem]}.yaml")
    a, b = dataclasses.asdict(cfg), dataclasses.asdict(ref)
    differ = {k for k in a if a[k] != b[k]}
    allowed = {"model", "output_dir", "init_from"}
    if stage == "aso":
        allowed |= {"finetune", "grad_accum", "lr"}
        assert (ref.finetune, ref.grad_accum * 8, cfg.grad_accum) == ("full", 32, 32) and cfg.lr == 5e-5
    assert differ <= allowed, sorted(differ - allowed)
    assert "qwen3vl" in cfg.output_dir and (not cfg.init_from or "qwen3vl" in cfg.init_from)


def test_config_family_follows_init_from_then_model(tmp_path):
    """The family a config trains (what its frame size follows): the init_from checkpoint's when it exists
    (a full model by its config.json, an adapter folder by its base), else the model's (tiny preset, hub id)."""
    import json

    from vqalib.model.family import QWEN2_5_VL, QWEN3_5, QWEN3_VL
    from vqalib.train.common import config_family, sampling_config

    assert config_family(load_config("sft", None, ["model=tiny"])) is QWEN2_5_VL
    assert config_family(load_config("sft", None, ["model=tiny-qwen3.5"])) is QWEN3_5
    assert config_family(load_config("sft", None, ["model=Qwen/Qwen3.5-9B"])) is QWEN3_5
    full = tmp_path / "sft"
    full.mkdir()
    (full / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    assert config_family(load_config("aso", None, [f"init_from={full}", "model=tiny"])) is QWEN3_VL
    qlora = tmp_path / "sft_q"
    (qlora / "adapter").mkdir(parents=True)
    (qlora / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen3.5-9B"}))
    assert config_family(load_config("aso", None, [f"init_from={qlora}", "model=tiny"])) is QWEN3_5
    # a missing init_from (not trained yet): the model's
    assert config_family(load_config("grpo", None, [f"init_from={tmp_path / 'none'}", "model=tiny"])) is QWEN2_5_VL
    # the Qwen2.5-VL sampling is the one before the field existed (factor 28, min_pixels 3136)
    s = sampling_config(load_config("sft", None, ["model=tiny", "max_pixels=12544"]))
    assert (s.patch_factor, s.min_pixels, s.max_pixels) == (28, 3136, 12544)
    s = sampling_config(load_config("sft", None, ["model=tiny-qwen3-vl", "max_pixels=12544"]))
    assert (s.patch_factor, s.min_pixels, s.max_pixels) == (32, 4096, 12544)
    with pytest.raises(ValueError, match="not a model folder, a tiny preset"):
        config_family(load_config("sft", None, ["model=someone/llava-video-7b"]))
