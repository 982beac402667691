"""The whole pipeline on rating schemas other than the paper's, through the demo's code: the commands of
``docs/snippets/any_schema.sh`` (README, "Any rating schema": sample data on a schema, SFT, ASO, GRPO,
``score``), then the held-out evaluation (``predict_to_file`` and the Table 1 metrics, as notebook 07).

Run as written for ``int10`` (three dimensions, integers 1-10, where "1" is a prefix of "10") and with
``int10`` replaced by ``mos9`` (one overall score on the nine-level grid). Each training command stops
after one step on four clips; every subprocess has a timeout. What is checked is the schema travelling:
the dataset's ``rating_schema.json`` into every checkpoint and manifest, the rewards and targets on the
schema's dimensions, the scorer's columns, the predictions file's schema and the metrics' dimensions.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vqalib.schema import rating

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "docs" / "snippets" / "any_schema.sh"
TIMEOUT = 900
ONE_STEP = ["max_steps=1", "max_clips=4", "report_to=none", "logging_steps=1", "warmup_steps=0",
            "eval_every_seconds=0"]
GRPO = ["num_generations=2", "max_new_tokens=24", "batch_size=1"]


def snippet_commands(preset: str) -> list[str]:
    text = SNIPPET.read_text()
    lines = [re.sub(r"(^|\s)#.*$", "", ln).strip() for ln in text.splitlines()]
    return [ln.replace("int10", preset) for ln in lines if ln]


def argv(cmd: str, runs: Path) -> list[str]:
    out = [sys.executable if a == "python" else a.replace("runs/", f"{runs}/") for a in shlex.split(cmd)]
    if " train " in cmd:
        out += ONE_STEP + (GRPO if " grpo " in cmd else ["batch_size=2"])
    if " score " in cmd:
        out += ["--num-workers", "0", "--no-progress"]
    return out


def run(args: list[str]) -> subprocess.CompletedProcess:
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, f"{shlex.join(args)} failed ({res.returncode}):\n{res.stderr[-4000:]}"
    return res


def test_snippet_is_the_one_in_the_readme():
    assert "<!-- snippet: any_schema.sh -->" in (ROOT / "README.md").read_text()
    assert [c.split()[4] for c in snippet_commands("int10") if " train " in c] == ["sft", "aso", "grpo"]


@pytest.mark.parametrize("preset", ["int10", "mos9"])
def test_pipeline_on_a_schema(preset, tmp_path):
    from vqalib.eval.predict import predict_to_file
    from vqalib.eval.predictions_file import read_predictions
    from vqalib.eval.tables import metrics_long

    schema = rating.get_schema(preset)
    runs = tmp_path / "runs"
    for cmd in snippet_commands(preset):
        run(argv(cmd, runs))

    data = runs / f"sample_{preset}"
    assert rating.load_schema(data) == schema
    for stage in ("sft", "aso", "grpo"):
        out = runs / preset / stage
        man = json.loads((out / "vqalib_train_manifest.json").read_text())
        assert man["status"] == "done", (stage, man.get("status"))
        assert rating.schema_from_dict(man["rating_schema"]) == schema, stage
        assert rating.load_schema(out) == schema, stage
    aso_log = [r for r in json.loads((runs / preset / "aso" / "vqalib_train_manifest.json").read_text())["log_history"]
               if "loss_score" in r]
    assert aso_log and aso_log[0]["loss_score"] > 0
    grpo_log = [r for r in json.loads((runs / preset / "grpo" / "vqalib_train_manifest.json").read_text())["log_history"]
                if "reward" in r]
    assert grpo_log and grpo_log[0]["n_completions"] == 2

    scores = pd.read_csv(runs / "scores" / f"{preset}.csv", dtype={"video_id": str})
    assert len(scores) == 32 and (scores["status"] == "ok").all()
    expected = [c for c in scores.columns if c.endswith("_expected")]
    assert expected == [f"{k}_expected" for k in schema.keys]
    assert scores[expected].apply(lambda c: c.between(schema.lo, schema.hi)).all().all()
    if preset == "int10":  # the paper's five dimensions are nowhere in the table
        assert not any(c.startswith("motion_quality") for c in scores.columns)

    # evaluation, as notebook 07 reads it: the predictions file carries the schema, the metrics its dimensions
    path = predict_to_file(tmp_path / "pred" / "aso.jsonl", model=str(runs / preset / "aso"), data_dir=str(data),
                           split="test", max_videos=4, max_new_tokens=48, batch_size=2, progress=False)
    pred, manifest = read_predictions(path)
    assert rating.schema_from_dict(manifest["rating_schema"]) == schema
    assert set(pred["dimension"]) == set(schema.keys)
    dists = pred["dist"].dropna()
    assert len(dists) and all(len(d) == schema.n_levels for d in dists)
    long = metrics_long({"aso": pred}, n_boot=0)
    assert set(long["dimension"]) <= set(schema.keys) and set(long["dimension"]) & set(schema.keys)
