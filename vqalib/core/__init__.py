"""Layer 0, the foundation: run folders and manifests (:mod:`~vqalib.core.runs`) and the multi-process
helpers (:mod:`~vqalib.core.distributed`).

Imports nothing else from vqalib.
"""
