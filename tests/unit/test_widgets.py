"""Tests of vqalib.teaching.widgets: the pure state function (the explorer driven headless, which redraws
its figure on every change: ``tests/integration/test_plot_rendering.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqalib.method import aso
from vqalib.teaching import widgets
from vqalib.schema.levels import LEVELS

torch.set_num_threads(1)


@pytest.mark.parametrize("shape", widgets.REF_SHAPES)
def test_reference_shapes_are_distributions(shape):
    p = widgets.reference_policy(shape, 2.0)
    assert p.shape == (9,) and np.all(p >= 0) and p.sum() == pytest.approx(1.0)


def test_reference_shapes_put_their_peaks_where_documented():
    assert LEVELS[np.argmax(widgets.reference_policy("peaked_truth", 3.5))] == 3.5
    assert LEVELS[np.argmax(widgets.reference_policy("peaked_elsewhere", 2.0))] == 4.0
    assert LEVELS[np.argmax(widgets.reference_policy("peaked_elsewhere", 4.5))] == 2.5
    zm = widgets.reference_policy("zero_mass", 3.2)
    assert zm[4] == 0.0 and np.count_nonzero(zm == 0) == 1
    with pytest.raises(ValueError, match="unknown reference shape"):
        widgets.reference_policy("spiky", 3.0)


def test_explorer_state_matches_aso_functions():
    st = widgets.explorer_state(lam=0.5, beta=2.0, s_star=4.0, reward="sq", ref_shape="bimodal")
    pi_ref = widgets.reference_policy("bimodal", 4.0)
    R = aso.reward_sq(4.0, 2.0)
    expected = aso.optimal_policy(pi_ref, R, 0.5, probs=True).numpy()
    np.testing.assert_allclose(st["pi_star"], expected)
    assert st["expected_score"] == pytest.approx(float(aso.expected_score(torch.as_tensor(expected))))
    # J(π*) = λ log Z at the optimum (A4)
    assert st["objective"] == pytest.approx(0.5 * st["log_z"], abs=1e-10)
    assert widgets.explorer_state(ref_shape="zero_mass", s_star=3.0)["zero_levels"] == ["3.0"]
    assert widgets.explorer_state(ref_shape="zero_mass", s_star=3.0, eps=1e-3)["zero_levels"] == []


def test_live_explorer_is_the_widget_with_a_front_end_and_a_note_headless(monkeypatch):
    from vqalib.core.runs import HEADLESS_ENV

    monkeypatch.delenv(HEADLESS_ENV, raising=False)
    assert type(widgets.live_explorer()).__name__ == "VBox"
    monkeypatch.setenv(HEADLESS_ENV, "0")  # "0" means off
    assert type(widgets.live_explorer()).__name__ == "VBox"
    monkeypatch.setenv(HEADLESS_ENV, "1")
    note = widgets.live_explorer()
    assert type(note).__name__ == "Markdown" and HEADLESS_ENV in note.data
