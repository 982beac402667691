"""Shared fixtures.

``SHARED_DATA``: the real reference data (``../shared/data`` beside the checkout); tests that need
it skip with a reason when it is absent (a user's fresh clone has no ``../shared``).

``smoke_run``: executes every numbered notebook once, in order, with its smoke parameters
(``notebooks/params/NN_name.smoke.yaml``) into a temporary run folder, through the same runner
as ``make demo``, with a per-cell timeout (``SMOKE_CELL_TIMEOUT_S``): a hung cell fails the chain
naming the notebook and the cell instead of blocking the test run. Notebook tests read what each
notebook logged in ``<run>/<stem>/metrics.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
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
