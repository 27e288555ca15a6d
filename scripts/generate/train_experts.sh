#!/usr/bin/env bash
# Experts from the committed generated queries (experts-beir5/generated/<domain>.jsonl) with the frozen recipe
# (train-expert --generated defaults: router_retriever.training.trainer.GENERATED_RECIPE): a MiniLM LoRA adapter per domain into
# experts-beir5/gen-<domain>/, and with MAPS=1 a bge-small query map (GENERATED_MAP_RECIPE) into
# experts-beir5/bge-gen-<domain>/. Base-model vectors and cross-encoder margins are cached under $DATA_DIR/cache.
#   [MAPS=1] scripts/generate/train_experts.sh [domain ...]     (default: med cisi cranfield arguana scifact)
set -euo pipefail
cd "$(dirname "$0")/../.."
BEIR=${BEIR:-../shared/data/beir}
PYTHON=${PYTHON:-python}
DATA_DIR=${DATA_DIR:-data/gpl}
for name in "${@:-med cisi cranfield arguana scifact}"; do
  for domain in $name; do
    start=$(date +%s)
    "$PYTHON" -m router_retriever.cli --data-dir "$DATA_DIR" train-expert --name "gen-$domain" --train "$BEIR/$domain" \
      --from-corpus --generated "experts-beir5/generated/$domain.jsonl" --out "experts-beir5/gen-$domain"
    rm -f "experts-beir5/gen-$domain/loss.png"
    if [ "${MAPS:-0}" = 1 ]; then
      "$PYTHON" -m router_retriever.cli --config configs/beir5.toml --data-dir "$DATA_DIR" train-expert --name "bge-gen-$domain" \
        --linear bge --train "$BEIR/$domain" --from-corpus --generated "experts-beir5/generated/$domain.jsonl" \
        --out "experts-beir5/bge-gen-$domain"
      rm -f "experts-beir5/bge-gen-$domain/loss.png"
    fi
    echo "$domain: $(( $(date +%s) - start )) s wall (process)"
  done
done
