"""Run folders: where an executed notebook puts its figures, tables and metrics.

Layout of a run folder (``RUN_DIR``, default ``runs/demo``)::

    RUN_DIR/
      manifest.json                 parameters, versions, git commit, wall time per notebook
      notebooks/NN_name.ipynb       executed notebooks (written by the notebook runner)
      NN_name/figures/*.png         figures saved through Run.save_fig
      NN_name/tables/*.csv          tables saved through Run.save_table
      NN_name/metrics.json          numbers the notebook computed (tests assert on these)
      checkpoints/<stage>/          training checkpoints (notebooks 04-06)
      predictions/<model>.jsonl     per-item predictions + <model>.manifest.json (notebook 07 reads)

Relative paths given to notebooks, configs and library functions are resolved against the project
root (the folder holding this project's ``pyproject.toml``; :func:`resolve_path`), so a notebook
behaves the same whether it is run by papermill from the root or opened in JupyterLab from
``notebooks/``, and a folder written by one function is the folder another reads. Paths typed as
command-line options (``--output``, ``--videos``, ``--config`` ...) are from the working directory,
as in any shell tool (:func:`cli_path` makes them absolute before the library sees them).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PKG_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The project checkout (parent of ``vqalib/``) if it has a pyproject.toml, else the cwd."""
    cand = _PKG_DIR.parent
    if (cand / "pyproject.toml").is_file():
        return cand
    return Path.cwd()


def resolve_path(p: str | os.PathLike) -> Path:
    """Absolute paths stay; relative ones are taken from the project root. ``~`` is expanded."""
    path = Path(os.path.expanduser(str(p)))
    return path if path.is_absolute() else project_root() / path


def relative_note(p: str | os.PathLike) -> str:
    """For an error about a missing file or folder: a note that ``p``, as given, was taken from the
    project root (empty for an absolute ``p``), since a user may have meant the working directory."""
    if Path(os.path.expanduser(str(p))).is_absolute():
        return ""
    return f" (a relative path is taken from the project root {project_root()}, not the working directory)"


def cli_path(p: str) -> str:
    """An ``argparse`` ``type=`` for a path option: ``~`` expanded, made absolute against the working
    directory (the shell's convention), so :func:`resolve_path` leaves it as it is."""
    return os.path.abspath(os.path.expanduser(p))


#: Set to ``1`` in the environment of a notebook kernel that has no front end (the kernels of
#: :mod:`vqalib.notebook_runner`; set it yourself for a plain ``papermill`` batch): notebooks then show
#: no live ipywidgets (:func:`vqalib.teaching.widgets.live_explorer`).
HEADLESS_ENV = "VQALIB_HEADLESS"


def headless() -> bool:
    """True when ``$VQALIB_HEADLESS`` is set to anything but empty or ``0`` (:data:`HEADLESS_ENV`)."""
    return os.environ.get(HEADLESS_ENV, "").strip() not in ("", "0")


def cache_dir() -> Path:
    """Cache for generated data and cached checkpoints: ``$VQALIB_CACHE`` or ``<root>/.cache``."""
    env = os.environ.get("VQALIB_CACHE")
    path = Path(env).expanduser() if env else project_root() / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def git_commit() -> str | None:
    """The checkout's commit (with ``-dirty`` when there are local changes), or None outside git."""
    try:
        root = project_root()
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info() -> dict[str, Any]:
    """Versions of the packages that decide results, the platform and the git commit."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(), "commit": git_commit()}
    for mod in ("torch", "transformers", "peft", "accelerate", "numpy", "scipy", "pandas", "decord", "av"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is reported, not fatal
            info[mod] = None
    try:
        import torch

        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        info["device_count"] = torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        pass
    return info


def jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays, paths and NaN into plain JSON (NaN -> null)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if np is not None:
        if isinstance(obj, np.ndarray):
            return jsonable(obj.tolist())
        if isinstance(obj, np.generic):
            obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (numpy values and NaN handled), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=False) + "\n")
    return path


@dataclass
class Run:
    """One notebook's corner of a run folder.

    >>> run = Run("runs/demo", "01_data_statistics")   # doctest: +SKIP
    >>> run.save_fig(fig, "score_histograms")           # runs/demo/01_data_statistics/figures/score_histograms.png
    >>> run.log_metrics(alpha_final=0.71)               # merged into .../metrics.json
    """

    run_dir: str | os.PathLike
    notebook: str
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = resolve_path(self.run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def dir(self) -> Path:
        return self.root / self.notebook

    @property
    def fig_dir(self) -> Path:
        d = self.dir / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def table_dir(self) -> Path:
        d = self.dir / "tables"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.json"

    def path(self, *parts: str) -> Path:
        """A path inside the *run folder* (not the notebook's corner), parents created."""
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def save_fig(self, fig, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as PNG under ``figures/`` and return its path."""
        path = self.fig_dir / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path

    def save_table(self, df, name: str, index: bool = True):
        """Save a DataFrame as CSV under ``tables/``; returns the DataFrame so a cell can display it."""
        df.to_csv(self.table_dir / f"{name}.csv", index=index)
        return df

    def log_metrics(self, _metrics: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Merge metrics into ``metrics.json`` (NaN written as null) and return the full dict."""
        current = self.metrics()
        current.update(jsonable(dict(_metrics or {}, **kwargs)))
        write_json(self.metrics_path, current)
        return current

    def metrics(self) -> dict[str, Any]:
        """The metrics logged so far (empty dict if none)."""
        if self.metrics_path.is_file():
            return json.loads(self.metrics_path.read_text())
        return {}


#: The training manifest's file name, beside every checkpoint (written by :func:`vqalib.train.common.write_manifest`).
MANIFEST_NAME = "vqalib_train_manifest.json"


def read_manifest(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest written by :func:`vqalib.train.common.write_manifest` in ``ckpt_dir`` (empty dict if none)."""
    p = Path(ckpt_dir) / MANIFEST_NAME
    return json.loads(p.read_text()) if p.is_file() else {}
