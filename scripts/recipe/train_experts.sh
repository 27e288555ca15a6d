#!/usr/bin/env bash
# Train one corpus-only expert per BEIR domain with the frozen recipe (train-expert --from-corpus defaults),
# one after another, into experts-beir5/<domain>/. No query of any collection is read.
#   scripts/recipe/train_experts.sh [domain ...]     (default: scifact arguana cranfield cisi med)
set -euo pipefail
cd "$(dirname "$0")/../.."
BEIR=${BEIR:-/work/shared/data/beir}
PYTHON=${PYTHON:-python}
for name in "${@:-scifact arguana cranfield cisi med}"; do
  for domain in $name; do
    start=$(date +%s)
    nice -n 19 "$PYTHON" -m router_retriever.cli train-expert --name "$domain" --train "$BEIR/$domain" --from-corpus \
      --out "experts-beir5/$domain"
    rm -f "experts-beir5/$domain/loss.png"
    echo "$domain: $(( $(date +%s) - start )) s wall (process)"
  done
done
