"""Small notebooks written here and executed in a real Jupyter kernel: the runner's per-cell timeout
(a hung cell fails naming the notebook, the cell and the setting), a partial run keeping the other
notebooks' record, and sample-data worker processes forked from inside a kernel. The runner's pure
parts (the timeout setting, sliced socket polling) are unit tests: ``tests/unit/test_notebook_runner.py``."""

from __future__ import annotations

import nbformat
import pytest

from test_synth import TINY, _digest
from vqalib import notebook_runner as nr
from vqalib.data import synth as S


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_code_cell("RUN_DIR: str = 'x'  # run folder")]
    cells[0].metadata["tags"] = ["parameters"]
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_cell_past_the_timeout_fails_naming_notebook_cell_and_setting(tmp_path):
    nb = _notebook(tmp_path / "99_sleepy.ipynb", "x = 1", "import time\ntime.sleep(120)  # stands in for a hung cell")
    with pytest.raises(TimeoutError) as err:
        nr.execute_notebook(nb, tmp_path / "out.ipynb", {"RUN_DIR": str(tmp_path)}, cell_timeout=3, cwd=tmp_path)
    msg = str(err.value)
    assert "99_sleepy.ipynb" in msg and "import time" in msg and "3 s" in msg
    assert "--cell-timeout" in msg and nr.CELL_TIMEOUT_ENV in msg
    assert (tmp_path / "out.ipynb").is_file()  # the executed copy up to the hung cell is kept


def test_runner_kernels_run_headless_and_the_setting_is_restored(tmp_path, monkeypatch):
    """The runner's kernels see VQALIB_HEADLESS=1 (no live widgets: nbclient can hang on them), the caller's
    environment is left as it was."""
    monkeypatch.delenv(nr.HEADLESS_ENV, raising=False)
    nb = _notebook(tmp_path / "97_env.ipynb", "import os\nprint(os.environ.get('VQALIB_HEADLESS'))",
                   "from vqalib.teaching import widgets\nwidgets.live_explorer()")
    out = nr.execute_notebook(nb, tmp_path / "out.ipynb", {"RUN_DIR": str(tmp_path)}, cell_timeout=120, cwd=tmp_path)
    env_cell, widget_cell = (next(c for c in out.cells if key in c.source) for key in ("print(os", "live_explorer"))
    assert env_cell.outputs[0]["text"].strip() == "1"
    shown = widget_cell.outputs[0]["data"]
    assert "Headless run" in shown["text/markdown"] and "application/vnd.jupyter.widget-view+json" not in shown
    assert nr.HEADLESS_ENV not in __import__("os").environ


def test_cells_within_the_timeout_run(tmp_path):
    nb = _notebook(tmp_path / "98_quick.ipynb", "y = 2 + 2\nprint(y)")
    out = nr.execute_notebook(nb, tmp_path / "out.ipynb", {"RUN_DIR": str(tmp_path)}, cell_timeout=60, cwd=tmp_path)
    assert out.cells[-1].outputs[0]["text"].strip() == "4"


def test_a_partial_run_keeps_the_other_notebooks_record(tmp_path, monkeypatch):
    """``run-notebooks --only 02`` into a folder a full run wrote keeps 01's entry (its parameters and
    wall time) under ``earlier_notebooks`` instead of dropping it (fresh-user report: ``--only 03``
    wiped the demo's per-notebook times)."""
    import json

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "01_first.ipynb", "a = 1")
    _notebook(nbdir / "02_second.ipynb", "b = 2")
    monkeypatch.setattr(nr, "notebooks_dir", lambda: nbdir)
    run = tmp_path / "run"
    full = nr.run_notebooks(run, progress_bar=False, cell_timeout=120)
    assert [e["notebook"] for e in full["notebooks"]] == ["01_first.ipynb", "02_second.ipynb"]
    assert "earlier_notebooks" not in full
    first = full["notebooks"][0]
    part = nr.run_notebooks(run, only=["02"], progress_bar=False, cell_timeout=120)
    saved = json.loads((run / "manifest.json").read_text())
    assert [e["notebook"] for e in saved["notebooks"]] == ["02_second.ipynb"]
    assert saved["earlier_notebooks"] == [first] and part["earlier_notebooks"] == [first]
    again = nr.run_notebooks(run, only=["01"], progress_bar=False, cell_timeout=120)
    assert [e["notebook"] for e in again["earlier_notebooks"]] == ["02_second.ipynb"]
    assert again["earlier_notebooks"][0] == saved["notebooks"][0]


def test_worker_processes_start_from_a_notebook_kernel(tmp_path):
    """The demo generates its dataset inside notebook 01's Jupyter kernel (ZMQ and heartbeat threads
    running): forked workers start there too and write the files a single process writes."""
    import nbformat

    from vqalib import notebook_runner as nr

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("RUN_DIR: str = 'x'"), nbformat.v4.new_code_cell(
        "from vqalib import synth as S\n"
        "cfg = S.SynthConfig(n_clips={'smoke': 6, 'default': 6, 'large': 6}, "
        "n_pilot_clips={'smoke': 3, 'default': 3, 'large': 3})\n"
        f"S.generate_dataset({str(tmp_path / 'kernel')!r}, 'smoke', seed=2, config=cfg, progress=False, workers=2)")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "gen.ipynb")
    nr.execute_notebook(tmp_path / "gen.ipynb", tmp_path / "out.ipynb", {"RUN_DIR": str(tmp_path)}, cell_timeout=300)
    one = S.generate_dataset(tmp_path / "one", "smoke", seed=2, config=TINY, progress=False, workers=1)
    assert _digest(tmp_path / "kernel") == _digest(one)
