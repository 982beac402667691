"""SFT -> ASO -> ``score`` on the tiny preset of each new family (issue 24): ``tiny-qwen3-vl`` and
``tiny-qwen3.5`` (the real configs shrunk, the real processor and tokenizer files), LoRA, one step each,
on two clips of the generated smoke dataset.

Checked per family: the checkpoints are written and load again as that family; the adapter holds the
family's LoRA targets (never the vision tower); the stage manifests record the family; ASO's level scores come from the family's pass (tree-masked for Qwen3-VL, the batched
branch pass for Qwen3.5's recurrent layers) with the values of plain teacher-forced passes (1e-5); the
score file of the fast readout holds a distribution and an expected score per dimension for every clip,
and generate mode's answers pass the family's decoder (no think block reaches the parser or the file)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from conftest import shared_data_or_skip
from vqalib.method import distributions
from vqalib.model.family import QWEN3_5, QWEN3_VL, family_of
from vqalib.train.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

FAMILIES = {"tiny-qwen3-vl": QWEN3_VL, "tiny-qwen3.5": QWEN3_5}
#: the smallest run that still goes through every piece: 2 clips of 4 frames, 1 step, a LoRA adapter
COMMON = ["sample_size=smoke", "max_clips=2", "batch_size=2", "max_steps=1", "report_to=none", "logging_steps=1",
          "warmup_steps=0", "finetune=lora", "lora_r=4", "max_frames=4", "augment=false", "time_jitter=1",
          "frame_disk_cache_mb=0", "rationale=none", "eval_every_seconds=0"]
TIMES: dict[str, float] = {}


def _sets(*items: str) -> list[str]:
    merged = dict(it.split("=", 1) for it in (*COMMON, *items))
    return [a for k, v in merged.items() for a in ("--set", f"{k}={v}")]


def _manifest(folder) -> dict:
    return json.loads((folder / "vqalib_train_manifest.json").read_text())


class _PassSpy:
    """Counts which level pass ran (the real functions run) and keeps the first no-grad call of
    ``level_logprobs_raw`` (ASO's pi_ref) with its batch and result, for an independent recomputation."""

    def __init__(self, monkeypatch):
        self.passes: list[str] = []
        self.first: tuple | None = None
        for name in ("_tree_pass", "_branch_pass"):
            real = getattr(distributions, name)
            monkeypatch.setattr(distributions, name, self._counting(name, real))
        real_raw = distributions.level_logprobs_raw

        def raw(model, batch, *args, **kwargs):
            out = real_raw(model, batch, *args, **kwargs)
            if self.first is None and not torch.is_grad_enabled():
                kept = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in batch.items()}
                self.first = (kept, args[:2], kwargs.get("schema"), out.detach().clone())
            return out

        monkeypatch.setattr(distributions, "level_logprobs_raw", raw)

    def _counting(self, name, real):
        def f(*args, **kwargs):
            self.passes.append(name)
            return real(*args, **kwargs)
        return f


