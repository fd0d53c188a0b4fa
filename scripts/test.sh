#!/usr/bin/env bash
# Set up (first run only) and run lint + the whole test suite (no GPU, no network beyond package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
