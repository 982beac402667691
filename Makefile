# Two commands do all the set-up on a fresh machine:
#   make demo   - run every notebook in notebooks/ in order, headless, on the embedded default
#   make test   - run the test suite (unit tests, notebooks in smoke mode, browser test)
# Both create/refresh .venv from uv.lock first.

PY      := .venv/bin/python
RUN_DIR ?= runs/demo
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast sync-notebooks bench clean-runs

venv: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	uv sync --frozen --extra dev
	@touch $@

demo: venv
	$(PY) -m vqalib run-notebooks --run-dir $(RUN_DIR)

test: venv
	bash env/install_browser.sh
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not notebooks and not browser and not slow" $(PYTEST_ARGS)

sync-notebooks: venv
	$(PY) -m jupytext --sync notebooks/[0-9][0-9]_*.py

bench: venv
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean-runs:
	rm -rf runs
