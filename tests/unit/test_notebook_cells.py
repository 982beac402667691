"""Thin notebooks (issue 22, part 4): outside the parameters cell no code cell of a numbered notebook is
longer than :data:`MAX_CELL_LINES` lines; what a longer cell would hold (a mapping of parameters to config
fields, a figure drawn by hand, sentences assembled from numbers) belongs in ``vqalib`` where a test sees it.

Lines are counted in the cell's source without its leading and trailing blank lines (blank lines and
comments inside count: they are what a reader scrolls through).
"""

from __future__ import annotations

import nbformat
import pytest

from vqalib.notebook_runner import list_notebooks

MAX_CELL_LINES = 15
NOTEBOOKS = list_notebooks()


def cell_lines(source: str) -> int:
    """Lines of a cell's source, leading and trailing blank lines left out."""
    return len(source.strip("\n").rstrip().splitlines()) if source.strip() else 0


def long_cells(nb: nbformat.NotebookNode, limit: int = MAX_CELL_LINES) -> list[tuple[int, int, str]]:
    """``(cell index, lines, first line)`` of every code cell longer than ``limit`` lines, the cell tagged
    ``parameters`` excepted."""
    return [(i, cell_lines(c.source), c.source.strip().splitlines()[0])
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and "parameters" not in c.get("metadata", {}).get("tags", [])
            and cell_lines(c.source) > limit]


def test_there_are_notebooks_to_check():
    assert len(NOTEBOOKS) >= 7, [nb.name for nb in NOTEBOOKS]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_no_code_cell_is_longer_than_the_limit(nb_path):
    found = long_cells(nbformat.read(nb_path, as_version=4))
    assert not found, (f"{nb_path.name}: code cells over {MAX_CELL_LINES} lines (index, lines, first line): {found}; "
                       f"move the logic into vqalib (a function a unit test can call) or split the cell at a step "
                       f"the reader should see, in {nb_path.with_suffix('.py').name}, then run `make sync-notebooks`")


def test_the_count_sees_a_long_cell_and_spares_the_parameters_cell():
    body = "\n".join(f"x{i} = {i}" for i in range(MAX_CELL_LINES + 1))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(body, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell(body),
        nbformat.v4.new_code_cell("\n\n" + "\n".join(body.splitlines()[:MAX_CELL_LINES]) + "\n\n"),
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell(""),
    ])
    assert long_cells(nb) == [(3, MAX_CELL_LINES + 1, "x0 = 0")]
    assert cell_lines("a\n\n# a comment\nb\n") == 4


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_papermill_reads_every_parameter(nb_path):
    """papermill skips a parameter line holding a second ``=`` (in its comment, say), and the runner then
    refuses ``-p NAME`` and the parameter files that set it: every assignment of the cell must be declared."""
    import ast

    import papermill as pm

    cell = next(c for c in nbformat.read(nb_path, as_version=4).cells
                if "parameters" in c.get("metadata", {}).get("tags", []))
    assigned = [n.target.id for n in ast.parse(cell.source).body if isinstance(n, ast.AnnAssign)]
    assert list(pm.inspect_notebook(str(nb_path))) == assigned, f"{nb_path.name}: a line papermill cannot read"
