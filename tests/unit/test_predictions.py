"""Predictions JSONL + manifest: round trip, validation errors naming file/line/field."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vqalib.schema.levels import DIMENSION_KEYS, LEVELS
from vqalib.eval.predictions_file import (
    COLUMNS,
    PredictionsError,
    make_manifest,
    manifest_path,
    parse_failure_counts,
    prediction_files,
    read_predictions,
    rows_from_distributions,
    write_predictions,
)
from vqalib.video.frames import SamplingConfig


def _frame(n: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for dim in DIMENSION_KEYS[:2]:
        d = rng.dirichlet(np.ones(9), n)
        parsed = [float(LEVELS[i]) for i in d.argmax(1)]
        parsed[1] = None  # one failure per dimension
        status = ["ok"] * n
        status[1] = "unparsable"
        parts.append(rows_from_distributions([f"v{i}" for i in range(n)], dim, d, targets=rng.choice(LEVELS, n),
                                             parsed_scores=parsed, parse_status=status,
                                             raw_texts=[f"text {i}" for i in range(n)], outside_mass=rng.uniform(0, .1, n)))
    return pd.concat(parts, ignore_index=True)


def _manifest():
    return make_manifest("tiny", SamplingConfig(fps=2.0, max_frames=8), {"seed": 0, "readout": "both"})


def test_round_trip_keeps_every_value(tmp_path):
    df = _frame()
    df["split"] = "test"  # extra columns survive
    path = write_predictions(tmp_path / "predictions" / "base.jsonl", df, _manifest())
    back, man = read_predictions(path)
    assert list(back.columns[: len(COLUMNS)]) == list(COLUMNS) and (back["split"] == "test").all()
    pd.testing.assert_frame_equal(back.drop(columns="dist"), df.drop(columns="dist"), check_dtype=False)
    np.testing.assert_allclose(np.stack(back["dist"]), np.stack(df["dist"]))
    assert back["parsed_score"].isna().sum() == 2
    assert man["model"] == "tiny" and man["sampling"]["max_frames"] == 8 and man["parameters"]["seed"] == 0
    assert man["n_rows"] == 12 and man["parse_status_counts"] == {"ok": 10, "missing": 0, "unparsable": 2}
    assert "commit" in man["environment"] and "transformers" in man["environment"]
    assert manifest_path(path).name == "base.manifest.json"


def _write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest_path(path).write_text(json.dumps({"model": "x", "sampling": {}}))


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda r: r.pop("parse_status"), "missing field(s) ['parse_status']"),
        (lambda r: r.update(dimension="Motion Quality"), "field 'dimension' = 'Motion Quality'"),
        (lambda r: r.update(parsed_score=7.0), "field 'parsed_score' = 7.0 is outside"),
        (lambda r: r.update(parse_status="ok", parsed_score=None), "parse_status 'ok' but 'parsed_score' is null"),
        (lambda r: r.update(parse_status="missing"), "a failed parse must not carry a score"),
        (lambda r: r.update(dist=[0.5] * 9), "field 'dist' is not a distribution"),
        (lambda r: r.update(expected_score=1.0), "'expected_score' = 1.0 but the dist gives"),
        (lambda r: r.update(target="3.5"), "field 'target': expected a number"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, mutate, fragment):
    rows = json.loads(_frame(3).to_json(orient="records"))
    mutate(rows[2])
    path = tmp_path / "m.jsonl"
    _write_lines(path, rows)
    with pytest.raises(PredictionsError) as e:
        read_predictions(path)
    assert "m.jsonl line 3" in str(e.value) and fragment in str(e.value)


def test_invalid_json_duplicates_and_missing_manifest(tmp_path):
    rows = json.loads(_frame(3).to_json(orient="records"))
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(PredictionsError, match=r"m\.jsonl line 2: invalid JSON"):
        read_predictions(path)
    _write_lines(path, [rows[0], rows[1], rows[0]])
    with pytest.raises(PredictionsError, match=r"line 1 and .*line 3: duplicate prediction for video 'v0'"):
        read_predictions(path)
    manifest_path(path).unlink()
    path.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(PredictionsError, match="manifest m.manifest.json not found"):
        read_predictions(path)
    df, man = read_predictions(path, require_manifest=False)
    assert len(df) == 1 and man == {}


def test_write_refuses_incomplete_manifest_and_bad_frames(tmp_path):
    df = _frame(3)
    with pytest.raises(PredictionsError, match="manifest lacks 'sampling'"):
        write_predictions(tmp_path / "a.jsonl", df, {"model": "tiny"})
    bad = df.copy()
    bad.loc[4, "parse_status"] = "failed"
    with pytest.raises(PredictionsError, match="row 4: field 'parse_status' = 'failed'"):
        write_predictions(tmp_path / "a.jsonl", bad, _manifest())
    assert not (tmp_path / "a.jsonl").exists()


def test_prediction_files_order_and_failure_counts(tmp_path):
    for name in ["zeta", "aso", "base", "sft"]:
        write_predictions(tmp_path / "predictions" / f"{name}.jsonl", _frame(3), _manifest())
    assert list(prediction_files(tmp_path)) == ["base", "sft", "aso", "zeta"]
    tab = parse_failure_counts(_frame(4))
    assert tab.loc["motion_quality", "rows"] == 4 and tab.loc["motion_quality", "unparsable"] == 1
    assert tab.loc["motion_amplitude", "parsed_share"] == pytest.approx(0.75)
