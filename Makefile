# Two commands do all the set-up on a fresh machine:
#   make demo   - run every notebook in notebooks/ in order, headless, on the embedded default
#   make test   - run the whole test suite, every tier (tests/README.md)
#   make test-fast (= test-unit), test-integration, test-notebooks, test-system - one tier each;
#   PYTEST_ARGS="..." is passed on to pytest in every test target
# Both create/refresh .venv from uv.lock first.

PY      := .venv/bin/python
RUN_DIR ?= runs/demo
PYTEST_ARGS ?=
# Tests let Python cache compiled bytecode even where the environment forbids it
# (PYTHONDONTWRITEBYTECODE=1): every test subprocess and notebook kernel imports torch, transformers
# and peft, which compile from source on each import without the cache (about 2x the import time).
PYTEST  := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

.PHONY: venv demo test test-fast test-unit test-integration test-notebooks test-system sync-notebooks bench clean-runs

venv: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	uv sync --frozen --extra dev
	@touch $@

demo: venv
	$(PY) -m vqalib run-notebooks --run-dir $(RUN_DIR)

test: venv
	bash env/install_browser.sh
	$(PYTEST) $(PYTEST_ARGS)

test-fast: test-unit

test-unit: venv
	$(PYTEST) tests/unit $(PYTEST_ARGS)

test-integration: venv
	$(PYTEST) tests/integration $(PYTEST_ARGS)

test-notebooks: venv
	$(PYTEST) tests/notebooks $(PYTEST_ARGS)

test-system: venv
	bash env/install_browser.sh
	$(PYTEST) tests/system $(PYTEST_ARGS)

sync-notebooks: venv
	$(PY) -m jupytext --sync notebooks/[0-9][0-9]_*.py

bench: venv
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean-runs:
	rm -rf runs
