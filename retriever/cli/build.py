"""``retriever build``: load the configured corpus into an empty store, encode every missing index and
re-encode the documents a built index lacks (``--ray``: the encoding on a Ray cluster). ``--rebuild``
re-encodes every index from the store (never losing a document; each old index stays in force until its
replacement is saved, so a crash leaves the directory searchable); ``--reset`` re-reads the corpus, and first
lists what that would remove."""

from __future__ import annotations

import argparse
from pathlib import Path

from router_retriever.api import Retriever
from router_retriever.cli.common import command, settings
from router_retriever.config import DEFAULT_CONFIG
from router_retriever.core.errors import ConfigError, RetrieverError, StoreCorruptError
from router_retriever.core.types import Document
from router_retriever.corpus import read_corpora
from router_retriever.indexes.data_dir import DataDirectory
from router_retriever.indexes.document_store import DocumentStore
from router_retriever.indexes.lock import WriterLock
from router_retriever.ray.cluster import import_ray, ray_cluster
from router_retriever.ray.encoding import RayEncoding

SHOWN = 10  # ids listed when --reset would remove documents


def register(sub: argparse._SubParsersAction) -> None:
    _add_options(command(sub, "build", run, "load the corpus into an empty store, encode every missing index and "
                         "re-encode documents an index lacks"))


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` of another command (its config and data directory) plus every build option at its default:
    how a command that builds as part of its work (``demo``) calls ``run``."""
    parser = argparse.ArgumentParser(add_help=False)
    _add_options(parser)
    return argparse.Namespace(**{**vars(parser.parse_args([])), **vars(args)})


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", help="BEIR folder or corpus.jsonl (default: the config's corpus)")
    parser.add_argument("--rebuild", action="store_true",
                        help="re-encode every index from the documents in the store (after a corrupt or mismatched "
                             "index, or a new index kind); keeps every document, those added through the API too")
    parser.add_argument("--reset", action="store_true",
                        help="replace the store's documents with the corpus, then encode everything; refuses, listing "
                             "them, if documents the corpus lacks (or holds differently) would be removed")
    parser.add_argument("--discard-added", action="store_true",
                        help="with --reset: remove those documents too")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="encode on a Ray cluster ([ray] actors, one model each; the [ray] extra): ADDRESS as "
                             "ray.init takes it ('auto': the cluster `ray start` runs here), none: a local one")


def run(args: argparse.Namespace) -> int:
    config = settings(args)
    corpus_specs = [args.corpus] if args.corpus else config.corpus
    if args.discard_added and not args.reset:
        raise RetrieverError("--discard-added only goes with --reset")
    if args.reset and args.rebuild:
        raise RetrieverError("--reset re-encodes everything already: use --reset or --rebuild, not both")
    if args.reset and not corpus_specs:
        raise ConfigError(_no_corpus(args, "--reset re-reads the corpus, but none is configured"))
    if args.ray is not None:
        import_ray()  # without the extra: refused before anything is opened
    with WriterLock.acquire(config.data_dir, command=_command(args)) as lock:  # before anything is read or wiped
        corpus: list[Document] | None = None
        if args.reset:
            corpus = read_corpora(corpus_specs)
            _check_reset(config.data_dir, corpus, args.discard_added)
            DataDirectory.wipe(config.data_dir)
        with Retriever(config, writer_lock=lock, rebuild=args.rebuild) as retriever:
            count = retriever.count()
            if args.corpus and count and not args.reset:
                raise RetrieverError(f"{config.data_dir} already holds {count} documents: use --reset to replace "
                                     "them with this corpus (it lists what that would remove first), or add "
                                     "documents through the service")
            if not count and corpus is None:
                if not corpus_specs:
                    raise ConfigError(_no_corpus(args, f"{config.data_dir} holds no documents and no corpus is "
                                                       "configured"))
                corpus = read_corpora(corpus_specs)
            if args.rebuild:
                print(f"re-encoding the {count} documents in the store into every index (each replaces the old one "
                      "when it is complete)")
            else:
                state = retriever.status()
                for name, missing in state.missing.items():
                    print(f"index {name} holds {state.indexes[name]} vectors for {state.documents} documents: "
                          f"re-encoding the {missing} that have none")
            if args.ray is None:
                built = retriever.build(corpus)
            else:
                with ray_cluster(args.ray):
                    built = retriever.build(corpus, encode=RayEncoding(config.ray, config.batch_size))
            for encoder, encoded in built.items():
                print(f"encoded {encoded} documents into the index of {encoder}")
            print(f"{retriever.count()} documents in {config.data_dir}; indexes up to date")
    return 0


def _check_reset(data_dir: Path, corpus: list[Document], discard_added: bool) -> None:
    """Refuse a reset that would remove or revert documents, naming them, unless ``discard_added``."""
    if discard_added or not (data_dir / "docs.sqlite").is_file():
        return
    wanted = {doc.id: doc for doc in corpus}
    try:
        store = DocumentStore(data_dir / "docs.sqlite", read_only=True)
        try:
            stored = [doc for _, batch in store.iter_documents() for doc in batch]
        finally:
            store.close()
    except StoreCorruptError as exc:
        raise RetrieverError(f"--reset cannot list the documents it would remove ({data_dir / 'docs.sqlite'}: {exc.__cause__}); "
                             "rerun with --reset --discard-added to replace the store with the corpus anyway") from exc
    removed = [doc.id for doc in stored if doc.id not in wanted]
    changed = [doc.id for doc in stored if doc.id in wanted and doc != wanted[doc.id]]
    if removed or changed:
        parts = [f"remove {len(removed)} documents the corpus lacks ({_ids(removed)})"] if removed else []
        parts += [f"revert {len(changed)} documents changed since the corpus was read ({_ids(changed)})"] if changed else []
        raise RetrieverError(f"--reset would {' and '.join(parts)}, added or changed through the service or the "
                             "API. Keep them: `retriever build --rebuild` re-encodes the store as it is. Lose them: "
                             "rerun with --reset --discard-added")


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN])
    return shown + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")


def _no_corpus(args: argparse.Namespace, problem: str) -> str:
    config = args.config or DEFAULT_CONFIG
    return (f"{problem}: set `corpus = \"/path/to/beir-folder\"` (a BEIR folder, a corpus.jsonl, or a list of them) in "
            f"{config}, or pass --corpus DIR|corpus.jsonl")


def _command(args: argparse.Namespace) -> str:
    flags = [flag for flag, on in (("--rebuild", args.rebuild), ("--reset", args.reset)) if on]
    return " ".join(["retriever build", *flags])
