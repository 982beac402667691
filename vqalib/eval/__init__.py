"""Layer 4, evaluation: metrics (:mod:`~vqalib.eval.metrics`), the prediction loop over a dataset
(:mod:`~vqalib.eval.predict`), the predictions file format (:mod:`~vqalib.eval.predictions_file`) and the
tables and figures of notebook 07 (:mod:`~vqalib.eval.tables`), and the one look of every statistical figure
(:mod:`~vqalib.eval.plots`).
"""