@pytest.mark.parametrize("preset", list(FAMILIES))
def test_sft_aso_score_on_a_tiny_family(preset, tmp_path, monkeypatch):
    fam = FAMILIES[preset]
    shared_data_or_skip(fam.reference_folder, "tokenizer.json")
    t0 = time.perf_counter()
    sft, aso = tmp_path / "sft", tmp_path / "aso"

    # ---- SFT
    assert main(["sft", "--config", "env/train_configs/sft_tiny.yaml",
                 *_sets(f"model={preset}", f"output_dir={sft}")]) == 0
    man = _manifest(sft)
    assert man["status"] == "done" and man["train_metrics"]["train_loss"] > 0
    assert man["model_family"]["family"] == fam.name and man["model_family"]["level_pass"] == (
        "tree" if fam.tree_mask else "branches")
    assert (sft / "config.json").is_file() and (sft / "adapter" / "adapter_config.json").is_file()
    assert family_of(sft) is fam and family_of(sft / "adapter") is fam
    # the adapter holds the family's LoRA targets: the language model's projections (Qwen3.5: also its
    # linear-attention ones), never the vision tower
    assert json.loads((sft / "adapter" / "adapter_config.json").read_text())["target_modules"] == fam.lora_targets
    from safetensors import safe_open

    with safe_open(str(sft / "adapter" / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and not any("visual" in n for n in names)
    assert ("in_proj_qkv" in " ".join(names)) is (fam is QWEN3_5)
    t_sft = time.perf_counter()

    # ---- ASO (cached pi_ref read from the SFT model, one step), the level passes watched
    spy = _PassSpy(monkeypatch)
    assert main(["aso", "--config", "env/train_configs/aso_tiny.yaml",
                 *_sets(f"model={preset}", f"init_from={sft}", f"output_dir={aso}", "pi_ref_health=off",
                        "batch_size=1")]) == 0  # one clip per step: Qwen3.5's branch pass is D x 9 rows per clip
    monkeypatch.undo()
    man = _manifest(aso)
    assert man["status"] == "done" and man["model_family"]["family"] == fam.name
    assert family_of(aso) is fam
    want = "_tree_pass" if fam.tree_mask else "_branch_pass"
    assert spy.passes and set(spy.passes) == {want}, spy.passes  # pi_ref and the training step: the family's pass
    step = [r for r in man["log_history"] if "loss_score" in r][0]
    assert np.isfinite(step["loss_score"])
    saved = torch.load(aso / "pi_ref.pt", weights_only=True)
    assert len(saved["pi_ref"]) == 2
    for lp in saved["pi_ref"].values():
        assert lp.shape == (5, 9) and torch.allclose(lp.exp().sum(-1), torch.ones(5), atol=1e-5)
    t_aso = time.perf_counter()

    # ASO's pi_ref values = plain teacher-forced passes of the SFT checkpoint on the same batch
    from vqalib.model.loading import load_model_and_processor

    batch, (level_ids, positions), schema, raw = spy.first
    positions = positions.clone()
    positions[:, 1:-1] = -1  # the first and the last dimension (the others: the unit tests)
    raw = raw.clone()
    raw[:, 1:-1] = float("nan")
    ref_model, _ = load_model_and_processor(str(sft))
    with torch.no_grad():
        ref = distributions.level_logprobs_independent(ref_model.eval(), batch, level_ids, positions, batched_levels=True,
                                                        schema=schema)
    diff = float((raw - ref).abs().nan_to_num(0).max())
    print(f"\n{preset}: ASO pi_ref (one pass) vs independent passes of the SFT checkpoint max |diff| = {diff:.2e}")
    torch.testing.assert_close(raw, ref, atol=1e-5, rtol=0, equal_nan=True)
    full = spy.first[3]
    for row in distributions.normalise(full)[0]:  # each clip's saved pi_ref is its row of that pass
        assert min(float((row - lp).abs().max()) for lp in saved["pi_ref"].values()) < 1e-6
    del ref_model
    t_ref = time.perf_counter()

    # ---- score: the ASO checkpoint loads again through the scorer; fast readout, then generate mode
    from vqalib.inference.scorer import Scorer, dist_column
    from vqalib.schema.rating import PAPER
    from vqalib.train.collator import load_examples

    paths = [str(ex.path) for ex in load_examples(sample_size="smoke")[:2]]
    scorer = Scorer(str(aso), mode="fast", batch_size=2)
    assert family_of(scorer.model) is fam and family_of(scorer.processor) is fam
    run = scorer.score(paths, tmp_path / "scores.csv")
    rows = run.rows
    assert run.n_scored == 2 and (rows["status"] == "ok").all()
    assert json.loads((tmp_path / "scores.csv.manifest.json").read_text())["model_family"]["family"] == fam.name
    from vqalib.schema.levels import DIMENSION_KEYS

    for k in DIMENSION_KEYS:
        assert rows[f"{k}_expected"].between(1, 5).all()
        dist = rows[[dist_column(k, s) for s in PAPER.strings]].to_numpy(float)
        np.testing.assert_allclose(dist.sum(1), 1.0, atol=1e-5)
    t_fast = time.perf_counter()
    gen = Scorer(scorer.model, processor=scorer.processor, mode="generate", batch_size=2, max_new_tokens=8).score(
        paths[:1], tmp_path / "generated.jsonl")
    g = gen.rows.iloc[0]
    assert g["status"] == "ok" and "<think>" not in g["raw_text"] and "</think>" not in g["raw_text"]
    for k in DIMENSION_KEYS:
        assert g[f"{k}_parse_status"] in ("ok", "missing", "unparsable") and 1 <= g[f"{k}_expected"] <= 5
    TIMES[preset] = time.perf_counter() - t0
    print(f"{preset}: SFT {t_sft - t0:.1f} s, ASO {t_aso - t_sft:.1f} s, independent passes {t_ref - t_aso:.1f} s, "
          f"fast score {t_fast - t_ref:.1f} s, generate score {TIMES[preset] - (t_fast - t0):.1f} s")
