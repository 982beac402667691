"""Real-size training settings without a run (issue 19): a bf16 trainable weight is refused, the FSDP
config gathers a full state dict, and the memory arithmetic behind the one-GPU refusal. The runs
themselves: ``tests/integration/test_real_size_training.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def test_check_trainable_fp32_refuses_bf16_trainable_weights():
    from vqalib.train.base import check_trainable_fp32

    net = torch.nn.Linear(3, 2).to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="not float32"):
        check_trainable_fp32(net)
    net.requires_grad_(False)
    check_trainable_fp32(net)  # frozen bf16 weights are fine


def test_fsdp_config_gathers_a_full_state_dict():
    import yaml

    cfg = yaml.safe_load(Path("env/accelerate_fsdp.yaml").read_text())
    assert cfg["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_training_memory_bytes_counts_master_weights_gradients_and_optimiser_state():
    """The arithmetic behind the one-GPU refusal (``check_fits_device``) and docs/training.md's table."""
    from vqalib.train.base import optimizer_state_bytes, training_memory_bytes

    net = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 10))  # 110 parameters each
    net[1].to(torch.bfloat16).requires_grad_(False)  # a frozen bf16 part
    ref = torch.nn.Linear(10, 20).to(torch.bfloat16)  # a frozen bf16 reference copy, 220 parameters
    assert optimizer_state_bytes("adamw_torch") == 8 and optimizer_state_bytes("adamw_bnb_8bit") == 2
    assert training_memory_bytes(net, None, "adamw_torch") == 110 * 16 + 110 * 2
    assert training_memory_bytes(net, ref, "adamw_bnb_8bit") == 110 * 10 + 110 * 2 + 220 * 2
