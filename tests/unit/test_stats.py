"""Statistics helpers of notebooks 01/02 on small hand-made frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vqalib.schema import levels as L
from vqalib.report import dataset_stats as stats


def _labels():
    rows = []
    for i in range(12):
        for j, dim in enumerate(L.DIMENSION_KEYS):
            rows.append({"video_id": f"v{i}", "dimension": dim, "score": float(L.LEVELS[(i + j) % 9] if j < 4 else L.LEVELS[i % 9])})
    return pd.DataFrame(rows)


def test_score_distribution_counts_per_level():
    d = stats.score_distribution(_labels())
    assert list(d.columns) == list(L.LEVEL_STRINGS) and list(d.index) == list(L.DIMENSION_KEYS)
    assert (d.sum(axis=1) == 12).all()
    assert d.loc["clarity_quality", "1.0"] == 2 and d.loc["clarity_quality", "4.5"] == 1


def test_dimension_correlation_is_one_for_identical_dimensions():
    c = stats.dimension_correlation(_labels())
    assert c.loc["motion_quality", "clarity_quality"] == pytest.approx(1.0)
    assert c.shape == (5, 5)


def test_tag_frequencies_include_unticked_tags():
    r = pd.DataFrame({"video_id": ["a", "b", "c", "a"], "rater": list("xyzx"), "phase": "final",
                      "dimension": ["clarity_quality"] * 3 + ["motion_quality"],
                      "score": 2.0, "tags": [["blur"], ["blur", "noise"], [], ["flicker"]]})
    t = stats.tag_frequencies(r).set_index(["dimension", "tag"])
    assert t.loc[("clarity_quality", "blur"), "count"] == 2
    assert t.loc[("clarity_quality", "blur"), "share"] == pytest.approx(2 / 3)
    assert t.loc[("clarity_quality", "blocking"), "count"] == 0
    assert np.isnan(t.loc[("aesthetic_quality", "exposure_error"), "share"])  # no ratings of that dimension


def test_rationale_lengths_words_and_tokens():
    r = pd.DataFrame({"video_id": ["a"], "dimension": ["clarity_quality"], "rationale": ["Clarity is 3.5, fine."]})
    ws = stats.rationale_lengths(r, tokenizer="whitespace")
    assert ws.words[0] == 4 and ws.tokens[0] == 8  # Clarity is 3 . 5 , fine .
    tiny = stats.rationale_lengths(r, tokenizer="tiny")
    assert tiny.tokens[0] >= 5  # digits are split one per token: at least '3', '.', '5' + words
    with pytest.raises(FileNotFoundError, match="tokenizer folder"):
        stats.get_token_counter("/no/such/tokenizer")


def test_video_summary_counts_missing_metadata():
    v = pd.DataFrame({"video_id": ["a", "b"], "duration": [4.0, None], "fps": [8.0, 30.0], "width": [112, 640],
                      "height": [112, 480], "category": ["x", ""], "split": ["train", "test"]})
    s = stats.video_summary(v)
    assert s.loc["duration", "missing"] == 1 and s.loc["fps", "max"] == 30.0
    assert stats.resolution_counts(v).to_dict() == {"112x112": 1, "640x480": 1}


@pytest.mark.notebooks
@pytest.mark.slow
def test_notebooks_01_02_run_on_a_csv_dataset_with_two_dimensions_and_one_phase(tmp_path):
    """'Works on any dataset in the schema': a bring-your-own CSV (0-100 scale, 2 dimensions, final
    phase only, no rationales, no tags) saved with save_dataset runs through notebooks 01 and 02."""
    import papermill as pm

    from vqalib.data.dataset import from_ratings_csv, save_dataset
    from vqalib.core.runs import project_root
    from vqalib.data.synth import write_mp4

    rng = np.random.default_rng(0)
    lines = ["clip,r1_sharp,r2_sharp,r3_sharp,r1_look,r2_look,r3_look"]
    (tmp_path / "media").mkdir()
    for i in range(12):
        write_mp4(tmp_path / "media" / f"c{i}.mp4", np.full((4, 16, 16, 3), 20 * i, np.uint8), fps=4)
        q, a = rng.uniform(0, 100, size=2)
        lines.append(f"c{i}," + ",".join(str(int(np.clip(v + rng.normal(0, 8), 0, 100))) for v in (q, q, q, a, a, a)))
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    ds = from_ratings_csv(tmp_path / "s.csv", video_col="clip", column_pattern=r"(?P<rater>r\d)_(?P<dimension>\w+)",
                          dimension_map={"sharp": "clarity_quality", "look": "aesthetic_quality"}, scale=(0, 100),
                          video_dir=tmp_path / "media", path_template="{video}.mp4")
    data = save_dataset(ds, tmp_path / "byo")
    run_dir = tmp_path / "run"
    for nb in ("01_data_statistics", "02_annotator_agreement"):
        params = {"DATA_DIR": str(data), "RUN_DIR": str(run_dir)}
        if nb.startswith("02"):
            params["N_BOOT"] = 10
        pm.execute_notebook(str(project_root() / "notebooks" / f"{nb}.ipynb"), str(tmp_path / f"{nb}.ipynb"),
                            parameters=params, cwd=str(project_root()), progress_bar=False)
    m1 = json.loads((run_dir / "01_data_statistics" / "metrics.json").read_text())
    assert m1["n_videos"] == 12 and set(m1["levels_used"]) == {"aesthetic_quality", "clarity_quality"}
    m2 = json.loads((run_dir / "02_annotator_agreement" / "metrics.json").read_text())
    assert "final_clarity_quality_alpha_interval" in m2 and not any(k.startswith("pilot_") for k in m2)


@pytest.mark.notebooks
def test_smoke_chain_notebook_01_metrics(smoke_run):
    m = smoke_run.metrics("01_data_statistics")
    assert m["n_videos"] == 32 and m["n_raters"] == 12 and m["ratings_per_video_dimension"] >= 3
    assert set(m["levels_used"]) == set(L.DIMENSION_KEYS) and min(m["levels_used"].values()) >= 7
    assert 0 < m["rationale_words_mean"] < m["rationale_tokens_mean"]


@pytest.mark.notebooks
def test_smoke_chain_notebook_02_final_alpha_above_pilot(smoke_run):
    m = smoke_run.metrics("02_annotator_agreement")
    assert m["final_alpha_interval_above_pilot_all"] is True and m["final_alpha_ordinal_above_pilot_all"] is True
    for dim in L.DIMENSION_KEYS:
        assert m[f"final_{dim}_alpha_interval"] > m[f"pilot_{dim}_alpha_interval"]
    assert m["rater_bias_corr_with_truth"] > 0.5
