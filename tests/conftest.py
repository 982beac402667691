"""Shared fixtures.

``SHARED_DATA``: the real reference data (``../shared/data`` beside the checkout); tests that need
it skip with a reason when it is absent (a user's fresh clone has no ``../shared``).

``smoke_run``: executes every numbered notebook once, in order, with its smoke parameters
(``notebooks/params/NN_name.smoke.yaml``) into a temporary run folder, through the same runner
as ``make demo``, with a per-cell timeout (``SMOKE_CELL_TIMEOUT_S``): a hung cell fails the chain
naming the notebook and the cell instead of blocking the test run. Notebook tests read what each
notebook logged in ``<run>/<stem>/metrics.json``.

Tiers (``tests/README.md``): every test file sits in one of ``tests/unit``, ``tests/integration``,
``tests/notebooks``, ``tests/system``; ``pytest_collection_modifyitems`` marks each test with its
folder's name, so ``-m unit`` and ``-m "not system"`` select by tier. ``tests/`` and every tier
folder are on ``sys.path``: ``from model_helpers import ...``, ``from conftest import ...`` and
imports of another test module by its base name (unique across the tiers) work from every tier.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
#: The tier folders, cheapest first; each test is marked with its folder's name.
TIERS = ("unit", "integration", "notebooks", "system")

for _folder in (TESTS, *(TESTS / t for t in TIERS)):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
#: Per-cell timeout of the smoke chain (seconds): the slowest smoke cell takes well under a minute on
#: 2 busy cores; a cell past this limit is a hang, reported as such.
SMOKE_CELL_TIMEOUT_S = 900

os.environ.setdefault("MPLBACKEND", "Agg")


def shared_data_or_skip(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (../shared/data sits beside the checkout in CI only)")
    return path


def tier_of(path: Path) -> str | None:
    """The tier folder a test file sits in (``None`` for a file outside them, e.g. one just added in
    ``tests/``: it still runs under ``make test``, and ``tests/unit/test_tiers.py`` asks to file it)."""
    try:
        parts = Path(path).resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item.path)
        if tier is not None:
            item.add_marker(tier)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_or_skip()


class SmokeRun:
    """Result of the smoke chain: the run folder, the manifest and per-notebook metrics."""

    def __init__(self, root: Path, manifest: dict | None, error: BaseException | None):
        self.root = root
        self.manifest = manifest
        self.error = error

    def metrics(self, stem: str) -> dict:
        if self.error is not None:
            pytest.fail(f"the smoke chain failed before this notebook's checks: {self.error}")
        path = self.root / stem / "metrics.json"
        assert path.is_file(), f"{stem} wrote no metrics.json in the smoke run ({path})"
        return json.loads(path.read_text())


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    from vqalib.notebook_runner import run_notebooks

    root = tmp_path_factory.mktemp("smoke_run")
    try:
        manifest = run_notebooks(root, params_set="smoke", progress_bar=False, cell_timeout=SMOKE_CELL_TIMEOUT_S)
        return SmokeRun(root, manifest, None)
    except Exception as exc:  # reported by every test that needs it
        return SmokeRun(root, None, exc)
