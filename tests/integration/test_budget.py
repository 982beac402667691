"""Training under a wall-clock budget with a held-out curve (``vqalib.train.budget``): real tiny runs
on the smoke sample data. No test here has a wall-clock limit: the assertions compare the clock the
callback kept with time measured around it."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from vqalib.train.common import load_config

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

SMOKE = ["sample_size=smoke", "max_clips=4", "batch_size=2", "report_to=none", "logging_steps=1", "warmup_steps=0",
         "lr_scheduler=constant_with_warmup", "augment=false"]


def _sft(tmp_path, *extra):
    return load_config("sft", None, [*SMOKE, f"output_dir={tmp_path / 'sft'}", *extra])


class SleepyEval:
    """An evaluation that takes ``sleep_s`` seconds and returns one fake row; counts its calls."""

    def __init__(self, sleep_s: float):
        self.sleep_s, self.calls = sleep_s, 0

    def __call__(self, model):
        self.calls += 1
        time.sleep(self.sleep_s)
        return [{"dimension": "mean", "srcc": float(self.calls), "plcc": 0.0, "mae": 1.0, "n_clips": 3, "n_failed": 0}]


def test_budget_stops_at_the_first_step_end_past_it(tmp_path):
    from vqalib.train.sft import train_sft

    res = train_sft(_sft(tmp_path, "max_steps=50", "max_train_seconds=1e-6"), progress=False)
    assert res.budget["steps"] == 1 and res.budget["stopped_by"] == "max_train_seconds"
    assert [r["step"] for r in res.log_history if "loss" in r] == [1]  # the last step is logged
    man = json.loads((res.output_dir / "vqalib_train_manifest.json").read_text())
    assert man["budget"]["steps"] == 1 and man["config"]["max_train_seconds"] == 1e-6
    assert man["budget"]["setup_s"] > 0 and man["curve"] == []  # no eval_every_seconds: no curve


def test_max_steps_stays_a_cap_under_a_large_budget(tmp_path):
    from vqalib.train.sft import train_sft

    res = train_sft(_sft(tmp_path, "max_steps=2", "max_train_seconds=1e6"), progress=False)
    assert res.budget["steps"] == 2 and res.budget["stopped_by"] == "max_steps"


def test_evaluation_time_is_not_training_time(tmp_path):
    """Evaluate after every step with an evaluation that sleeps 0.4 s: the recorded training seconds
    are the wall time of the run minus at least the sleeps (a clock that counted them fails)."""
    from vqalib.train.base import run_stage
    from vqalib.train.sft import SFTTrainer

    ev = SleepyEval(0.4)
    cfg = _sft(tmp_path, "max_steps=3", "eval_every_seconds=1e-6")
    res = run_stage(cfg, SFTTrainer, with_answers=True, progress=False, evaluate=ev)
    curve = pd.DataFrame(res.curve)
    assert ev.calls == 4  # step 0, after steps 1 and 2, at the end (step 3, also the last periodic point)
    assert curve["step"].tolist() == [0, 1, 2, 3]
    assert curve["point"].tolist() == ["start", "periodic", "periodic", "end"]
    assert curve["train_seconds"].iloc[0] == 0.0 and curve["train_seconds"].is_monotonic_increasing
    assert (curve["method"] == "sft").all() and (curve["seed"] == 0).all()
    b = res.budget
    assert b["eval_seconds"] >= 4 * 0.4 and b["n_evals"] == 4
    # the whole run = setup + training + evaluations (+ saving): training excludes every sleep
    assert b["train_seconds"] + b["eval_seconds"] + b["setup_s"] <= res.wall_s
    assert b["train_seconds"] <= res.wall_s - b["setup_s"] - 4 * 0.4
    assert b["train_seconds"] >= curve["train_seconds"].iloc[-1] > 0
    assert pd.read_csv(res.output_dir / "curve.csv")["step"].tolist() == [0, 1, 2, 3]


def test_budget_counts_training_not_evaluation(tmp_path, monkeypatch):
    """Each evaluation moves the callback's clock 100 s forward (a simulated slow evaluation; the
    run's real time is untouched) under a 0.5 s budget: counted, the first step would already be
    past the budget by 100 s; excluded, the recorded training seconds stay those of the steps."""
    from vqalib.train import budget
    from vqalib.train.base import run_stage
    from vqalib.train.sft import SFTTrainer

    offset = [0.0]
    monkeypatch.setattr(budget, "_now", lambda: time.perf_counter() + offset[0])

    def slow_eval(model):
        offset[0] += 100.0
        return [{"dimension": "mean", "srcc": 0.0, "plcc": 0.0, "mae": 1.0, "n_clips": 3, "n_failed": 0}]

    cfg = _sft(tmp_path, "max_steps=200", "max_train_seconds=0.5", "eval_every_seconds=1e-6")
    res = run_stage(cfg, SFTTrainer, with_answers=True, progress=False, evaluate=slow_eval)
    b, curve = res.budget, pd.DataFrame(res.curve)
    assert b["stopped_by"] == "max_train_seconds" and 0.5 <= b["train_seconds"] < 100
    assert b["eval_seconds"] >= 100 * b["n_evals"] and b["n_evals"] == len(curve) == b["steps"] + 1
    assert (curve["train_seconds"] < 100).all()
    periodic = curve[curve["point"] == "periodic"]["train_seconds"]
    assert (periodic < 0.5).all() and curve["train_seconds"].iloc[-1] >= 0.5  # evaluated while under budget, then the end
    assert curve["point"].iloc[-1] == "end" and curve["at_seconds"].iloc[-1] == 0.5


def test_heldout_curve_from_real_predictions(tmp_path):
    """The default evaluation: greedy answers on 3 held-out clips, rows per dimension plus the mean, at step 0 and the end."""
    from vqalib.schema.levels import DIMENSION_KEYS
    from vqalib.train.sft import train_sft

    res = train_sft(_sft(tmp_path, "max_steps=1", "eval_every_seconds=1e6", "eval_limit=3"), progress=False)
    curve = pd.DataFrame(res.curve)
    assert curve["step"].unique().tolist() == [0, 1]
    assert curve["point"].unique().tolist() == ["start", "end"]
    assert curve[curve["step"] == 0]["dimension"].tolist() == [*DIMENSION_KEYS, "mean"]
    assert (curve["n_clips"][curve["dimension"] != "mean"] == 3).all()
    assert (curve["mae"] >= 0).all() and (curve["mae"] <= 4).all()
    man = json.loads((res.output_dir / "vqalib_train_manifest.json").read_text())
    assert len(man["curve"]) == 12 and man["budget"]["n_evals"] == 2


def test_a_budget_stop_at_step_two_in_a_notebook(tmp_path, monkeypatch):
    """In Jupyter the Trainer shows transformers' NotebookProgressCallback, whose end-of-training update
    divides by None when a run stops early after exactly two steps (seen in notebook 06's smoke run).
    The clock is moved 2000 s forward after step 1, so the 1000 s budget stops the run at step 2."""
    import transformers.trainer
    from transformers.utils.notebook import NotebookProgressCallback

    from vqalib.train import budget
    from vqalib.train.base import run_stage
    from vqalib.train.sft import SFTTrainer

    monkeypatch.setattr(transformers.trainer, "DEFAULT_PROGRESS_CALLBACK", NotebookProgressCallback)
    offset = [0.0]
    monkeypatch.setattr(budget, "_now", lambda: time.perf_counter() + offset[0])

    def jump(state):
        if state.global_step == 1:
            offset[0] += 2000.0

    cfg = _sft(tmp_path, "max_steps=50", "max_train_seconds=1000")
    res = run_stage(cfg, SFTTrainer, with_answers=True, progress=True, on_step=jump)
    assert res.budget["steps"] == 2 and res.budget["stopped_by"] == "max_train_seconds"
