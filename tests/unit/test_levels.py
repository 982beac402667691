"""The shared vocabulary: grid, rounding rule, keywords, dimension keys, tags."""

from __future__ import annotations

import numpy as np
import pytest

from vqalib.schema import levels as L


def test_grid_has_nine_levels_from_1_to_5():
    assert L.N_LEVELS == 9
    assert L.LEVEL_STRINGS == ("1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0")
    assert np.allclose(np.diff(L.LEVELS), 0.5)


@pytest.mark.parametrize("x, expected", [(3.25, 3.5), (3.24, 3.0), (2.75, 3.0), (1.2, 1.0), (0.2, 1.0),
                                         (7.0, 5.0), (4.74, 4.5), (4.75, 5.0), (1.25, 1.5)])
def test_snap_to_grid_rounds_half_up_and_clips(x, expected):
    assert L.snap_to_grid(x) == expected


def test_snap_to_grid_vectorised_keeps_nan():
    out = L.snap_to_grid(np.array([1.24, np.nan, 4.9]))
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == 5.0


def test_is_on_grid_and_level_index():
    assert L.is_on_grid(3.5) and not L.is_on_grid(3.25) and not L.is_on_grid(5.5) and not L.is_on_grid(0.5)
    assert L.level_index(1.0) == 0 and L.level_index(5.0) == 8
    assert L.level_index(np.array([1.5, 4.5])).tolist() == [1, 7]
    with pytest.raises(ValueError, match="not on the grid"):
        L.level_index(3.2)


def test_keywords_cover_every_level_in_order():
    assert list(L.KEYWORDS) == list(L.LEVELS)
    assert L.KEYWORDS[1.0] == "Abysmal" and L.KEYWORDS[5.0] == "Perfect"
    assert L.keyword(3.3) == "Good"  # 3.3 snaps to 3.5


def test_keywords_are_the_papers_nine():
    # the paper's rationale prompts (Figs. 4 and 5) list the keywords from lowest to highest
    paper = "Abysmal, Terrible, Poor, Subpar, Acceptable, Good, Excellent, Outstanding, Perfect"
    assert list(L.KEYWORDS.values()) == paper.split(", ")


def test_dimension_key_accepts_keys_and_display_names():
    assert L.dimension_key("Motion Quality") == "motion_quality"
    assert L.dimension_key("clarity quality") == "clarity_quality"
    assert L.dimension_key("aesthetic_quality") == "aesthetic_quality"
    with pytest.raises(ValueError, match="unknown dimension 'sharpness'"):
        L.dimension_key("sharpness")


def test_tags_are_checked_per_dimension():
    assert L.check_tags("clarity_quality", ["blur", "noise"]) == []
    assert L.check_tags("clarity_quality", ["blur", "flicker"]) == ["flicker"]
    assert set(L.TAGS) == set(L.DIMENSION_KEYS)
    assert all(t in L.TAG_TEXT for tags in L.TAGS.values() for t in tags)
