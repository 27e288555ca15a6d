"""``retriever build``: load the configured corpus into an empty store, encode every missing index and
re-encode the documents a built index lacks (holding the data directory's writer lock throughout)."""

from __future__ import annotations

import argparse

from core.errors import RetrieverError
from indexes.data_dir import DataDirectory
from indexes.lock import WriterLock
from retriever.api import Retriever
from retriever.cli.common import command, settings
from retriever.corpus import read_corpora


def register(sub: argparse._SubParsersAction) -> None:
    parser = command(sub, "build", run, "encode the corpus into every expert's index (missing ones)")
    parser.add_argument("--corpus", help="BEIR folder or corpus.jsonl (default: the config's corpus)")
    parser.add_argument("--rebuild", action="store_true", help="wipe documents and indexes first")


def run(args: argparse.Namespace) -> int:
    config = settings(args)
    with WriterLock.acquire(config.data_dir, command=_command(args)) as lock:  # before anything is wiped
        if args.rebuild:
            DataDirectory.wipe(config.data_dir)
        corpus_specs = [args.corpus] if args.corpus else config.corpus
        with Retriever(config, writer_lock=lock) as retriever:
            if args.corpus and retriever.count():
                raise RetrieverError(f"{config.data_dir} already holds {retriever.count()} documents: use --rebuild to "
                                     "replace them with this corpus, or add documents through the service")
            state = retriever.status()
            for name, missing in state.missing.items():
                print(f"index {name} holds {state.indexes[name]} vectors for {state.documents} documents: "
                      f"re-encoding the {missing} that have none")
            built = retriever.build(read_corpora(corpus_specs) if corpus_specs else None)
            for encoder, encoded in built.items():
                print(f"encoded {encoded} documents into the index of {encoder}")
            print(f"{retriever.count()} documents in {config.data_dir}; indexes up to date")
    return 0


def _command(args: argparse.Namespace) -> str:
    return "retriever build --rebuild" if args.rebuild else "retriever build"
