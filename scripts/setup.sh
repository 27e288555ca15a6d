#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with the given extras, once per pyproject change.
# Usage: scripts/setup.sh [EXTRAS]     e.g. scripts/setup.sh all,test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python_bin="$(command -v python3.11 || command -v python3)"
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-${extras:-core}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned to the local CPU build (torch==2.13.0+cpu), found through pip's find-links.
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
