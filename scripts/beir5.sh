#!/usr/bin/env bash
# The five-domain evaluation from scratch (issue #14): train what is missing, then one `retriever eval`.
#   scripts/beir5.sh            (BEIR=/path/to/shared/data/beir, default ../shared/data/beir)
# No test query of any collection is read before the evaluation itself: the four corpus-only experts and the
# multi-task expert are trained from corpora (and SciFact's train split); configs/beir5.toml takes the pilots
# of those four domains from their corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
BEIR=${BEIR:-../shared/data/beir}
export HF_HUB_OFFLINE=1
for domain in arguana cranfield cisi med; do
  [ -f "experts-beir5/$domain/adapter_model.safetensors" ] || BEIR="$BEIR" scripts/recipe/train_experts.sh "$domain"
done
if [ ! -f experts-beir5/multitask/adapter_model.safetensors ]; then
  # the union of every domain's pairs, as many steps as the five domain experts took together (5 x 300)
  retriever train-expert --name multitask --train "$BEIR/scifact:train" --corpus "$BEIR/arguana" \
    --corpus "$BEIR/cranfield" --corpus "$BEIR/cisi" --corpus "$BEIR/med" --max-steps 1500 --out experts-beir5/multitask
  rm -f experts-beir5/multitask/loss.png
fi
for d in scifact arguana; do retriever data add "$BEIR/$d"; done
retriever --config configs/beir5.toml eval beir/scifact/test beir/arguana "$BEIR/cranfield" "$BEIR/cisi" "$BEIR/med" \
  --out runs/eval/results/beir5 --check "$@"
