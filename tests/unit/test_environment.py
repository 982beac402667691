"""environment.yml (conda) must list the same packages with the same lower bounds as pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*([^;]*)")


def _parse(req: str) -> tuple[str, str]:
    """('Name>=1,<2; marker') -> ('name', '>=1,<2') with the name normalised as pip does."""
    m = _REQ.match(req)
    assert m, f"cannot read requirement {req!r}"
    return re.sub(r"[-_.]+", "-", m.group(1)).lower(), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"]) + list(data["project"]["optional-dependencies"]["dev"])
    return dict(_parse(r) for r in reqs)


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or item.split("=")[0] in {"python", "pip"}:
                continue
            name, spec = _parse(item)
            assert name not in out, f"environment.yml lists {name} twice"
            out[name] = spec
    return out


def test_same_packages():
    py, env = _pyproject(), _environment()
    assert set(env) == set(py), f"only in pyproject: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}"


def test_same_version_bounds():
    py, env = _pyproject(), _environment()
    differ = {n: (py[n], env[n]) for n in py if n in env and py[n] != env[n]}
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_environment_installs_the_project_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
