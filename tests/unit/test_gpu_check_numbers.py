"""bench/gpu_check.py's parts, in this process and without a GPU: argument checks, the 7B workload its
defaults measure, the docs section writer, the datasheet peak, the 7B architecture (checked against
the real config.json), parameter counts and the memory table, and the executed-FLOP counter on small
shapes (checked against torch's own FlopCounterMode). The script run as a process (the "no CUDA"
error, ``--help``, the ``--dry-run`` from a bare checkout, ``--from-json``):
``tests/system/test_gpu_check.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402

REAL_CONFIG = ROOT.parent / "shared" / "data" / "qwen2_5_vl" / "config.json"


# ------------------------------------------------------------------------------------------------ arguments
def _special_ids() -> dict[str, int]:
    from vqalib.model.tokenizer import SPECIAL_TOKENS, build_tokenizer

    tok = build_tokenizer()
    return {t: int(tok.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}


@pytest.mark.parametrize("argv, message", [
    (["--stages", "sft_lora,warp"], "unknown stage(s) ['warp']"),
    (["--stages", ","], "unknown stage(s) []"),
    (["--device", "cpu"], "use --dry-run for the CPU run"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--G", "-1"], "--G must be >= 0"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        gpu_check.parse_args(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_measure_the_configured_7b_workload(tmp_path):
    """Without overrides every stage trains with its env/train_configs/*_7b*.yaml values: 32 frames of
    448 x 448 (max_pixels 200704), gradient checkpointing, bf16, the ASO rationale KL, GRPO G = 8 with the
    configured max_new_tokens (512), the vision tower frozen."""
    args = gpu_check.parse_args([])
    assert args.stages == list(gpu_check.STAGES) and args.device == "cuda" and args.docs == str(gpu_check.DOCS)
    cfgs = {s: gpu_check.stage_config(s, args, tmp_path / "m", tmp_path) for s in gpu_check.STAGES}
    for stage, cfg in cfgs.items():
        assert (cfg.max_frames, cfg.max_pixels, cfg.gradient_checkpointing, cfg.bf16, cfg.freeze_vision) == \
            (32, 200704, True, True, True), stage
        assert cfg.model == str(tmp_path / "m") and cfg.init_from == "" and cfg.grad_accum == 1
    assert gpu_check.frame_side(cfgs["sft_full"].max_pixels) == 448
    assert (cfgs["sft_full"].finetune, cfgs["sft_lora"].finetune, cfgs["sft_qlora"].finetune) == ("full", "lora", "qlora")
    assert cfgs["sft_full"].rationale == "full" and cfgs["aso"].rationale == "full"
    assert cfgs["aso"].target_position == "keyword"  # aso_7b.yaml: pi* at the evaluation keyword (issue 20)
    assert (cfgs["aso"].finetune, cfgs["aso"].rationale_loss, cfgs["aso"].rationale_weight) == ("full", "kl", 0.1)
    g = cfgs["grpo"]
    assert (g.num_generations, g.max_new_tokens, g.finetune, g.kl_coef) == (8, 512, "lora", 0.1)
    assert cfgs["sft_lora"].max_steps == 1 + args.steps and g.max_steps == 1 + args.grpo_steps


def test_section_is_replaced_not_duplicated(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nintro\n")
    gpu_check.write_section(docs, "### GPU check, measured on A\n\nfirst")
    gpu_check.write_section(docs, "### GPU check, measured on B\n\nsecond")
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n")
    assert text.count(gpu_check.BEGIN) == 1 and "second" in text and "first" not in text


def test_peak_is_the_dense_bf16_datasheet_value():
    assert gpu_check.peak_bf16_tflops("NVIDIA H200") == 989.4
    assert gpu_check.peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu_check.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_check.peak_bf16_tflops("Some Future GPU") is None
    res = {"s_per_step": 2.0, "flops_forward": 4e14, "flops_backward": 8e14, "flops_recompute": 4e14}
    gpu_check.add_utilisation(res, 1000.0)
    assert res["tflops"] == pytest.approx(600.0) and res["mfu"] == pytest.approx(0.6)
    assert res["hfu"] == pytest.approx(0.8)


# ------------------------------------------------------------------------------------------------ architecture
@pytest.mark.skipif(not REAL_CONFIG.is_file(), reason="../shared/data/qwen2_5_vl/config.json is not beside the checkout")
def test_7b_numbers_in_code_equal_the_real_config():
    from transformers import Qwen2_5_VLConfig

    ours = gpu_check.architecture_numbers(gpu_check.qwen2_5_vl_7b_config(_special_ids()))
    real = gpu_check.architecture_numbers(Qwen2_5_VLConfig.from_pretrained(str(REAL_CONFIG.parent)))
    assert ours == real
    assert ours["text.hidden_size"] == 3584 and ours["vision.depth"] == 32  # the numbers are read, not both empty


def test_7b_parameter_counts_and_computed_memory():
    p = gpu_check.param_counts(gpu_check.qwen2_5_vl_7b_config(_special_ids()))
    assert p["total"] == 8_292_166_656  # Qwen2.5-VL-7B-Instruct's published parameter count
    assert p["vision"] == 676_550_144 and p["embed_head"] == 2 * 152064 * 3584
    # LoRA r=16 on q, k, v, o, gate, up, down of 28 layers: r * (in + out) each
    per_layer = (3584 + 3584) + 2 * (3584 + 512) + (3584 + 3584) + 3 * (3584 + 18944)
    assert p["lora"] == 28 * 16 * per_layer
    rows = {r["setting"].split(" (")[0].split(",")[0]: r for r in gpu_check.memory_rows(p)}
    full = gpu_check.memory_rows(p)[0]
    assert full["weights"] == 2 * p["total"] and full["grads"] == 2 * p["lm"] and full["optim"] == 4 * p["lm"]
    assert rows["LoRA r=16"]["static"] == 2 * p["total"] + 16 * p["lora"]
    assert rows["QLoRA r=16"]["static"] < rows["LoRA r=16"]["static"] / 1.9


# ------------------------------------------------------------------------------------------------ FLOP counting
class _Net(torch.nn.Module):
    """A frozen 'tower' (its input needs no gradient), a trainable projection, an attention block (q with
    a frozen weight), a trainable head; the block optionally gradient-checkpointed."""

    def __init__(self, ckpt: bool):
        super().__init__()
        self.tower = torch.nn.Linear(12, 16)
        self.proj, self.q, self.k, self.v = (torch.nn.Linear(16, 16) for _ in range(4))
        self.head = torch.nn.Linear(16, 8)
        self.tower.requires_grad_(False)
        self.q.requires_grad_(False)  # frozen weight whose input needs a gradient: input gradient only
        self.ckpt = ckpt

    def block(self, h):
        q, k, v = (m(h).view(2, 5, 2, 8).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return a.transpose(1, 2).reshape(2, 5, 16)

    def forward(self, x):
        h = self.proj(self.tower(x))  # tower: no backward at all; proj: weight gradient only
        if self.ckpt:
            from torch.utils.checkpoint import checkpoint

            h = checkpoint(self.block, h, use_reentrant=False)
        else:
            h = self.block(h)
        return self.head(h)


def _torch_matmul_flops(net, x) -> int:
    """FLOPs torch's own FlopCounterMode charges to matrix products (mm, addmm, bmm) in forward + backward."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        net(x).sum().backward()
    return sum(n for op, n in fc.get_flop_counts()["Global"].items() if "mm" in str(op))


@pytest.mark.parametrize("ckpt", [False, True])
def test_flop_counter_counts_what_torch_executes(ckpt):
    torch.manual_seed(0)
    net = _Net(ckpt)
    x = torch.randn(2, 5, 12)
    with gpu_check.FlopCounter(net) as fc:
        net(x).sum().backward()
    linear = lambda i, o: 2 * 10 * i * o  # noqa: E731 - 2 x 5 rows
    attn = 4 * 2 * 2 * 5 * 5 * 8 // 2  # B=2, H=2, L=5, D=8, causal: half the square
    assert fc.forward == linear(12, 16) + 4 * linear(16, 16) + linear(16, 8) + attn
    # backward: tower none; proj weight only; q input only; k, v, head input + weight; attention 2x forward
    assert fc.backward == linear(16, 16) + linear(16, 16) + 4 * linear(16, 16) + 2 * linear(16, 8) + 2 * attn
    # recomputation: the block's three projections; torch's non-reentrant checkpoint stops recomputing once
    # the tensors the backward needs are back, which here is before the attention itself
    assert fc.recompute == (3 * linear(16, 16) if ckpt else 0)
    assert fc.attention == 3 * attn
    # torch's own counter charges the same matrix products (attention aside: it counts the causal square
    # in full and its backward at 2.5 x, and its dispatch mode changes what the checkpoint recomputes)
    assert _torch_matmul_flops(net, x) == fc.executed - fc.attention


def test_flop_counter_without_grad_counts_forward_only():
    net = _Net(False)
    with gpu_check.FlopCounter(net) as fc, torch.no_grad():
        net(torch.randn(2, 5, 12))
    assert fc.forward > 0 and fc.backward == 0 and fc.recompute == 0
    # the wrapper is removed afterwards
    assert torch.nn.functional.scaled_dot_product_attention.__module__ != gpu_check.__name__


# ------------------------------------------------------------------------------------------------ docs
def test_memory_table_in_training_docs_is_the_computed_one():
    """docs/training.md's 7B memory table holds the numbers the code computes (the measured column aside)."""
    p = gpu_check.param_counts(gpu_check.qwen2_5_vl_7b_config(_special_ids()))
    text = (ROOT / "docs" / "training.md").read_text()
    doc = text[text.index(gpu_check.MEM_BEGIN):text.index(gpu_check.MEM_END)]
    computed = lambda t: [line.rsplit("|", 2)[0] for line in t.splitlines() if line.startswith("| ")]  # noqa: E731
    assert computed(doc) == computed(gpu_check.memory_markdown(p)) and len(computed(doc)) == 8
