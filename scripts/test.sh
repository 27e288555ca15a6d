#!/usr/bin/env bash
# Set up (first run only), lint (ruff) and type-check (mypy), then run the test suite, BM25 (Pyserini)
# and the RAG adapters included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all,test
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
