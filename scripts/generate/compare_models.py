"""Generator models compared on a few SciFact documents (the default model's choice in
retriever/training/query_generation.py): seconds per document and queries kept by filter_generated, one greedy query each.

    python scripts/generate/compare_models.py [--documents N] [--seed S] MODEL.gguf [MODEL.gguf ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from router_retriever.corpus import read_corpus
from router_retriever.training.pseudo_queries import sample_documents
from router_retriever.training.query_generation import (
    GenerationParams,
    LlamaCppGenerator,
    QueryCache,
    default_model_path,
    filter_generated,
    generate_queries,
)

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"


def main(models: list[Path], documents: int, seed: int) -> None:
    docs = read_corpus(SCIFACT)
    for model in models:
        generator = LlamaCppGenerator(model, GenerationParams(threads=1))
        with tempfile.TemporaryDirectory() as cache:
            generated = generate_queries(docs, generator, QueryCache(Path(cache), generator.identity, 1),
                                         max_documents=documents, seed=seed)
        _, report = filter_generated(generated.queries, docs)
        print(f"{model.name}: {generated.seconds / documents:.2f} s per document; {report}")
        for doc in sample_documents(docs, 5, seed=seed):
            print(f"  {doc.id}: {generated.queries[doc.id]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", type=Path, help="GGUF files (default: the packaged model)")
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.models or [default_model_path()], args.documents, args.seed)
