#!/usr/bin/env bash
# One command for the GPU check (bench/gpu_check.py --help): run from anywhere; uses the project's
# .venv/bin/python when there is one, else python3 (the lent GPU machine has no virtual environment).
# Nothing outside the checkout is read. Extra arguments go to gpu_check.py (e.g. --out FILE, --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec timeout "${GPU_CHECK_TIMEOUT:-570}" "$PY" bench/gpu_check.py "$@"
