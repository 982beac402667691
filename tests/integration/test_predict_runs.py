"""Prediction end to end on the tiny model: ``predict_to_file`` on two clips of the smoke set writes the
rows and the manifest notebook 07 reads, and a checkpoint's generation settings reach neither greedy
prediction nor the scorer's generate mode (the checkpoints: ``tests/unit/test_generation_settings.py``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from model_helpers import write_clip
from test_generation_settings import SAMPLING, checkpoints  # noqa: F401  (checkpoints: a module fixture)
from vqalib.eval import predict
from vqalib.model import generation


def test_predict_to_file_writes_rows_and_manifest(tmp_path):
    """The file notebook 07 and the training notebooks read: rows for every clip x dimension, and a
    manifest that records the model, the sampling settings and the parse-status counts."""
    from vqalib.eval.predict import predict_to_file
    from vqalib.eval.predictions_file import read_predictions

    path = predict_to_file(tmp_path / "base.jsonl", model="tiny", sample_size="smoke", max_videos=2, progress=False)
    df, manifest = read_predictions(path)
    assert len(df) == 2 * 5 and df["video_id"].nunique() == 2
    assert manifest["model"] == "tiny" and manifest["sampling"]["fps"] == 2.0
    counts = manifest["predict"]["parse_status_counts"]
    assert sum(sum(c.values()) for c in counts.values()) == 10
    assert (df["parsed_score"].isna() == (df["parse_status"] != "ok")).all()


def test_predict_rows_and_manifest(checkpoints, tmp_path):
    paths = [write_clip(tmp_path / f"c{i}.mp4", seed=i) for i in range(2)]
    items = pd.DataFrame({"video_id": ["a", "b"], "path": [str(p) for p in paths]})
    res = {k: predict.predict(*checkpoints[k], items, sampling=SAMPLING, max_new_tokens=24, batch_size=2)
           for k in ("clean", "penalising")}
    cols = ["video_id", "dimension", "raw_text", "parse_status", "parsed_score"]
    pd.testing.assert_frame_equal(res["penalising"].rows[cols], res["clean"].rows[cols])
    gen = res["penalising"].manifest["generation"]
    assert gen["do_sample"] is False and gen["repetition_penalty"] == 1.0 and gen["num_beams"] == 1
    assert gen["no_repeat_ngram_size"] == 0 and gen["max_new_tokens"] == 24
    assert gen["checkpoint_generation_config_ignored"]["repetition_penalty"] == 2.0
    assert gen["eos_token_id"] == generation.stop_token_ids(checkpoints["clean"][1])


def test_scorer_generate_mode_and_store_manifest(checkpoints, tmp_path):
    from vqalib.inference.scorer import Scorer
    from vqalib.inference.store import ResumeMismatch, manifest_path

    paths = [write_clip(tmp_path / f"c{i}.mp4", seed=i) for i in range(2)]
    items = pd.DataFrame({"video_id": ["a", "b"], "path": [str(p) for p in paths]})
    rows = {}
    for k in ("clean", "penalising"):
        s = Scorer(checkpoints[k][0], processor=checkpoints[k][1], mode="generate", sampling=SAMPLING,
                   max_new_tokens=24, batch_size=2)
        rows[k] = s.score(items, tmp_path / f"{k}.jsonl").rows
    assert rows["penalising"]["raw_text"].tolist() == rows["clean"]["raw_text"].tolist()
    saved = json.loads(manifest_path(tmp_path / "penalising.jsonl").read_text())
    assert saved["generation"]["repetition_penalty"] == 1.0 and saved["generation"]["do_sample"] is False
    # an output written before the settings were recorded (rows from the checkpoint's penalty) is not resumed
    old = {k: v for k, v in saved.items() if k != "generation"}
    manifest_path(tmp_path / "penalising.jsonl").write_text(json.dumps(old))
    with pytest.raises(ResumeMismatch, match="generation"):
        Scorer(checkpoints["penalising"][0], processor=checkpoints["penalising"][1], mode="generate",
               sampling=SAMPLING, max_new_tokens=24).score(items, tmp_path / "penalising.jsonl")
