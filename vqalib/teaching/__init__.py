"""Layer 7, teaching the derivation: the one-step bandit (:mod:`~vqalib.teaching.bandit`) and the
interactive ASO explorer (:mod:`~vqalib.teaching.widgets`) of notebook 03.
"""
