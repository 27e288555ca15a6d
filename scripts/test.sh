#!/usr/bin/env bash
# Set up (first run only), lint (ruff), type-check (mypy), check the import layers and cycles, then run the
# test suite (BM25 and the RAG adapters included) and after it the full-size runs marked `slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all,test
.venv/bin/ruff check .
# mypy and import-linter find router_retriever on disk: build/package-view, the installed layout as links
.venv/bin/python scripts/package_view.py >/dev/null
.venv/bin/mypy
PYTHONPATH=build/package-view .venv/bin/lint-imports --no-cache
.venv/bin/python scripts/check_imports.py
.venv/bin/python -m pytest "$@"
exec .venv/bin/python -m pytest -m slow "$@"
