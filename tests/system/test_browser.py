"""Notebook 03 in a real browser: JupyterLab from the project's .venv, headless Debian Chromium.

Proves that the ipywidgets front end renders in JupyterLab 4 from this environment and that the
explorer reacts: run all cells, drag the λ slider, and the rendered π* figure changes.

The notebook opened is ``notebooks/03_aso_derivation.ipynb`` with its smoke parameters injected
the way papermill does (a copy under ``runs/browser-test/``, so the user's checkout is untouched).
Screenshots land in ``runs/browser-test/``. Skips only when ``/usr/bin/chromium`` is absent
(``env/install_browser.sh`` installs it; ``make test`` runs that first).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from vqalib.core.runs import project_root, resolve_path

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = project_root()
NOTEBOOK = ROOT / "notebooks" / "03_aso_derivation.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, attempts: int = 120) -> None:
    for _ in range(attempts):
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer at {url}; see {log}")


def _smoke_copy(out_dir: Path) -> Path:
    """Notebook 03 with its smoke parameters injected (papermill's own parameterize), saved in ``out_dir``."""
    import papermill as pm

    params = yaml.safe_load((ROOT / "notebooks" / "params" / "03_aso_derivation.smoke.yaml").read_text())
    params["RUN_DIR"] = str(out_dir / "run")
    dest = out_dir / NOTEBOOK.name
    pm.execute_notebook(str(NOTEBOOK), str(dest), parameters=params, prepare_only=True, progress_bar=False)
    return dest


def test_notebook_03_widgets_render_and_react_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):  # CI must exercise the browser, not skip it quietly
            pytest.fail(f"{CHROMIUM} not found in CI: env/install_browser.sh (called by `make test`) could not install it")
        pytest.skip(f"{CHROMIUM} not found: run `bash env/install_browser.sh` (Debian chromium) to enable this test")
    from playwright.sync_api import sync_playwright

    out_dir = resolve_path("runs/browser-test")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    nb_path = _smoke_copy(out_dir)
    rel = nb_path.relative_to(ROOT).as_posix()

    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               IPYTHONDIR=str(tmp_path / "ipython"), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    log = out_dir / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
           "--LabApp.expose_app_in_browser=True"] + (["--allow-root"] if os.geteuid() == 0 else [])
    with log.open("w") as log_fh:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_fh, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", server, log)
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000})
            try:
                page = ctx.new_page()
                page.goto(f"{base}/lab/tree/{rel}?token={token}", timeout=60_000)
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
                page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                       " && window.jupyterapp.shell.currentWidget.sessionContext"
                                       " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                       " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                       timeout=60_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                # every code cell gets a numeric prompt when the run finished without error
                page.wait_for_function(
                    """() => {
                        const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim());
                        return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t));
                    }""", timeout=90_000)
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                      " :text('Traceback')").count()
                assert errors == 0, "a cell raised; see the screenshot in runs/browser-test/"
                img = page.locator(".widget-output img, .jupyter-widgets-output-area img").first
                img.wait_for(timeout=30_000)
                img.scroll_into_view_if_needed()
                before = img.get_attribute("src")
                assert before and before.startswith("data:image/png"), f"π* figure not rendered as an image: {before!r:.80}"
                page.screenshot(path=str(out_dir / "before.png"), full_page=False)

                handle = page.locator(".widget-slider .noUi-handle").first
                handle.scroll_into_view_if_needed()
                box = handle.bounding_box()
                assert box is not None, "λ slider handle not visible: widgets front end did not render"
                x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(x, y)
                page.mouse.down()
                page.mouse.move(x - 80, y, steps=8)
                page.mouse.up()
                page.wait_for_function(
                    "(before) => { const i = document.querySelector('.widget-output img, .jupyter-widgets-output-area img');"
                    " return i && i.getAttribute('src') && i.getAttribute('src') !== before; }",
                    arg=before, timeout=30_000)
                after = page.locator(".widget-output img, .jupyter-widgets-output-area img").first.get_attribute("src")
                readout = page.locator(".widget-slider .widget-readout").first.inner_text()
                page.screenshot(path=str(out_dir / "after.png"), full_page=False)
                assert after != before
                assert float(readout) < 1.0, f"λ readout after dragging left is {readout}, expected < 1"
            finally:
                ctx.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    assert (out_dir / "before.png").stat().st_size > 0 and (out_dir / "after.png").stat().st_size > 0
