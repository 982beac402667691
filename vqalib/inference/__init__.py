"""The inference side of vqalib: score your own videos, and evaluate on public MOS benchmarks.

Grouped in one subpackage (rather than more modules in the flat ``vqalib/`` list) because these
modules serve one concern, running a trained or base model over videos a user brings, and sit
above the model layer (``models``, ``inputs``, ``scoring``, ``predict``) and the data layer
(``video``, ``mos``) they reuse:

- :mod:`vqalib.inference.sources`: which videos (a folder, a glob, a text or CSV list);
- :mod:`vqalib.inference.store`: the resumable output table (CSV, JSONL or Parquet);
- :mod:`vqalib.inference.scorer`: :class:`~vqalib.inference.scorer.Scorer`, ``--mode fast`` and
  ``--mode generate``, decoding overlapped with the model through DataLoader workers;
- :mod:`vqalib.inference.shards`: the same scoring under ``torchrun``, one shard per process, merged;
- :mod:`vqalib.inference.benchmark`: ``python -m vqalib benchmark``, a Table 2 row from the
  official label files of KoNViD-1k, LIVE-VQC, YouTube-UGC and LSVQ;
- :mod:`vqalib.inference.suite`: ``python -m vqalib benchmark-suite``, the standard protocol over five
  benchmarks from locked label files, with the published numbers beside ours.
"""
