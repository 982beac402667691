"""Issue 19 item 5: no generation setting leaks from a checkpoint's ``generation_config.json``.

Qwen2.5-VL-7B-Instruct's file sets ``do_sample: true, repetition_penalty: 1.05, temperature: 1e-6``
and every fine-tuned checkpoint inherits it. The tests save the tiny model twice with the same
weights, once with a clean generation config and once with a penalising one, load both through the
real loader, and check that greedy generation and GRPO's rollouts give the same tokens from both, that
the rollouts use exactly the configured filters, and that the manifests record the settings. The same
for ``predict`` and the scorer's generate mode end to end: ``tests/integration/test_predict_runs.py``.
"""

from __future__ import annotations

import json

import pytest
import torch

from model_helpers import synthetic_clip
from vqalib.model import generation, loading as models
from vqalib.eval import predict
from vqalib.model.inputs import build_batch
from vqalib.video.frames import SamplingConfig

SAMPLING = SamplingConfig(fps=2.0, max_frames=4, max_pixels=112 * 112, min_pixels=112 * 112)
#: What Qwen2.5-VL-7B-Instruct's generation_config.json sets besides token ids (../shared/data/qwen2_5_vl).
QWEN_7B_FILE = {"do_sample": True, "repetition_penalty": 1.05, "temperature": 1e-6}
#: A stronger file, so that a leak certainly changes the tokens: every filter a checkpoint can set.
PENALISING = {"do_sample": True, "repetition_penalty": 2.0, "no_repeat_ngram_size": 2, "temperature": 0.5,
              "top_k": 3, "top_p": 0.5, "min_p": 0.2}


def _save(model, proc, path, **gen):
    from transformers import GenerationConfig

    ids = generation.stop_token_ids(proc)
    model.generation_config = GenerationConfig(eos_token_id=ids, pad_token_id=ids[-1], bos_token_id=ids[-1], **gen)
    model.save_pretrained(str(path))
    proc.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """``{"clean": (model, proc), "qwen_7b": ..., "penalising": ...}``: the same weights, three generation configs."""
    model, proc = models.load_model_and_processor("tiny")
    root = tmp_path_factory.mktemp("ckpts")
    paths = {"clean": _save(model, proc, root / "clean", do_sample=False),
             "qwen_7b": _save(model, proc, root / "qwen_7b", **QWEN_7B_FILE),
             "penalising": _save(model, proc, root / "penalising", **PENALISING)}
    out = {}
    for name, p in paths.items():
        net, pr = models.load_model_and_processor(str(p))
        out[name] = (net.eval(), pr)
    assert out["penalising"][0].generation_config.repetition_penalty == 2.0, "the saved generation config must load"
    return out


def _batch(proc):
    return build_batch(proc, [synthetic_clip(n_frames=4, seed=s) for s in (0, 1, 2)])


def test_the_penalty_changes_tokens_when_it_leaks(checkpoints):
    """Sanity: a plain greedy ``generate`` (the call prediction made before) is changed by the file."""
    b = _batch(checkpoints["clean"][1]).model_inputs(False)
    with torch.no_grad():
        outs = {k: checkpoints[k][0].generate(**b, max_new_tokens=24, do_sample=False) for k in ("clean", "penalising")}
    assert not torch.equal(outs["clean"], outs["penalising"]), "the penalising file must change greedy tokens when merged"


@pytest.mark.parametrize("name", ["qwen_7b", "penalising"])
def test_greedy_ids_ignore_the_checkpoint_generation_config(checkpoints, name):
    model, proc = checkpoints[name]
    before = model.generation_config
    b = _batch(proc)
    clean = predict.generate_ids(checkpoints["clean"][0], proc, b, max_new_tokens=24)
    got = predict.generate_ids(model, proc, b, max_new_tokens=24)
    assert torch.equal(got, clean), f"greedy tokens of the {name} checkpoint differ from the same weights' clean ones"
    assert model.generation_config is before, "the model's own generation_config must be restored after the call"


def test_greedy_under_a_peft_wrapper_ignores_it_too(checkpoints):
    from peft import LoraConfig, get_peft_model

    model, proc = checkpoints["penalising"]
    clean_model = checkpoints["clean"][0]
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=True)  # identity at init
    wrapped = get_peft_model(model, cfg)
    try:
        b = _batch(proc)
        assert torch.equal(predict.generate_ids(wrapped, proc, b, max_new_tokens=16),
                           predict.generate_ids(clean_model, proc, b, max_new_tokens=16))
    finally:
        wrapped.unload()  # the module-scoped model is used by the other tests


