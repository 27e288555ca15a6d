#!/usr/bin/env bash
# Generated queries of the five BEIR collections (experts-beir5/generated/<name>.jsonl): 1 query per document for
# at most $MAX_DOCUMENTS (default 250) sampled documents each, 1 thread. The cache ($CACHE) makes a rerun resume
# where it stopped, and a larger sample starts with the smaller one's documents; each collection's summary and
# timing go to $CACHE/<name>.log.
#   scripts/generate/beir5.sh [NAME ...]       (default: med cisi cranfield arguana scifact)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/beir}
CACHE=${CACHE:-data/generated-cache}
OUT=${OUT:-experts-beir5/generated}
PYTHON=${PYTHON:-python}
MAX_DOCUMENTS=${MAX_DOCUMENTS:-250}
mkdir -p "$CACHE" "$OUT"
for name in "${@:-med cisi cranfield arguana scifact}"; do
  for one in $name; do
    { echo "started $(date -Is)"; time "$PYTHON" -m router_retriever.cli generate-queries "$DATA/$one" --per-doc 1 \
        --max-documents "$MAX_DOCUMENTS" --threads 1 --seed 0 --cache "$CACHE" --out "$OUT/$one.jsonl"; \
      echo "finished $(date -Is)"; } > "$CACHE/$one.log" 2>&1
  done
done
