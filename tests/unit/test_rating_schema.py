"""The rating schema object: presets, nearest level, raw scale, targets, saving (vqalib.schema.rating)."""

import json

import numpy as np
import pytest

from vqalib.schema import levels as L
from vqalib.schema import rating as R


def test_paper_preset_is_the_levels_module():
    s = R.PAPER
    assert s.keys == L.DIMENSION_KEYS and s.names == L.DIMENSIONS
    assert s.strings == L.LEVEL_STRINGS and np.array_equal(s.levels, L.LEVELS)
    assert s.keywords == tuple(L.KEYWORDS[float(v)] for v in L.LEVELS)
    assert s.span == 4.0 and s.step == 0.5 and s.n_levels == 9 and s.n_dims == 5
    assert s.quality_keys == tuple(k for k in L.DIMENSION_KEYS if k != "motion_amplitude")
    assert R.get_schema(None) is R.PAPER and R.resolve("paper") is R.PAPER


def test_paper_snap_is_bit_identical_to_snap_to_grid():
    x = np.concatenate([np.random.default_rng(0).uniform(-1, 7, 20000), np.arange(0, 6, 0.25)])
    assert np.array_equal(R.PAPER.snap(x), L.snap_to_grid(x))
    assert R.PAPER.snap(3.25) == 3.5 and R.PAPER.snap(3.24) == 3.0 and np.isnan(R.PAPER.snap(np.nan))


@pytest.mark.parametrize("x,want", [(1.49, 1), (1.5, 2), (9.5, 10), (0.0, 1), (12.0, 10)])
def test_int10_nearest_level_ties_up_and_clips(x, want):
    assert R.INT10.snap(x) == want


def test_uneven_levels_nearest_with_ties_up():
    s = R.make_schema("u", ["Q"], values=[0, 1, 3, 10])
    assert s.step is None
    assert s.snap([0.49, 0.5, 2.0, 2.01, 6.5, 6.49, 99]).tolist() == [0, 1, 3, 3, 10, 3, 10]
    assert s.index(3.0) == 2
    with pytest.raises(ValueError, match="not levels"):
        s.index(2.0)


def test_word_levels_and_strings():
    s = R.QALIGN5
    assert s.strings == ("bad", "poor", "fair", "good", "excellent") and s.values == (1, 2, 3, 4, 5)
    assert not s.numeric_strings and R.INT10.numeric_strings and R.PAPER.numeric_strings
    assert s.value_of_string("Excellent") == 5.0 and s.value_of_string("great") is None
    assert s.string(4) == "good" and s.keyword(4.4) == "Good"
    assert R.INT10.strings[0] == "1" and R.INT10.strings[-1] == "10"


def test_raw_scale_round_trip_and_dmos_flip():
    live = R.make_schema("live", [{"name": "Overall Quality", "raw_range": [0, 100]}], values=R.PAPER.values)
    assert live.from_raw(0) == 1.0 and live.from_raw(100) == 5.0 and live.from_raw(50) == 3.0
    dmos = R.make_schema("dmos", [{"name": "Overall Quality", "raw_range": [0, 100], "higher_is_better": False}],
                         values=R.PAPER.values)
    assert dmos.from_raw(0) == 5.0 and dmos.from_raw(100) == 1.0
    raw = np.array([3.0, 42.5, 97.0])
    np.testing.assert_allclose(dmos.to_raw(dmos.from_raw(raw)), raw)
    with pytest.raises(ValueError, match="name the dimension"):
        R.PAPER.from_raw(3.0)


def test_gaussian_target_integrates_over_level_intervals():
    from scipy.stats import norm

    t = R.PAPER.target(3.2, 0.6, rule="gaussian")
    assert t.shape == (9,) and t.sum() == pytest.approx(1.0)
    # the 3.0 level holds the mass between the midpoints 2.75 and 3.25
    assert t[4] == pytest.approx(norm.cdf(3.25, 3.2, 0.6) - norm.cdf(2.75, 3.2, 0.6))
    assert t[0] == pytest.approx(norm.cdf(1.25, 3.2, 0.6))  # the end intervals are open
    assert R.PAPER.target(3.2, 0.0, rule="gaussian").tolist() == R.PAPER.target(3.2).tolist()
    assert R.PAPER.target(3.2).argmax() == 4 and R.PAPER.target(3.2).sum() == 1.0


def test_histogram_target_and_its_errors():
    t = R.MOS9.target(None, ratings=[3.0, 3.4, 4.9], rule="histogram")
    assert t[4] == pytest.approx(1 / 3) and t[5] == pytest.approx(1 / 3) and t[8] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="raters' ratings"):
        R.MOS9.target(3.0, rule="histogram")
    with pytest.raises(ValueError, match="must be a number"):
        R.MOS9.target(float("nan"))