def _spy_processors(model, monkeypatch):
    """Record the logits processors ``generate`` really builds (the real method is called)."""
    seen = []
    real = model._get_logits_processor

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(list(out))
        return out

    monkeypatch.setattr(model, "_get_logits_processor", spy)
    return seen


def test_rollouts_sample_exactly_the_configured_policy(checkpoints, monkeypatch):
    """GRPO's rollouts: the same draws as from the clean checkpoint under the same seed, and only the
    configured processors (vision tokens suppressed, temperature, top-p; no top-k=50 default, no penalty)."""
    from transformers.generation.logits_process import (SuppressTokensLogitsProcessor, TemperatureLogitsWarper,
                                                        TopPLogitsWarper)

    from vqalib.train.common import GRPOConfig
    from vqalib.train.grpo import sample_completions

    cfg = GRPOConfig(temperature=0.7, top_p=0.9, max_new_tokens=24)
    settings = generation.GenerationSettings.from_config(cfg)
    assert settings.do_sample and settings.top_k == 0 and settings.repetition_penalty == 1.0
    model, proc = checkpoints["penalising"]
    seen = _spy_processors(model, monkeypatch)
    prompt = _batch(proc).model_inputs(False)
    rolls = {}
    for k in ("clean", "penalising"):
        torch.manual_seed(7)
        rolls[k] = sample_completions(checkpoints[k][0], proc, prompt, settings=settings)
    assert torch.equal(rolls["penalising"]["completion"], rolls["clean"]["completion"])
    assert rolls["penalising"]["settings"] == settings
    (procs,) = seen
    assert [type(p) for p in procs] == [SuppressTokensLogitsProcessor, TemperatureLogitsWarper, TopPLogitsWarper]
    assert procs[1].temperature == 0.7 and procs[2].top_p == 0.9
    suppressed = set(procs[0].suppress_tokens.tolist())
    assert suppressed == set(generation.suppressed_token_ids(proc, model))


def test_rollouts_match_a_manual_sampler(checkpoints):
    """At temperature T, with no filter, a rollout's first token is a draw from softmax(logits / T)
    with the vision tokens removed: the same seed gives the same token as a hand-written draw."""
    model, proc = checkpoints["penalising"]
    prompt = _batch(proc).model_inputs(False)
    settings = generation.GenerationSettings.sampling(1, temperature=1.3)
    banned = generation.suppressed_token_ids(proc, model)
    for seed in range(5):
        torch.manual_seed(seed)
        got = generation.generate(model, proc, prompt, settings)[:, 0]
        with torch.no_grad():
            logits = model(**prompt).logits[:, -1].float()
        logits[:, banned] = -float("inf")
        torch.manual_seed(seed)
        manual = torch.multinomial(torch.softmax(logits / 1.3, -1), 1)[:, 0]
        assert torch.equal(got, manual), f"seed {seed}"


def test_training_manifest_and_config_record_the_rollout_settings(tmp_path):
    from vqalib.train.common import ASOConfig, GRPOConfig, SFTConfig, config_from_dict, write_manifest

    cfg = config_from_dict("grpo", {"temperature": 0.8, "top_p": 0.95, "top_k": 20, "max_new_tokens": 48})
    saved = json.loads(write_manifest(cfg, tmp_path).read_text())
    gen = saved["generation"]
    assert (gen["do_sample"], gen["temperature"], gen["top_p"], gen["top_k"], gen["min_p"]) == (True, 0.8, 0.95, 20, 0.0)
    assert gen["repetition_penalty"] == 1.0 and gen["no_repeat_ngram_size"] == 0 and gen["max_new_tokens"] == 48
    on_policy = json.loads(write_manifest(ASOConfig(on_policy=True, temperature=0.9), tmp_path / "aso").read_text())
    assert on_policy["generation"]["temperature"] == 0.9 and on_policy["generation"]["top_k"] == 0
    assert "generation" not in json.loads(write_manifest(SFTConfig(), tmp_path / "sft").read_text())
    with pytest.raises(ValueError, match="top_k"):
        config_from_dict("grpo", {"top_k": -1}, "grpo.yaml")
    with pytest.raises(ValueError, match="temperature"):
        config_from_dict("grpo", {"temperature": 0}, "grpo.yaml")
    assert isinstance(GRPOConfig().top_k, int)
