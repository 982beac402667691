"""Execute the numbered notebooks headless, in order, into a run folder (the project's main job).

``python -m vqalib run-notebooks --run-dir runs/demo`` runs every ``notebooks/NN_*.ipynb`` with
papermill, with the project root as working directory, passes ``RUN_DIR`` to each notebook and
writes the executed copies to ``RUN_DIR/notebooks/``. ``--params smoke`` adds each notebook's
``notebooks/params/NN_name.smoke.yaml`` (the same files the tests use). A manifest
(``RUN_DIR/manifest.json``) records per notebook: the parameters, wall time, status and, on
failure, the error; plus package versions and the git commit.

The run stops at the first failing notebook (later notebooks depend on earlier outputs) and
exits non-zero, naming the notebook and the executed copy that holds the traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from vqalib.runs import environment_info, project_root, resolve_path, write_json

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` in order of their number."""
    folder = folder or notebooks_dir()
    found = [p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def params_file(notebook: Path, params_set: str) -> Path:
    """``notebooks/params/<stem>.<set>.yaml`` for a notebook."""
    return notebook.parent / "params" / f"{notebook.stem}.{params_set}.yaml"


def load_params(notebook: Path, params_set: str | None) -> dict[str, Any]:
    """Parameters of a named set (e.g. ``smoke``) for one notebook; ``{}`` for ``None``.

    A named set must exist for every notebook: a missing file is an error, not a silent default.
    """
    if not params_set:
        return {}
    path = params_file(notebook, params_set)
    if not path.is_file():
        raise FileNotFoundError(
            f"{notebook.name}: parameter set {params_set!r} has no file {path.relative_to(project_root())}; "
            f"create it (a YAML mapping of parameter names to values)"
        )
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping of parameter names to values, got {type(data).__name__}")
    return data


def _select(notebooks: list[Path], only: Sequence[str] | None) -> list[Path]:
    if not only:
        return notebooks
    wanted = {o.strip() for o in only if o.strip()}
    chosen = [nb for nb in notebooks if nb.name[:2] in wanted or nb.stem in wanted]
    unknown = wanted - {nb.name[:2] for nb in chosen} - {nb.stem for nb in chosen}
    if unknown:
        raise ValueError(f"--only: no notebook matches {sorted(unknown)}; available: {[nb.stem for nb in notebooks]}")
    return chosen


def run_notebooks(
    run_dir: str | Path = "runs/demo",
    params_set: str | None = None,
    overrides: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
    kernel_name: str | None = None,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Execute the numbered notebooks in order; returns the manifest (also written to the run folder)."""
    import papermill as pm

    root = resolve_path(run_dir)
    out_dir = root / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = _select(list_notebooks(), only)
    if not notebooks:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir()}")
    manifest: dict[str, Any] = {
        "run_dir": str(root),
        "params_set": params_set,
        "overrides": overrides or {},
        "environment": environment_info(),
        "notebooks": [],
    }
    manifest_path = root / "manifest.json"
    started = time.perf_counter()
    for nb in notebooks:
        params = {**load_params(nb, params_set), **(overrides or {}), "RUN_DIR": str(root)}
        entry: dict[str, Any] = {"notebook": nb.name, "parameters": params, "output": str(out_dir / nb.name)}
        print(f"[vqalib] running {nb.name} -> {out_dir / nb.name}", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(out_dir / nb.name),
                parameters=params,
                cwd=str(project_root()),
                kernel_name=kernel_name,
                progress_bar=progress_bar,
            )
            entry["status"] = "ok"
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
            entry["status"] = "failed"
            entry["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        entry["wall_s"] = round(time.perf_counter() - t0, 2)
        manifest["notebooks"].append(entry)
        manifest["total_wall_s"] = round(time.perf_counter() - started, 2)
        write_json(manifest_path, manifest)
        print(f"[vqalib] {nb.name}: {entry['status']} in {entry['wall_s']:.1f} s", flush=True)
        if entry["status"] != "ok":
            raise RuntimeError(
                f"notebook {nb.name} failed; the executed copy with the traceback is {entry['output']}\n{entry['error']}"
            )
    print(f"[vqalib] all {len(notebooks)} notebooks ran in {manifest['total_wall_s']:.1f} s; run folder: {root}")
    return manifest


def _parse_value(text: str) -> Any:
    """``-p KEY VALUE`` values are read as YAML scalars (``3`` -> int, ``true`` -> bool, ``a`` -> str)."""
    return yaml.safe_load(text)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vqalib run-notebooks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", default="runs/demo", help="run folder (relative paths: from the project root)")
    ap.add_argument("--params", dest="params_set", default=None,
                    help="named parameter set applied per notebook, e.g. 'smoke' -> notebooks/params/NN_name.smoke.yaml")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a parameter in every notebook (repeatable), e.g. -p DEVICE cuda")
    ap.add_argument("--only", default=None, help="comma-separated notebook numbers or stems, e.g. 01,02")
    ap.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    args = ap.parse_args(argv)
    overrides = {k: _parse_value(v) for k, v in args.parameter}
    try:
        run_notebooks(args.run_dir, args.params_set, overrides, args.only.split(",") if args.only else None, args.kernel)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"[vqalib] error: {exc}", file=sys.stderr)
        return 1
    return 0
