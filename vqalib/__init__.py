"""vqalib: the helper library behind the UltraVQA-ASO notebooks.

Analytic Score Optimization (ASO) for multi-dimension video quality assessment, with the data
layer, video sampling, a Qwen2.5-VL-family model wrapper, exact 9-level score distributions,
SFT / GRPO / ASO trainers and evaluation. Modules are imported on demand (``import vqalib.aso``)
so that ``import vqalib`` stays cheap.
"""

__version__ = "0.1.0"
