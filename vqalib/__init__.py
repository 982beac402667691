"""vqalib: the helper library behind the UltraVQA-ASO notebooks.

Analytic Score Optimization (ASO) for multi-dimension video quality assessment, with the data
layer, video sampling, a Qwen2.5-VL-family model wrapper, exact 9-level score distributions,
SFT / GRPO / ASO trainers and evaluation. Modules are imported on demand (``import vqalib.aso``)
so that ``import vqalib`` stays cheap.
"""

__version__ = "0.1.0"

import logging as _logging

# bitsandbytes' CPU backend warns at import that an optional 4-bit CPU kernel (fetched from a hub by
# the `kernels` package) is missing. vqalib never runs 4-bit on CPU (QLoRA raises a clear error
# without CUDA), so this one logger is quieted; every other bitsandbytes message is kept.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
