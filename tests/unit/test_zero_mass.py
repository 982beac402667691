"""The paper's limitation (Appendix E) and the ε floor: a level where π_ref is 0 keeps π* = 0, in the
closed form and in the target the ASO trainer fits, unless ``eps > 0``; the report functions that find
such (clip, dimension) pairs, on a hand-made π_ref whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vqalib.method import aso
from vqalib.schema.levels import DIMENSION_KEYS, LEVELS
from vqalib.report import training as report
from vqalib.train.aso_trainer import aso_target
from vqalib.train.common import load_config

EPS = 0.05


def _by_hand_pistar(p_ref: np.ndarray, s_star: float, eps: float, lam: float = 1.0, beta: float = 1.0) -> np.ndarray:
    """π* of paper Eq. 8 on the floored reference, written out in numpy (independent of vqalib.method.aso)."""
    p = (1 - 9 * eps) * p_ref + eps
    w = p * np.exp(-beta * np.abs(LEVELS - s_star) / lam)
    return w / w.sum()


def _ref_with_zero_at(level: int) -> torch.Tensor:
    """log π_ref [9]: all mass on the other levels, exactly 0 on ``level``."""
    p = torch.full((9,), 1 / 8, dtype=torch.float64)
    p[level] = 0.0
    return p.log()


# ------------------------------------------------------------------------------ config + trainer

def test_eps_config_key_is_validated_and_defaults_to_the_paper():
    assert load_config("aso").eps == 0.0
    assert load_config("aso", "env/train_configs/aso_tiny.yaml").eps == 0.0
    assert load_config("aso", None, ["eps=0.05"]).eps == 0.05
    for bad in ("-0.01", str(1 / 9), "0.2"):
        with pytest.raises(ValueError, match=r"eps=.*0 <= eps < 1/9"):
            load_config("aso", None, [f"eps={bad}"])


@pytest.mark.parametrize("reward", ["abs", "multi_rater"])
def test_trainer_target_keeps_zero_mass_at_zero_unless_eps(reward):
    # a batch of 2 clips x 5 dimensions; clip 0's first dimension has π_ref = 0 on its human level 1.0
    logp_ref = torch.log_softmax(torch.randn(2, 5, 9, generator=torch.Generator().manual_seed(0)), -1)
    logp_ref[0, 0] = _ref_with_zero_at(0).float()
    scores = torch.full((2, 5), 3.0)
    scores[0, 0] = 1.0
    raters = torch.stack([scores, scores, scores], -1)  # three raters who agree: same R as "abs"
    paper = aso_target(load_config("aso", None, {"reward": reward}), logp_ref, scores, raters)
    assert paper.shape == (2, 5, 9) and paper.dtype == torch.float32
    assert paper[0, 0, 0].item() == 0.0  # exactly: re-weighting cannot create mass
    floored = aso_target(load_config("aso", None, {"reward": reward, "eps": EPS}), logp_ref, scores, raters)
    want = _by_hand_pistar(np.r_[0.0, np.full(8, 1 / 8)], 1.0, EPS)
    assert floored[0, 0, 0].item() == pytest.approx(want[0], rel=1e-6)
    assert floored[0, 0, 0].item() > 0.05
    torch.testing.assert_close(floored.sum(-1), torch.ones(2, 5))
    assert (floored > 0).all()


def test_eps_is_recorded_in_the_training_manifest(tmp_path):
    from vqalib.train.common import write_manifest
    from vqalib.core.runs import read_manifest

    write_manifest(load_config("aso", None, ["eps=0.03"]), tmp_path)
    assert read_manifest(tmp_path)["config"]["eps"] == 0.03


# ------------------------------------------------------------------------------ pure helpers

def test_label_mass_reads_the_human_level():
    p = torch.softmax(torch.randn(3, 5, 9, generator=torch.Generator().manual_seed(1)), -1)
    s = torch.tensor([[1.0, 1.5, 3.0, 4.5, 5.0]] * 3, dtype=torch.float64)
    got = aso.label_mass(p, s)
    want = p[:, range(5), [0, 1, 4, 7, 8]]
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="not on the grid"):
        aso.label_mass(p, s + 0.25)


def _hand_made():
    """Three clips; known low pairs: ('b', motion_quality) π_ref(s*) = 0, ('a', clarity) = 5e-3 (s* = 4.0)."""
    uniform = torch.full((5, 9), 1 / 9, dtype=torch.float64).log()
    a = uniform.clone()
    p = np.full(9, (1 - 5e-3) / 8)
    p[6] = 5e-3  # level 4.0
    a[DIMENSION_KEYS.index("clarity_quality")] = torch.as_tensor(np.log(p))
    b = uniform.clone()
    b[0] = _ref_with_zero_at(2)  # level 2.0
    pi_ref = {"a": a, "b": b, "c": uniform.clone()}
    targets = {"a": [3.0, 3.0, 3.0, 3.0, 4.0], "b": [2.0, 3.0, 3.0, 3.0, 3.0], "c": [3.0] * 5, "unused": [1.0] * 5}
    return pi_ref, targets


def test_label_mass_table_orders_pairs_by_pi_ref_at_the_human_level():
    pi_ref, targets = _hand_made()
    t = report.label_mass_table(pi_ref, targets, EPS)
    assert len(t) == 15  # 3 clips x 5 dimensions; "unused" has no π_ref and is not a training pair
    assert list(t.loc[0, ["video_id", "dimension", "label"]]) == ["b", "motion_quality", 2.0]
    assert list(t.loc[1, ["video_id", "dimension", "label"]]) == ["a", "clarity_quality", 4.0]
    assert t.loc[0, report.REF] == 0.0 and t.loc[0, report.STAR0] == 0.0
    want = _by_hand_pistar(np.r_[1 / 8, 1 / 8, 0.0, np.full(6, 1 / 8)], 2.0, EPS)[2]
    assert t.loc[0, report.star_name(EPS)] == pytest.approx(want, rel=1e-12)
    assert t.loc[1, report.REF] == pytest.approx(5e-3)
    assert t.loc[1, report.STAR0] == pytest.approx(_by_hand_pistar(p := np.r_[np.full(6, (1 - 5e-3) / 8), 5e-3,
                                                                             np.full(2, (1 - 5e-3) / 8)], 4.0, 0.0)[6])
    assert t.loc[1, report.STAR0] < 10 * t.loc[1, report.REF] < t.loc[1, report.star_name(EPS)]
    assert p.sum() == pytest.approx(1)
    np.testing.assert_allclose(t.loc[2:, report.REF], 1 / 9)


def test_label_mass_table_refuses_missing_labels_and_bad_eps():
    pi_ref, targets = _hand_made()
    del targets["b"]
    with pytest.raises(KeyError, match=r"\['b'\].*no labels"):
        report.label_mass_table(pi_ref, targets, EPS)
    with pytest.raises(ValueError, match="eps=0"):
        report.label_mass_table(*_hand_made(), 0.0)


def test_low_mass_counts_and_model_columns():
    pi_ref, targets = _hand_made()
    # a "model" read on clip b only: 0.3 on every level's position we look at
    theta = {"π_θ": {"b": np.full((5, 9), 1 / 9)}}
    t = report.label_mass_table(pi_ref, targets, EPS, pi_theta=theta)
    assert t["π_θ"].notna().sum() == 5
    c = report.low_mass_counts(t, (1e-3, 1e-2, 1e-4)).set_index("threshold")
    assert c.loc[1e-3, "n_pairs"] == 1 and c.loc[1e-2, "n_pairs"] == 2 and c.loc[1e-4, "n_pairs"] == 1
    assert (c["n_total"] == 15).all()
    assert c.loc[1e-3, report.STAR0] == 0.0
    assert c.loc[1e-2, report.REF] == pytest.approx(5e-3 / 2)
    star = t.loc[:1, report.star_name(EPS)].mean()
    assert c.loc[1e-2, report.star_name(EPS)] == pytest.approx(star)
    assert c.loc[1e-2, "π_θ"] == pytest.approx(1 / 9) and c.loc[1e-2, "n read: π_θ"] == 1
    empty = report.low_mass_counts(t, (1e-9,)).iloc[0]
    assert empty["n_pairs"] == 1  # the exact zero is below any positive threshold
    none = report.low_mass_counts(t[t[report.REF] > 0], (1e-3,)).iloc[0]
    assert none["n_pairs"] == 0 and math.isnan(none[report.REF])


def test_verdict_states_the_numbers_and_the_no_pair_case():
    pi_ref, targets = _hand_made()
    t = report.label_mass_table(pi_ref, targets, EPS)
    first = t.iloc[0]
    dists = {report.REF: np.exp(pi_ref["b"][0].numpy()),
             report.STAR0: aso.optimal_policy(pi_ref["b"][0], aso.reward_abs(2.0), 1.0).numpy(),
             report.star_name(EPS): aso.optimal_policy(pi_ref["b"][0], aso.reward_abs(2.0), 1.0, eps=EPS).numpy()}
    import pandas as pd

    case = pd.DataFrame([{"level": f"{s:.1f}", "distribution": k, "probability": float(v[i])}
                         for k, v in dists.items() for i, s in enumerate(LEVELS)])
    zm = report.ZeroMassCase(t, report.low_mass_counts(t), case, first["video_id"], first["dimension"],
                             float(first["label"]), EPS, report.LOW_MASS_THRESHOLDS)
    at = zm.at_label()
    assert at[report.REF] == 0.0 and at[report.STAR0] == 0.0 and at[report.star_name(EPS)] > 0.05
    text = zm.verdict()
    assert text.startswith("1 of 15 (clip, dimension) pairs") and f"{at[report.star_name(EPS)]:.2f}" in text
    zm.counts = report.low_mass_counts(t[t[report.REF] > 0])
    assert zm.verdict().startswith("No (clip, dimension) pair of the 14")
