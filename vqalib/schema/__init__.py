"""Layer 1, the rating schema: dimensions, the score grid and its keywords (:mod:`~vqalib.schema.levels`),
the instruction, the answer format and its parser (:mod:`~vqalib.schema.prompts`).

Imports only :mod:`vqalib.core`.
"""
