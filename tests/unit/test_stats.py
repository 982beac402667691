"""Statistics helpers of notebooks 01/02 on small hand-made frames."""

from __future__ import annotations

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
