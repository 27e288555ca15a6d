"""``retriever generate-queries``: queries for a corpus's documents from a small LLM, filtered, as (query, doc_id)
pairs that ``train-expert --from-corpus --generated`` trains on."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from router_retriever.cli.common import command, settings
from router_retriever.corpus import BeirFolder, read_corpus


def register(sub: argparse._SubParsersAction) -> None:
    from router_retriever.training.query_generation import CONSISTENCY_K, GENERATE_EXTRA

    generate = command(sub, "generate-queries", run,
                       "write queries for a corpus's documents with a small LLM (few-shot, cached and resumable), keep "
                       "those whose document BM25 finds, and save them as (query, doc_id) pairs for train-expert "
                       f"--generated (needs the [generate] extra: {GENERATE_EXTRA})")
    generate.add_argument("data", metavar="DATA", help="a BEIR folder or a corpus.jsonl")
    generate.add_argument("--out", type=Path, required=True, help="the pairs file to write (JSON lines: query, doc_id)")
    generate.add_argument("--model", type=Path, help="a GGUF model file (default: the packaged Gemma 3 270M)")
    generate.add_argument("--per-doc", type=int, default=1, metavar="N", help="queries generated per document")
    generate.add_argument("--max-documents", type=int, default=0, metavar="N",
                          help="generate for at most N documents (a stable sample by id and seed); 0: all")
    generate.add_argument("--threads", type=int, default=1, help="CPU threads of the generator")
    generate.add_argument("--seed", type=int, default=0, help="the document sample's and the sampled queries' seed")
    generate.add_argument("--consistency-k", type=int, default=CONSISTENCY_K, metavar="K",
                          help="keep a query whose document BM25 ranks in its top K")
    generate.add_argument("--cache", type=Path, metavar="DIR",
                          help="generated-queries cache (default: <data_dir>/cache/generated)")


def run(args: argparse.Namespace) -> int:
    from router_retriever.indexes.atomic import atomic_write_bytes
    from router_retriever.training.query_generation import (
        GenerationParams,
        LlamaCppGenerator,
        QueryCache,
        default_model_path,
        filter_generated,
        generate_queries,
        pairs_jsonl,
    )

    folder, _ = BeirFolder.parse(args.data, "train")
    docs = read_corpus(folder.root)
    params = GenerationParams(threads=args.threads, seed=args.seed)
    generator = LlamaCppGenerator(args.model or default_model_path(), params)
    cache = QueryCache(args.cache or settings(args).data_dir / "cache" / "generated", generator.identity, args.per_doc)
    started = time.perf_counter()
    generated = generate_queries(docs, generator, cache, per_doc=args.per_doc, max_documents=args.max_documents,
                                 seed=args.seed)
    seconds = time.perf_counter() - started
    pairs, report = filter_generated(generated.queries, docs, k=args.consistency_k)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, pairs_jsonl(pairs).encode())
    print(f"{len(generated.queries)} documents, {report.generated} queries generated, {report.kept} kept -> {args.out}; "
          f"generation {generated.seconds:.0f} s ({seconds:.0f} s in this run; cache {cache.path})")
    print(f"dropped: {report.empty} empty, {report.duplicate} repeated, {report.example_copy} copies of a prompt "
          f"example, {report.document_copy} copies of the document, {report.inconsistent} whose document BM25 does "
          f"not rank in its top {args.consistency_k}")
    return 0
