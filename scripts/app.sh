#!/usr/bin/env bash
# Set up (first run only) and start the dashboard on the embedded demo store: http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "[app] starting the dashboard on the demo store: http://localhost:8501 (Ctrl-C stops it)" >&2
exec .venv/bin/python -m dashboard.serve --server.headless true "$@"
