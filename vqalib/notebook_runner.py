"""Execute the numbered notebooks headless, in order, into a run folder (the project's main job).

``python -m vqalib run-notebooks --run-dir runs/demo`` runs every ``notebooks/NN_*.ipynb`` with
papermill, with the project root as working directory, passes ``RUN_DIR`` to each notebook and
writes the executed copies to ``RUN_DIR/notebooks/``. ``--params smoke`` adds each notebook's
``notebooks/params/NN_name.smoke.yaml`` (the same files the tests use). A manifest
(``RUN_DIR/manifest.json``) records per notebook: the parameters, wall time, status and, on
failure, the error; plus package versions and the git commit.

``-p NAME VALUE`` overrides a parameter in every notebook that declares it. VALUE is converted to
the type the notebook's parameters cell declares (``NAME: int = 3`` -> ``int``; read with
papermill's ``inspect_notebook``): a ``str`` parameter takes the text as written (``-p X no`` stays
``"no"``), ``bool`` accepts ``true/false/yes/no/1/0`` (any case), ``int``/``float`` take Python
numerals. A value that does not convert, or a name no selected notebook declares, is refused
before anything runs, naming the parameter and the notebook.

The run stops at the first failing notebook (later notebooks depend on earlier outputs) and
exits non-zero, naming the notebook and the executed copy that holds the traceback.

No execution can hang silently: every cell runs under a per-cell timeout (``--cell-timeout``,
``run_notebooks(cell_timeout=...)`` or the ``VQALIB_CELL_TIMEOUT`` environment variable; default
:data:`DEFAULT_CELL_TIMEOUT_S`), and a cell that runs past it fails with an error naming the notebook,
the cell and that setting. The kernel's shell and IOPub sockets are polled in short slices
(:class:`SlicedPollClient`): nbclient waits on them with ``timeout=None``, and a wake-up of that
asyncio poll that never arrives (jupyter/nbclient#312; the reported hang in notebook 03's widget cell)
can leave the run waiting forever with the reply already queued; a finite poll re-checks the socket.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from vqalib.core.runs import HEADLESS_ENV, cli_path, environment_info, project_root, resolve_path, write_json

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")
#: Per-cell limit (seconds) when neither ``cell_timeout`` nor ``VQALIB_CELL_TIMEOUT`` is given: longer
#: than any cell of the default CPU run, short enough that a hung cell ends the job within the hour.
DEFAULT_CELL_TIMEOUT_S: int = 3600
CELL_TIMEOUT_ENV = "VQALIB_CELL_TIMEOUT"
#: Seconds per poll of the kernel's sockets (a missed wake-up costs at most this long).
POLL_SLICE_S: float = 1.0
ENGINE_NAME = "vqalib"


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


def resolve_cell_timeout(cell_timeout: float | None = None) -> int:
    """The per-cell timeout in seconds: ``cell_timeout`` if given, else ``$VQALIB_CELL_TIMEOUT``, else
    :data:`DEFAULT_CELL_TIMEOUT_S`. Raises ``ValueError`` naming the setting for a value that is not a
    positive number (there is deliberately no "no limit")."""
    source = "cell_timeout"
    if cell_timeout is None:
        raw = os.environ.get(CELL_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_CELL_TIMEOUT_S
        source = f"${CELL_TIMEOUT_ENV}"
        try:
            cell_timeout = float(raw)
        except ValueError:
            raise ValueError(f"{source}={raw!r} is not a number of seconds; set e.g. {CELL_TIMEOUT_ENV}=1800") from None
    if not cell_timeout > 0:
        raise ValueError(f"{source}={cell_timeout!r}: the per-cell timeout must be > 0 seconds")
    return max(1, int(round(cell_timeout)))


def _slice_polls(channel: Any, slice_s: float) -> None:
    """Make ``channel.get_msg(timeout)`` poll in slices of ``slice_s`` seconds up to ``timeout``.

    ``zmq.asyncio``'s ``poll`` does a real non-blocking poll when its timeout expires, so a reply that
    arrived without waking the waiting coroutine is picked up at the next slice instead of never."""
    from queue import Empty

    inner = channel.get_msg

    async def get_msg(timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await inner(timeout=slice_s if left is None else min(slice_s, left), **kwargs)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


def _client_class():
    from papermill.clientwrap import PapermillNotebookClient

    class SlicedPollClient(PapermillNotebookClient):
        """papermill's client with the shell and IOPub sockets polled in :data:`POLL_SLICE_S` slices."""

        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            for channel in (kc.shell_channel, kc.iopub_channel):
                _slice_polls(channel, POLL_SLICE_S)
            return kc

    return SlicedPollClient


