"""The test tiers hold (tests/README.md): every test file sits in one tier folder, base names are unique
across the folders (pytest imports each file by its base name), the markers come from the folder, no
test in ``tests/unit`` launches a process, runs a notebook or trains (two helpers that encode a
VP8/VP9 clip in a fresh interpreter aside, ``ALLOWED_IN_UNIT``), and every subprocess and notebook
execution in any tier has a timeout."""

from __future__ import annotations

import ast
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from conftest import TESTS, TIERS, tier_of

FILES = sorted(TESTS.rglob("test_*.py"))
UNIT = [f for f in FILES if tier_of(f) == "unit"]
#: Calls a unit test may not make: a child process, a notebook kernel, a training run. ``(module or
#: object, attribute)``; ``None`` matches any object (``subprocess.run`` and ``sp.run`` alike).
FORBIDDEN_IN_UNIT = {
    ("subprocess", None): "launches a process",
    (None, "Popen"): "launches a process",
    (None, "execute_notebook"): "runs a notebook in a kernel",
    (None, "run_notebooks"): "runs notebooks in a kernel",
    (None, "train_sft"): "trains",
    (None, "train_grpo"): "trains",
    (None, "train_aso"): "trains",
    (None, "run_stage"): "trains",
    (None, "pretrain_vision"): "trains",
    (None, "ProcessPoolExecutor"): "starts worker processes",
}
#: Keywords that start worker processes from this value up (``workers=2``, ``num_workers=1``).
WORKER_KEYWORDS = {"workers": 2, "num_workers": 1}
#: ``(file, top-level function)`` allowed one of those calls, with the reason.
ALLOWED_IN_UNIT = {
    ("test_video_geometry.py", "write_clip"): "encodes a VP9 test clip in a fresh interpreter (once decord is "
                                              "imported, its bundled FFmpeg breaks PyAV's libvpx encoder)",
    ("test_wild_videos.py", "write_indexed"): "encodes a VP8/VP9 test clip in a fresh interpreter (as above)",
}


def test_every_test_file_is_in_a_tier_folder():
    loose = [f.relative_to(TESTS).as_posix() for f in FILES if tier_of(f) is None]
    assert not loose, (f"test files outside the tier folders {TIERS}: {loose}; move each into the tier its most "
                       f"expensive test belongs to (tests/README.md, 'What goes where')")


def test_base_names_are_unique_across_tiers():
    twice = [name for name, n in Counter(f.name for f in FILES).items() if n > 1]
    assert not twice, f"test files with the same name in two tiers (pytest imports them by base name): {twice}"


def test_the_tier_marker_comes_from_the_folder(pytestconfig):
    markers = pytestconfig.getini("markers")
    for tier in TIERS:
        assert any(m.split(":")[0].strip() == tier for m in markers), f"marker {tier!r} is not registered"
    assert tier_of(TESTS / "unit" / "test_x.py") == "unit" and tier_of(TESTS / "system" / "test_x.py") == "system"
    assert tier_of(TESTS / "test_x.py") is None and tier_of(TESTS.parent / "vqalib" / "cli.py") is None


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _calls(path: Path) -> list[tuple[int, str, str, str, dict]]:
    """``(line, enclosing top-level definition, object, attribute, {keyword: constant})`` of every
    ``x.attr(...)`` and ``name(...)`` call in the file (the definition is ``""`` at module level)."""
    out = []
    for top in _tree(path).body:
        owner = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else ""
        for node in ast.walk(top):
            if isinstance(node, ast.Call):
                f = node.func
                consts = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
                if isinstance(f, ast.Attribute):
                    base = f.value.id if isinstance(f.value, ast.Name) else ""
                    out.append((node.lineno, owner, base, f.attr, consts))
                elif isinstance(f, ast.Name):
                    out.append((node.lineno, owner, "", f.id, consts))
    return out


def forbidden_calls(path: Path) -> list[str]:
    """The calls in ``path`` that a unit test may not make, as ``file:line: call (why)``."""
    found = []
    for line, owner, base, attr, consts in _calls(path):
        if (path.name, owner) in ALLOWED_IN_UNIT:
            continue
        call = f"{path.name}:{line}: {base + '.' if base else ''}{attr}"
        for (obj, name), why in FORBIDDEN_IN_UNIT.items():
            if (obj is None or base == obj) and (name is None or attr == name):
                found.append(f"{call} ({why})")
        for key, least in WORKER_KEYWORDS.items():
            value = consts.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= least:
                found.append(f"{call} ({key}={value} starts worker processes)")
    return found


def test_unit_tests_launch_no_process_run_no_notebook_and_train_nothing():
    found = [c for f in UNIT for c in forbidden_calls(f)]
    assert not found, f"move these tests to tests/integration, tests/notebooks or tests/system: {found}"


