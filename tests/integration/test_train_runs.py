"""Whole training runs on the tiny preset and the smoke sample dataset: the CLI runs one step of
each trainer (SFT -> GRPO, ASO cached, ASO on-policy, ASO with the keyword target), and a resumed run
matches an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vqalib.train.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

SMOKE = ["sample_size=smoke", "max_clips=4", "batch_size=2", "report_to=none", "logging_steps=1", "warmup_steps=0"]


def _sets(*items: str) -> list[str]:
    """``--set`` pairs for SMOKE then ``items``; an item overrides the SMOKE value of its key (the CLI
    itself refuses a key given twice)."""
    merged = dict(it.split("=", 1) for it in (*SMOKE, *items))
    return [a for key, value in merged.items() for a in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "sft"
    assert main(["sft", "--config", "env/train_configs/sft_tiny.yaml", *_sets("max_steps=1", f"output_dir={out}")]) == 0
    return out


def test_cli_sft_one_step_writes_model_and_manifest(sft_dir):
    man = json.loads((sft_dir / "vqalib_train_manifest.json").read_text())
    assert man["status"] == "done" and man["stage"] == "sft"
    assert man["train_metrics"]["train_loss"] > 0
    assert man["sampling_config"]["fps"] == 2.0 and man["environment"]["torch"]
    assert (sft_dir / "config.json").is_file() and list(sft_dir.glob("*.safetensors"))


@pytest.mark.parametrize("extra", [[], ["reward=multi_rater", "group_by=answer", "acc_rounding=integer"]],
                         ids=["paper", "multi_rater_answer_groups"])
def test_cli_grpo_one_step(sft_dir, tmp_path, extra):
    out = tmp_path / "grpo"
    rc = main(["grpo", "--config", "env/train_configs/grpo_tiny.yaml",
               *_sets("max_steps=1", "batch_size=1", "num_generations=2", "max_new_tokens=12",
                      f"init_from={sft_dir}", f"output_dir={out}", *extra)])
    assert rc == 0
    man = json.loads((out / "vqalib_train_manifest.json").read_text())
    assert man["status"] == "done"
    # after one step of a barely trained model most completions do not parse: counted, not hidden
    logs = json.loads((out / "vqalib_train_manifest.json").read_text())["log_history"]
    step = [r for r in logs if "reward" in r][0]
    assert step["n_completions"] == 2 and 0 <= step["n_unparsable"] <= 2


@pytest.mark.parametrize("extra", [[], ["on_policy=true", "max_new_tokens=12"], ["rationale_loss=ce"],
                                   ["reward=multi_rater", "rationale=scrubbed", "penalise_outside=false"]],
                         ids=["cached", "on_policy", "ce", "multi_rater_scrubbed"])
def test_cli_aso_one_step(sft_dir, tmp_path, extra):
    out = tmp_path / "aso"
    rc = main(["aso", "--config", "env/train_configs/aso_tiny.yaml",
               *_sets("max_steps=1", f"init_from={sft_dir}", f"output_dir={out}", *extra)])
    assert rc == 0
    assert (out / "pi_ref.pt").is_file() == (not extra or extra[0] != "on_policy=true")
    logs = json.loads((out / "vqalib_train_manifest.json").read_text())["log_history"]
    step = [r for r in logs if "loss_score" in r][0]
    assert step["loss_score"] > 0


def test_aso_with_eps_floor_and_the_zero_mass_case(sft_dir, tmp_path):
    """eps travels config -> manifest; zero_mass_case reads pi_ref and the trained model on the real run."""
    from vqalib.report import training as report
    from vqalib.train.common import load_config

    out = tmp_path / "aso_eps"
    sets = _sets("max_steps=1", f"init_from={sft_dir}", f"output_dir={out}", "eps=0.05")
    assert main(["aso", "--config", "env/train_configs/aso_tiny.yaml", *sets]) == 0
    assert json.loads((out / "vqalib_train_manifest.json").read_text())["config"]["eps"] == 0.05
    cfg = load_config("aso", "env/train_configs/aso_tiny.yaml", sets[1::2])  # the run's own config
    zm = report.zero_mass_case(out / "pi_ref.pt", cfg, 0.05, {"π_θ after ASO": out})
    pi_ref = report.load_pi_ref(out / "pi_ref.pt")
    assert len(zm.table) == 5 * len(pi_ref) == 5 * 4 and zm.counts["n_total"].eq(20).all()
    assert zm.table[report.REF].iloc[0] == zm.table[report.REF].min()
    d = zm.dimension
    want = report.aso_distributions(out / "pi_ref.pt", out, cfg, [zm.video_id], 1.0, 1.0)[zm.video_id]
    for name, key in ((report.REF, "pi_ref"), (report.STAR0, "pi_star"), ("π_θ after ASO", "pi_theta")):
        got = zm.case[zm.case["distribution"] == name]["probability"].to_numpy()
        np.testing.assert_allclose(got, want[key][zm.schema.keys.index(d)], rtol=1e-5, atol=1e-7)
    at = zm.at_label()
    assert at[report.star_name(0.05)] > at[report.STAR0] and zm.verdict()
    assert len(report.plot_zero_mass_case(zm).axes) >= 2


def test_qlora_on_cpu_fails_clearly(tmp_path):
    from vqalib.train.common import load_config
    from vqalib.train.sft import train_sft

    if torch.cuda.is_available():
        pytest.skip("CUDA present: the CPU error path does not apply")
    cfg = load_config("sft", None, [*SMOKE, "finetune=qlora", "device=cpu", f"output_dir={tmp_path}"])
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        train_sft(cfg)


def test_resumed_run_matches_uninterrupted(tmp_path):
    from vqalib.train.common import load_config
    from vqalib.train.sft import train_sft

    base = [*SMOKE, "max_steps=4", "save_steps=2", "augment=true", "lr=1e-3"]
    full = train_sft(load_config("sft", None, [*base, f"output_dir={tmp_path / 'a'}"]), progress=False)
    ran: list[int] = []
    resumed = train_sft(load_config("sft", None, [*base, f"output_dir={tmp_path / 'b'}",
                                                  f"resume={tmp_path / 'a' / 'checkpoint-2'}"]), progress=False,
                        on_step=lambda state: ran.append(state.global_step))
    assert ran == [3, 4]  # it did resume: steps 1-2 were not trained again
    la = {r["step"]: r["loss"] for r in full.log_history if "loss" in r}
    lb = {r["step"]: r["loss"] for r in resumed.log_history if "loss" in r}
    assert la[3] != la[4]
    for s in (3, 4):
        assert lb[s] == pytest.approx(la[s], rel=1e-5), (s, la, lb)
    from safetensors.torch import load_file

    wa = load_file(str(next((tmp_path / "a").glob("*.safetensors"))))
    wb = load_file(str(next((tmp_path / "b").glob("*.safetensors"))))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


# ------------------------------------------------------------------ end to end: a keyword-target ASO step

def test_keyword_aso_trains_one_step_and_stores_the_health_report(tmp_path):
    import json

    from vqalib.train.cli import main

    out = tmp_path / "aso_kw"
    sets = ["sample_size=smoke", "max_clips=4", "batch_size=2", "report_to=none", "logging_steps=1",
            "warmup_steps=0", "max_steps=1", "init_from=", "model=tiny", f"output_dir={out}",
            "target_position=keyword", "rationale=full"]
    argv = ["aso", "--config", "env/train_configs/aso_tiny.yaml"] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    saved = torch.load(out / "pi_ref.pt", weights_only=True)
    assert len(saved["pi_ref"]) == 4 and set(saved["outside"]) == set(saved["pi_ref"])
    h = saved["health"]
    assert h["n_items"] == 20 and 0 <= h["off_level_mean"] <= 1 and h["lam"] == 1.0
    assert {"entropy", "p_label_p50", "kl_star_ref", "argmax_flip_share", "expected_shift_mean"} <= set(h)
    logs = json.loads((out / "vqalib_train_manifest.json").read_text())["log_history"]
    step = [r for r in logs if "loss_score" in r][0]
    assert step["loss_score"] > 0 and "loss_rationale" in step
