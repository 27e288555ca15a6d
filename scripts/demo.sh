#!/usr/bin/env bash
# Set up (first run only) and run the demo: packaged models as experts over the shipped SciFact slice.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/retriever demo "$@"
