#!/usr/bin/env bash
# The five-domain evaluation from scratch (issue #14): train what is missing, then one `retriever eval`.
#   scripts/beir5.sh            (BEIR=/path/to/shared/data/beir, default ../shared/data/beir)
# No test query of any collection is read before the evaluation itself: the four corpus-only experts and the
# multi-task expert are trained from corpora (and SciFact's train split), the gen-* experts from the committed
# generated queries (experts-beir5/generated/, `scripts/generate/beir5.sh` remakes them); configs/beir5.toml takes
# the pilots of those four domains from their generated queries.
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
# linear query maps over bge-small (another model family: its ONNX graph takes no LoRA): the same pairs as the
# MiniLM experts, its own vectors cached in data/beir5/cache/vectors
train_map() { [ -f "experts-beir5/$1/query_map.safetensors" ] || retriever --config configs/beir5.toml train-expert \
  --name "$1" --linear bge --out "experts-beir5/$1" "${@:2}"; }
train_map bge-scifact --train "$BEIR/scifact:train"
for domain in cisi cranfield med arguana; do train_map "bge-$domain" --train "$BEIR/$domain" --from-corpus; done
train_map bge-multitask --train "$BEIR/scifact:train" --corpus "$BEIR/arguana" --corpus "$BEIR/cranfield" \
  --corpus "$BEIR/cisi" --corpus "$BEIR/med" --max-steps 500
rm -f experts-beir5/bge-*/loss.png
# experts from generated queries (hard negatives + cross-encoder margins): MiniLM LoRA for the five, bge maps for three
for domain in arguana scifact; do
  [ -f "experts-beir5/gen-$domain/adapter_model.safetensors" ] || scripts/generate/train_experts.sh "$domain"
done
for domain in med cisi cranfield; do
  [ -f "experts-beir5/gen-$domain/adapter_model.safetensors" ] && [ -f "experts-beir5/bge-gen-$domain/query_map.safetensors" ] \
    || MAPS=1 scripts/generate/train_experts.sh "$domain"
done
for d in scifact arguana; do retriever data add "$BEIR/$d"; done
retriever --config configs/beir5.toml eval beir/scifact/test beir/arguana "$BEIR/cranfield" "$BEIR/cisi" "$BEIR/med" \
  --out runs/eval/results/beir5 --check "$@"
