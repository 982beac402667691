"""Layer 0, the foundation: run folders and manifests (:mod:`~vqalib.core.runs`), the multi-process
helpers (:mod:`~vqalib.core.distributed`) and the one bootstrap every interval uses (:mod:`~vqalib.core.bootstrap`).

Imports nothing else from vqalib.
"""
