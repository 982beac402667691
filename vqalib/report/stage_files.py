"""The predictions files of a run folder: what notebooks 05-06 write for every seed, which files notebook 07
reads, and what their manifests say.

``RUN_DIR/predictions/<name>.jsonl`` holds three kinds of file: one per stage (``base``, ``sft``,
``grpo``, ``aso``: Table 1), the extra training seeds (``<method>_seed<k>``: the GRPO-against-ASO
comparison, :mod:`vqalib.report.compare`) and benchmark runs (``<model>@<benchmark>``: Table 2).
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from vqalib.core.runs import resolve_path
from vqalib.eval.predictions_file import prediction_files, read_predictions
from vqalib.report.compare import is_seed_run, seed_run_name
from vqalib.report.training import write_stage_predictions
from vqalib.train.common import CommonConfig


def table1_predictions(run_dir: str) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """``({name: rows}, {name: manifest})`` of the stages' predictions files in ``run_dir`` (neither the extra
    seeds nor benchmark runs), in the order base, sft, grpo, aso, then others. Raises ``FileNotFoundError``
    naming the folder when there is none."""
    files = {name: p for name, p in prediction_files(run_dir).items() if "@" not in name and not is_seed_run(name)}
    if not files:
        raise FileNotFoundError(f"no predictions files in {resolve_path(run_dir) / 'predictions'}; "
                                "run notebooks 04-06 or set CREATE_BASE=True")
    read = {name: read_predictions(p) for name, p in files.items()}
    return {n: r[0] for n, r in read.items()}, {n: r[1] for n, r in read.items()}


def manifest_table(preds: dict[str, pd.DataFrame], manifests: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per predictions file: the model, rows, videos, sampling (fps, max frames) and git commit."""
    return pd.DataFrame({n: {"model": m.get("model"), "rows": len(preds[n]), "videos": preds[n]["video_id"].nunique(),
                             "fps": m.get("sampling", {}).get("fps"),
                             "max_frames": m.get("sampling", {}).get("max_frames"),
                             "commit": (m.get("environment") or {}).get("commit")} for n, m in manifests.items()}).T


def benchmark_predictions(run_dir: str, benchmark: str) -> dict[str, pd.DataFrame]:
    """``{model: rows}`` of the ``<model>@<benchmark>.jsonl`` files in ``run_dir`` (benchmark name in any case)."""
    tag = f"@{benchmark.lower()}"
    return {n.split("@")[0]: read_predictions(p)[0] for n, p in prediction_files(run_dir).items()
            if n.lower().endswith(tag)}


def write_seed_predictions(run_dir: str, seed_cfgs: dict[int, CommonConfig], split: str = "test",
                           limit: int = 0) -> dict[int, pd.DataFrame]:
    """Every seed's final held-out answers (:func:`vqalib.report.training.write_stage_predictions` from the
    seed's ``output_dir``) into ``RUN_DIR/predictions/<stage>.jsonl`` (the first seed of ``seed_cfgs``) and
    ``<stage>_seed<k>.jsonl``; returns ``{seed: rows}``."""
    first = next(iter(seed_cfgs))
    return {s: write_stage_predictions(run_dir, seed_run_name(c.stage, s, first), c.output_dir, c, split=split,
                                       limit=limit)[1] for s, c in seed_cfgs.items()}


def stage_predictions(run_dir: str, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """``{name: rows}`` of the ``RUN_DIR/predictions/<name>.jsonl`` files among ``names`` that exist
    (e.g. ``("sft", "grpo")`` before ASO: GRPO is there only when notebook 05 ran)."""
    paths = {n: resolve_path(run_dir) / "predictions" / f"{n}.jsonl" for n in names}
    return {n: read_predictions(p)[0] for n, p in paths.items() if p.is_file()}
