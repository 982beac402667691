"""Layer 3, the model: loading a video VLM, LoRA / QLoRA (:mod:`~vqalib.model.loading`), the tiny presets
(:mod:`~vqalib.model.tiny`, :mod:`~vqalib.model.pretrain`, :mod:`~vqalib.model.tokenizer`), processor
inputs (:mod:`~vqalib.model.inputs`) and every ``generate`` call's settings (:mod:`~vqalib.model.generation`).
"""