@pytest.mark.parametrize("preset", list(R.PRESETS))
def test_save_and_load_round_trip(tmp_path, preset):
    s = R.PRESETS[preset]
    p = s.save(tmp_path)
    assert p.name == R.SCHEMA_FILE
    back = R.load_schema(tmp_path)
    assert back == s and back.fingerprint() == s.fingerprint()
    assert R.schema_of_folder(tmp_path) == s


def test_folder_without_schema_is_the_paper(tmp_path):
    assert R.schema_of_folder(tmp_path) is R.PAPER


def test_hand_written_yaml_and_preset_override(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("name: konvid\ndimensions:\n  - name: Overall Quality\n    raw_range: [1, 5]\n"
                 "levels: [1, 2, 3, 4, 5]\nstrings: [bad, poor, fair, good, excellent]\ntarget_rule: gaussian\n")
    s = R.get_schema(y)
    assert s.keys == ("overall_quality",) and s.strings[-1] == "excellent" and s.target_rule == "gaussian"
    j = tmp_path / "g.json"
    j.write_text(json.dumps({"preset": "mos9", "target_rule": "gaussian"}))
    g = R.get_schema(j)
    assert g.values == R.MOS9.values and g.target_rule == "gaussian"


@pytest.mark.parametrize("kwargs,match", [
    ({"values": [1]}, "at least 2 levels"),
    ({"values": [1, 3, 2]}, "strictly ascending"),
    ({"values": [1, 2], "strings": ["a", "A"]}, "duplicate level"),
    ({"values": [1, 2], "strings": ["1", "3"]}, "reads as 3.0"),
    ({"values": [1, 2], "strings": ["1:", "2"]}, "without surrounding"),
    ({"values": [1, 2], "target_rule": "soft"}, "target_rule"),
    ({"values": [1, 2], "benchmark_dimension": "x"}, "benchmark_dimension"),
])
def test_bad_schemas_are_refused_naming_the_field(kwargs, match):
    with pytest.raises(R.SchemaError, match=match):
        R.make_schema("bad", ["Overall Quality"], **kwargs)


def test_bad_dimensions_are_refused():
    with pytest.raises(R.SchemaError, match="duplicate dimension key"):
        R.make_schema("d", ["Q", "q"], values=[1, 2])
    with pytest.raises(R.SchemaError, match="raw_range"):
        R.make_schema("d", [{"name": "Q", "raw_range": [100, 0]}], values=[1, 2])
    with pytest.raises(R.SchemaError, match="unknown field"):
        R.make_schema("d", [{"name": "Q", "scale": 5}], values=[1, 2])
    with pytest.raises(ValueError, match="unknown rating schema"):
        R.get_schema("no-such-preset")


def test_key_of_accepts_display_names():
    assert R.PAPER.key_of("Clarity Quality") == "clarity_quality"
    assert R.MOS9.key_of("overall quality") == "overall_quality"
    with pytest.raises(ValueError, match="overall_quality"):
        R.MOS9.key_of("clarity_quality")


def test_same_as_ignores_the_name_and_same_answers_ignores_the_raw_scale():
    renamed = R.schema_from_dict({**R.INT10.to_dict(), "name": "mine"})
    assert renamed != R.INT10 and renamed.same_as(R.INT10) and not renamed.differences(R.INT10)
    dmos = R.make_schema("d", [{"name": "Overall Quality", "raw_range": [0, 100], "higher_is_better": False,
                               "description": R.MOS9.dimensions[0].description}], R.MOS9.values, R.MOS9.strings, R.MOS9.keywords, benchmark_dimension="overall_quality")
    assert dmos.same_answers(R.MOS9) and not dmos.same_as(R.MOS9)
    assert dmos.differences(R.MOS9, "mine", "preset") == [
        "overall_quality raw_range: (0.0, 100.0) (mine) vs None (preset)",
        "overall_quality higher_is_better: False (mine) vs True (preset)"]
    assert not R.QALIGN5.same_answers(R.MOS9)
    assert "level strings: ['bad', 'poor', 'fair', 'good', 'excellent'] (a)" in "\n".join(R.QALIGN5.differences(R.MOS9, "a", "b"))


def test_a_preset_typo_and_a_broken_yaml_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown rating schema 'int01': no preset of that name \(did you mean 'int10'\?\)"):
        R.get_schema(tmp_path / "int01")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a\ndimensions: [\n")
    with pytest.raises(R.SchemaError, match=r"bad\.yaml: not valid YAML"):
        R.get_schema(bad)
