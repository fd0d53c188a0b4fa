#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the project's requirements.
#   scripts/setup.sh            runtime only
#   scripts/setup.sh --dev      + test tools, Debian fonts (demo world) and chromium (browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
say() { echo "[setup] $*" >&2; }
if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment in .venv"
  "$PY" -m venv .venv
fi
REQ=requirements.txt
[ "${1:-}" = "--dev" ] && REQ=requirements-dev.txt
STAMP=".venv/.installed-$(cat requirements.txt "$REQ" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  say "first run: installing the requirements ($REQ); about 3 minutes, once"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # torch first, pinned, so nothing pulls another build
  say "1/2 torch 2.14.1 and torchvision 0.29.1"
  .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
  say "2/2 streamlit, plotly, pandas, open_clip and the rest"
  .venv/bin/python -m pip install -q -r "$REQ"
  touch "$STAMP"
  say "requirements installed"
fi
if [ "${1:-}" = "--dev" ]; then
  need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  if [ "$(fc-list 2>/dev/null | grep -ci -E 'handwriting|kristi|sixtyfour|lato')" -lt 4 ]; then
    need+=($(cat robust_core/datasets/metadata/demo_font_packages.txt))
  fi
  if [ ${#need[@]} -gt 0 ]; then
    say "installing system packages: ${need[*]}"
    if command -v apt-get >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
      $SUDO apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
      echo "warning: not a Debian/Ubuntu system; install chromium and the fonts in" \
           "robust_core/datasets/metadata/demo_font_packages.txt (or set ROBUST_DEMO_FONT_DIRS) yourself." >&2
    fi
  fi
fi
