#!/usr/bin/env bash
# One command for the GPU check (see bench/gpu_check.py --help): run from the project root on a
# machine with one CUDA GPU; writes the gpu_check section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 600 .venv/bin/python bench/gpu_check.py "$@"
