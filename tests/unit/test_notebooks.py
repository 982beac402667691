"""Notebook hygiene (no kernel): every numbered notebook is a stripped ``.ipynb`` in sync with its jupytext
``py:percent`` pair, has exactly one cell tagged ``parameters`` holding only typed literal
assignments with a comment each (so ``papermill --help-notebook`` documents it), and a smoke
parameter file whose keys are real parameters. The smoke chain that runs them all:
``tests/notebooks/test_smoke_chain.py``.
"""

from __future__ import annotations

import ast

import jupytext
import nbformat
import pytest
import yaml

from vqalib.notebook_runner import list_notebooks, params_file

NOTEBOOKS = list_notebooks()
IDS = [nb.stem for nb in NOTEBOOKS]


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _param_cell(nb):
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"expected exactly one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def test_there_are_numbered_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_name.ipynb found"
    numbers = [nb.name[:2] for nb in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {numbers}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_has_no_outputs(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{nb_path.name}: cells {dirty} hold outputs; run `make sync-notebooks` after clearing outputs"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_ipynb_and_py_pair_in_sync(nb_path):
    py = nb_path.with_suffix(".py")
    assert py.is_file(), f"{nb_path.name} has no jupytext pair {py.name}"
    from_py = jupytext.read(py)
    from_ipynb = nbformat.read(nb_path, as_version=4)
    a = [(c.cell_type, c.source.strip()) for c in from_py.cells]
    b = [(c.cell_type, c.source.strip()) for c in from_ipynb.cells]
    assert a == b, f"{nb_path.name} and {py.name} differ; run `make sync-notebooks`"
    assert _param_cell(from_py).source.strip() == _param_cell(from_ipynb).source.strip()


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_parameters_cell_is_plain_typed_values_with_comments(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    cell = _param_cell(nb)
    assert nb.cells.index(cell) == nb.cells.index(_code_cells(nb)[0]), "the parameters cell must be the first code cell"
    tree = ast.parse(cell.source)
    lines = cell.source.splitlines()
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), f"{nb_path.name} line {node.lineno}: only `NAME: type = value` allowed"
        ast.literal_eval(node.value)  # raises for anything computed
        assert "#" in lines[node.lineno - 1], f"{nb_path.name} line {node.lineno}: add a comment saying what it is"


PARAM_SETS = sorted({p.name.split(".")[1] for p in (NOTEBOOKS[0].parent / "params").glob("*.yaml")}) if NOTEBOOKS else []


def test_parameter_sets_include_smoke():
    assert "smoke" in PARAM_SETS, PARAM_SETS


@pytest.mark.parametrize("param_set", PARAM_SETS)
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_parameter_set_exists_and_names_only_parameters(nb_path, param_set):
    """Every named set (smoke, qwen7b_lora, ...) has a file for every notebook (the runner needs one per
    notebook) and sets only parameters the notebook declares, with values of the declared type."""
    import papermill as pm

    declared = pm.inspect_notebook(str(nb_path))
    path = params_file(nb_path, param_set)
    assert path.is_file(), f"missing {path}"
    values = yaml.safe_load(path.read_text()) or {}
    unknown = set(values) - set(declared)
    assert not unknown, f"{path.name} sets {sorted(unknown)} which {nb_path.name} does not declare"
    for name, value in values.items():
        typ = declared[name]["inferred_type_name"]
        ok = {"str": str, "int": int, "float": (int, float), "bool": bool}.get(typ, object)
        assert isinstance(value, ok) and not (typ == "int" and isinstance(value, bool)), \
            f"{path.name}: {name}={value!r} is not a {typ}"
    assert "RUN_DIR" in declared, f"{nb_path.name} must take RUN_DIR"
