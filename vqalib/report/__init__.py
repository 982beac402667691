"""Layer 7, what notebooks show: dataset statistics and their figures (:mod:`~vqalib.report.dataset_stats`),
training curves and ASO's distributions (:mod:`~vqalib.report.training`), GRPO against ASO at equal compute
(:mod:`~vqalib.report.compare`), and the results of a run folder for ``docs/results.md``
(:mod:`~vqalib.report.results`, ``python -m vqalib report``).
"""