def _register_engine() -> None:
    """Register the ``vqalib`` papermill engine: papermill's nbclient engine with :func:`_client_class`."""
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    class VqalibEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log_output=log_output, stdout_file=stdout_file,
                                 stderr_file=stderr_file)
            return _client_class()(nb_man, **final).execute()

    papermill_engines.register(ENGINE_NAME, VqalibEngine)


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict[str, Any] | None = None, *,
                     cell_timeout: float | None = None, cwd: str | Path | None = None,
                     kernel_name: str | None = None, progress_bar: bool = False, **kwargs: Any):
    """Execute one notebook with papermill under a per-cell timeout; the executed copy goes to ``output``.

    Every notebook execution of the project (the runner, the tests) goes through here.
    Raises ``TimeoutError`` naming the notebook, the cell (index in the executed copy and its first
    line) and the setting that raises the limit; other cell errors raise papermill's
    ``PapermillExecutionError`` with the traceback."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError

    timeout = resolve_cell_timeout(cell_timeout)
    _register_engine()
    current: dict[str, Any] = {}

    def on_cell_start(cell, cell_index):
        current.update(cell=cell, index=cell_index)

    before = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"  # the kernel inherits it: no live widgets without a front end
    try:
        return pm.execute_notebook(str(notebook), str(output), parameters=parameters or {},
                                   cwd=str(cwd or project_root()), kernel_name=kernel_name, progress_bar=progress_bar,
                                   engine_name=ENGINE_NAME, execution_timeout=timeout, on_cell_start=on_cell_start,
                                   **kwargs)
    except CellTimeoutError as exc:
        src = str(current.get("cell", {}).get("source", "")).strip().splitlines() or [""]
        raise TimeoutError(
            f"{Path(notebook).name}: cell {current.get('index', '?')} of the executed copy {output} "
            f"(starting `{src[0][:80]}`) did not finish within the per-cell timeout of {timeout} s; if the cell "
            f"is just slow, raise the limit with --cell-timeout SECONDS (python -m vqalib run-notebooks), "
            f"run_notebooks(cell_timeout=...) or ${CELL_TIMEOUT_ENV}") from exc
    finally:
        if before is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = before


def run_notebooks(
    run_dir: str | Path = "runs/demo",
    params_set: str | None = None,
    overrides: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
    kernel_name: str | None = None,
    progress_bar: bool = True,
    cell_timeout: float | None = None,
) -> dict[str, Any]:
    """Execute the numbered notebooks in order; returns the manifest (also written to the run folder).

    ``cell_timeout`` (seconds per cell; default ``$VQALIB_CELL_TIMEOUT`` or
    :data:`DEFAULT_CELL_TIMEOUT_S`): see :func:`execute_notebook`."""
    timeout = resolve_cell_timeout(cell_timeout)

    root = resolve_path(run_dir)
    out_dir = root / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = _select(list_notebooks(), only)
    if not notebooks:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir()}")
    typed = typed_overrides(notebooks, overrides)  # refuses bad values before anything runs
    manifest: dict[str, Any] = {
        "run_dir": str(root),
        "params_set": params_set,
        "overrides": overrides or {},
        "cell_timeout_s": timeout,
        "environment": environment_info(),
        "notebooks": [],
    }
    manifest_path = root / "manifest.json"
    # a partial run (--only) into a folder that already has a manifest keeps the other notebooks' entries
    # (their parameters and wall times) under "earlier_notebooks", so the record of a full run survives
    ran = {nb.name for nb in notebooks}
    earlier: list[dict[str, Any]] = []
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
            earlier = [e for e in [*old.get("earlier_notebooks", []), *old.get("notebooks", [])]
                       if isinstance(e, dict) and e.get("notebook") not in ran]
        except (OSError, json.JSONDecodeError):
            earlier = []  # an unreadable manifest is replaced, as before
    earlier = list({e["notebook"]: e for e in earlier}.values())  # newest entry per notebook
    if earlier:
        manifest["earlier_notebooks"] = earlier
    started = time.perf_counter()
    for nb in notebooks:
        params = {**load_params(nb, params_set), **typed[nb.name], "RUN_DIR": str(root)}
        entry: dict[str, Any] = {"notebook": nb.name, "parameters": params, "output": str(out_dir / nb.name)}
        print(f"[vqalib] running {nb.name} -> {out_dir / nb.name}", flush=True)
        t0 = time.perf_counter()
        try:
            execute_notebook(nb, out_dir / nb.name, params, cell_timeout=timeout, kernel_name=kernel_name,
                             progress_bar=progress_bar)
            entry["status"] = "ok"
        except TimeoutError as exc:
            entry["status"] = "timeout"
            entry["error"] = str(exc)[:4000]
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


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def declared_parameters(notebook: Path) -> dict[str, str]:
    """``{name: type name}`` of a notebook's parameters cell (``"str"``, ``"int"``, ``"float"``,
    ``"bool"``), read from the annotations ``NAME: type = value`` by ``papermill.inspect_notebook``."""
    import papermill as pm

    return {name: info["inferred_type_name"] for name, info in pm.inspect_notebook(str(notebook)).items()}


def convert_parameter(name: str, value: Any, type_name: str, where: str = "") -> Any:
    """Convert a ``-p NAME VALUE`` value (text from the command line, or an already typed value) to
    the declared ``type_name``; raise ``ValueError`` naming the parameter and ``where`` otherwise.

    ``str``: the text unchanged. ``bool``: ``true/false/yes/no/1/0`` (case-insensitive) or a Python
    bool. ``int``: an integer numeral (``"3"``; not ``"3.5"``, not a bool). ``float``: any float
    numeral (``"5e-5"``) or an int. Other annotations are refused (the project's notebooks use only
    these four)."""
    at = f" ({where})" if where else ""
    bad = ValueError(f"-p {name} {value!r}{at}: the notebook declares {name}: {type_name}, and {value!r} is not a "
                     f"valid {type_name}; " + {"bool": "use true/false, yes/no or 1/0",
                                               "int": "give a whole number, e.g. 3",
                                               "float": "give a number, e.g. 0.5 or 5e-5"}.get(type_name, "fix the value"))
    if type_name == "str":
        if isinstance(value, str):
            return value
        raise bad
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise bad
    if isinstance(value, bool):  # bool is an int subclass: -p STEPS true is a mistake, not 1
        raise bad
    if type_name == "int":
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise bad from None
    if type_name == "float":
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            raise bad from None
    raise ValueError(f"-p {name}{at}: parameter type {type_name!r} is not supported; declare str, int, float or bool")


def typed_overrides(notebooks: Sequence[Path], overrides: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per notebook (by file name), the overrides it declares, converted to its declared types.

    A name that none of ``notebooks`` declares is refused (a typo would otherwise be ignored)."""
    overrides = overrides or {}
    declared = {nb.name: declared_parameters(nb) for nb in notebooks} if overrides else {nb.name: {} for nb in notebooks}
    out: dict[str, dict[str, Any]] = {nb.name: {} for nb in notebooks}
    for name, value in overrides.items():
        users = [nb for nb in notebooks if name in declared[nb.name]]
        if not users:
            raise ValueError(f"-p {name}: no selected notebook declares a parameter {name!r}; "
                             f"see `papermill --help-notebook notebooks/NN_name.ipynb` for the names")
        for nb in users:
            out[nb.name][name] = convert_parameter(name, value, declared[nb.name][name], nb.name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vqalib run-notebooks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", default=None, type=cli_path,
                    help="run folder (relative paths: from the working directory, like any option; default: runs/demo "
                         "under the project root)")
    ap.add_argument("--params", dest="params_set", default=None,
                    help="named parameter set applied per notebook, e.g. 'smoke' -> notebooks/params/NN_name.smoke.yaml")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a parameter in every notebook that declares it (repeatable), e.g. -p DEVICE cuda; "
                         "VALUE is converted to the type the parameters cell declares; a path VALUE (DATA_DIR, MODEL ...) is from "
                         "the project root, as the notebooks read it")
    ap.add_argument("--only", default=None, help="comma-separated notebook numbers or stems, e.g. 01,02")
    ap.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    ap.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                    help=f"fail a cell that runs longer than this (default: ${CELL_TIMEOUT_ENV} or {DEFAULT_CELL_TIMEOUT_S})")
    args = ap.parse_args(argv)
    overrides = dict(args.parameter)  # converted per notebook to the declared type in run_notebooks
    try:
        run_notebooks(args.run_dir or "runs/demo", args.params_set, overrides, args.only.split(",") if args.only else None, args.kernel,
                      cell_timeout=args.cell_timeout)
    except (RuntimeError, FileNotFoundError, ValueError, TimeoutError) as exc:
        print(f"[vqalib] error: {exc}", file=sys.stderr)
        return 1
    return 0
