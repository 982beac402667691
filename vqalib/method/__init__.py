"""Layer 2, the method without a model: ASO's rewards, closed form and loss (:mod:`~vqalib.method.aso`),
GRPO's rewards, advantages and clipped objective (:mod:`~vqalib.method.grpo_math`), the exact score
distributions over the levels read from a model's logits (:mod:`~vqalib.method.distributions`), and the one
readout pair of such a distribution, expected score and argmax level (:mod:`~vqalib.method.readout`).

Imports only :mod:`vqalib.core` and :mod:`vqalib.schema`.
"""
