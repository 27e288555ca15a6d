#!/usr/bin/env bash
# Set up (first run only) and run the test suite, BM25 (Pyserini) and the RAG adapters included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all,test
exec .venv/bin/python -m pytest "$@"
