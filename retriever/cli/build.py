"""``retriever build``: load the configured corpus into an empty store and encode every missing index."""

from __future__ import annotations

import argparse

from core.errors import RetrieverError
from indexes.data_dir import DataDirectory
from retriever.cli.common import command, open_retriever, settings
from retriever.corpus import read_corpora


def register(sub: argparse._SubParsersAction) -> None:
    parser = command(sub, "build", run, "encode the corpus into every expert's index (missing ones)")
    parser.add_argument("--corpus", help="BEIR folder or corpus.jsonl (default: the config's corpus)")
    parser.add_argument("--rebuild", action="store_true", help="wipe documents and indexes first")


def run(args: argparse.Namespace) -> int:
    config = settings(args)
    if args.rebuild:
        DataDirectory.wipe(config.data_dir)
    corpus_specs = [args.corpus] if args.corpus else config.corpus
    with open_retriever(args) as retriever:
        if args.corpus and retriever.count():
            raise RetrieverError(f"{config.data_dir} already holds {retriever.count()} documents: use --rebuild to "
                                 "replace them with this corpus, or add documents through the service")
        built = retriever.build(read_corpora(corpus_specs) if corpus_specs else None)
        for encoder, count in built.items():
            print(f"built index of {encoder}: {count} documents")
        print(f"{retriever.count()} documents in {config.data_dir}; indexes up to date")
    return 0
