"""The one readout pair (``vqalib.method.readout``): expected score and argmax level of a distribution over
the 9 levels, as torch (the method's maths) and as numpy (evaluation), on hand-computed cases."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vqalib.method import aso, readout
from vqalib.schema.levels import LEVELS


def _two_rows() -> np.ndarray:
    d = np.zeros((2, 9))
    d[0, [2, 3]] = 0.5  # 2.0 and 2.5: a tie, read as the lower level
    d[1, 8] = 1.0
    return d


def test_numpy_pair_on_hand_computed_rows():
    d = _two_rows()
    np.testing.assert_allclose(readout.expected_score_np(d), [2.25, 5.0])
    np.testing.assert_array_equal(readout.argmax_score_np(d), [2.0, 5.0])
    assert readout.expected_score_np(d).dtype == np.float64


def test_numpy_pair_reads_log_probs_of_a_tensor_and_nan_rows():
    p = np.zeros((2, 9))
    p[0, 4] = 1.0  # all mass on 3.0
    p[1, [0, 8]] = 0.5  # half on 1.0, half on 5.0
    with np.errstate(divide="ignore"):
        lp = torch.tensor(np.log(p))
    assert readout.expected_score_np(lp.exp()).tolist() == pytest.approx([3.0, 3.0])
    assert readout.argmax_score_np(lp.exp()).tolist() == [3.0, 1.0]
    # [B, 5, 9] as level_logprobs returns it, one dimension without a score position (NaN row)
    batch = np.tile(p[None, :1], (1, 5, 1))
    batch[0, 2] = np.nan
    e, a = readout.expected_score_np(batch), readout.argmax_score_np(batch)
    assert e.shape == a.shape == (1, 5)
    assert np.isnan(e[0, 2]) and np.isnan(a[0, 2]) and e[0, 0] == a[0, 0] == 3.0


def test_numpy_pair_refuses_what_is_not_a_distribution():
    d = _two_rows()
    d[1, 0] = 0.5
    with pytest.raises(ValueError, match=r"distributions: row 1 is not a probability distribution .*sum 1\.500000"):
        readout.expected_score_np(d)
    half_nan = _two_rows()
    half_nan[0, 0] = math.nan
    with pytest.raises(ValueError, match="row 0 is not"):
        readout.argmax_score_np(half_nan)
    with pytest.raises(ValueError, match=r"expected shape \[..., 9\]"):
        readout.expected_score_np(np.ones((2, 8)) / 8)
    deep = np.full((2, 3, 9), 1 / 9)
    deep[1, 2, 0] = 1.0
    with pytest.raises(ValueError, match=r"row \(1, 2\) is not"):
        readout.check_distributions(deep)


def test_torch_pair_keeps_dtype_ties_low_and_has_a_gradient():
    pi = torch.tensor(_two_rows(), dtype=torch.float32, requires_grad=True)
    e = readout.expected_score(pi)
    assert e.dtype == torch.float32 and e.tolist() == pytest.approx([2.25, 5.0])
    assert readout.argmax_score(pi).tolist() == [2.0, 5.0]
    e.sum().backward()
    assert torch.allclose(pi.grad, torch.tensor(LEVELS, dtype=torch.float32).expand(2, -1))
    assert readout.expected_score([0.0] * 8 + [1.0]).dtype == torch.float64  # a list becomes float64


def test_torch_and_numpy_pairs_agree():
    rng = np.random.default_rng(0)
    d = rng.dirichlet(np.ones(9), size=(4, 5))
    np.testing.assert_allclose(readout.expected_score(torch.tensor(d)).numpy(), readout.expected_score_np(d), rtol=1e-12)
    np.testing.assert_array_equal(readout.argmax_score(torch.tensor(d)).numpy(), readout.argmax_score_np(d))


def test_the_pair_is_defined_once():
    assert aso.expected_score is readout.expected_score and aso.argmax_score is readout.argmax_score
    root = Path(readout.__file__).parents[1]
    defs = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
            if re.search(r"^def (expected|argmax)_score\b", p.read_text(), re.M)]
    assert defs == ["method/readout.py"]