def test_the_check_sees_each_kind_of_call(tmp_path):
    src = tmp_path / "test_sample.py"
    src.write_text("import subprocess\nsubprocess.run(['x'], timeout=1)\nnr.execute_notebook(a, b)\n"
                   "def test_x():\n    train_sft(cfg)\n    sp.Popen(['y'])\n    S.generate_dataset(root, workers=1)\n"
                   "    S.generate_dataset(root, workers=2)\n    Scorer('tiny', num_workers=0)\n    Scorer('tiny', num_workers=2)\n")
    found = forbidden_calls(src)
    assert [re.sub(r" \(.*", "", f) for f in found] == ["test_sample.py:2: subprocess.run",
                                                         "test_sample.py:3: nr.execute_notebook",
                                                         "test_sample.py:5: train_sft", "test_sample.py:6: sp.Popen",
                                                         "test_sample.py:8: S.generate_dataset",
                                                         "test_sample.py:10: Scorer"]
    allowed = tmp_path / "test_video_geometry.py"  # an allowed helper's call is not reported, another one is
    allowed.write_text("def write_clip():\n    subprocess.run(['x'])\ndef other():\n    subprocess.run(['y'])\n")
    assert [re.sub(r" \(.*", "", f) for f in forbidden_calls(allowed)] == ["test_video_geometry.py:4: subprocess.run"]


#: ``(object, call)``: the keyword that bounds its time. ``pm.execute_notebook(..., prepare_only=True)``
#: executes nothing and needs none.
TIMEOUT_KEYWORDS = {
    ("subprocess", "run"): ("timeout",),
    ("subprocess", "check_output"): ("timeout",),
    ("subprocess", "check_call"): ("timeout",),
    ("subprocess", "call"): ("timeout",),
    ("pm", "execute_notebook"): ("execution_timeout",),
    ("nr", "execute_notebook"): ("cell_timeout",),
    ("nr", "run_notebooks"): ("cell_timeout",),
    ("", "run_notebooks"): ("cell_timeout",),
}


def calls_without_timeout(path: Path) -> list[str]:
    """``file:line: call`` for each call of ``TIMEOUT_KEYWORDS`` in ``path`` without its timeout keyword."""
    found = []
    for node in ast.walk(_tree(path)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        want = TIMEOUT_KEYWORDS.get((base, name))
        keywords = {k.arg: k.value for k in node.keywords}
        if want is None or None in keywords or set(want) & set(keywords):
            continue
        if name == "execute_notebook" and getattr(keywords.get("prepare_only"), "value", False) is True:
            continue
        shown = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else path.name
        found.append(f"{shown}:{node.lineno}: {base + '.' if base else ''}{name}")
    return found


def test_every_subprocess_and_notebook_execution_has_a_timeout():
    found = [c for f in sorted(TESTS.rglob("*.py")) for c in calls_without_timeout(f)]
    assert not found, f"give these a timeout (a hung child must fail the test, not block the run): {found}"


def test_the_timeout_check_sees_a_missing_timeout(tmp_path):
    src = tmp_path / "test_sample.py"
    src.write_text("subprocess.run(['a'], timeout=5)\nsubprocess.run(['b'])\n"
                   "pm.execute_notebook(a, b, prepare_only=True)\npm.execute_notebook(a, b)\n"
                   "nr.execute_notebook(a, b, {}, cell_timeout=3)\nrun_notebooks(root)\n")
    assert [c.split(": ")[1] for c in calls_without_timeout(src)] == ["subprocess.run", "pm.execute_notebook",
                                                                      "run_notebooks"]


#: A path to a test file, as prose, comments and skip reasons write it (``tests/unit/test_x.py``).
TEST_PATH = re.compile(r"(?<![\w/.])tests/(?:[a-z_]+/)*test_[a-z_0-9]+\.py")
#: Where such paths are written for readers; the changelog records history and keeps the old paths.
DOC_SUFFIXES = (".py", ".md", ".ipynb", ".yaml", ".sh", ".toml")
HERE = Path(__file__).resolve()  # its own examples are not references


def stale_test_paths(root: Path) -> list[str]:
    """``file: path`` for each ``tests/…/test_*.py`` named in a file under ``root`` that does not exist."""
    out = []
    for f in sorted(root.resolve().rglob("*")):
        rel = f.relative_to(root.resolve())
        if (not f.is_file() or not f.name.endswith(DOC_SUFFIXES) or f.name == "CHANGELOG.md" or f == HERE
                or rel.parts[0] in {".venv", ".cache", "runs", ".git", "build"} or "__pycache__" in rel.parts
                or ".ipynb_checkpoints" in rel.parts):
            continue
        for path in sorted(set(TEST_PATH.findall(f.read_text(errors="replace")))):
            if not (root / path).is_file():
                out.append(f"{rel}: {path}")
    return out


def test_every_test_path_named_in_docs_code_and_notebooks_exists():
    stale = stale_test_paths(TESTS.parent)
    assert not stale, ("these name a test file that is not there (tests live in tests/<tier>/, see "
                       "tests/README.md):\n" + "\n".join(stale))


def test_the_stale_path_check_sees_an_old_flat_path(tmp_path):
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_a.py").write_text("")
    (tmp_path / "README.md").write_text("see tests/test_a.py and tests/unit/test_a.py")
    assert stale_test_paths(tmp_path) == ["README.md: tests/test_a.py"]
