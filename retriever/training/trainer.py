"""Train a domain expert: a LoRA adapter on the query encoder of a frozen base model (CPU-friendly).

The document side stays the frozen base model, so an expert reuses the base document index. Each
training document is therefore encoded once with the base model (no grad) and cached; only queries
go through base+LoRA with gradients. Loss: in-batch negatives contrastive (MultipleNegativesRankingLoss
form), optionally with every cached training document as an extra negative; with hard-negative triples
(``router_retriever.training.hard_negatives``) also MarginMSE on cross-encoder margins, as GPL.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

from router_retriever.core.errors import CorpusError
from router_retriever.core.types import Document
from router_retriever.corpus import GeneratedPair
from router_retriever.encoding.encoders import Encoder, quiet_loading
from router_retriever.encoding.query_map import MAP_FILE, QueryMap
from router_retriever.indexes.atomic import atomic_write_bytes, replace_folder
from router_retriever.locations import resolve_location
from router_retriever.metrics import evaluate
from router_retriever.training.hard_negatives import MarginTriple
from router_retriever.training.pseudo_queries import SENTENCE_END, pseudo_queries, shared_sentences

ATTENTION_PROJECTIONS = ("query", "key", "value")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class TrainingPair:
    """One (query, relevant document text) training example."""

    query: str
    document: str


@dataclass(frozen=True)
class TrainingOptions:
    """What ``train_query_adapter`` and ``train_query_map`` share beside the pairs: the optimisation settings, the
    card's ``description``, held-out pairs to score and hard-negative triples (recorded in ``training.json``)."""

    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 32
    scale: float = 20.0  # of the cosine similarities, in both losses
    seed: int = 0
    max_steps: int | None = None  # stop early (None: every epoch)
    description: str = ""
    held_out: tuple[TrainingPair, ...] = ()  # never trained on; their known-item MRR@10 goes into ``evaluation``
    triples: tuple[MarginTriple, ...] = ()  # hard negatives with cross-encoder margins: adds MarginMSE
    margin_weight: float = 1.0  # the losses' weights, with triples
    contrastive_weight: float = 1.0


@dataclass
class TrainingReport:
    """What a training run did; also written to ``training.json`` in the adapter folder."""

    base_model: str
    description: str
    n_pairs: int
    n_documents: int
    rank: int | None  # LoRA rank and alpha (None for a linear query map)
    alpha: int | None
    lr: float
    epochs: int
    batch_size: int
    negatives: str
    scale: float
    seed: int
    n_triples: int = 0  # hard-negative triples with cross-encoder margins (0: contrastive loss alone)
    margin_weight: float = 0.0
    contrastive_weight: float = 1.0
    steps: int = 0
    epochs_completed: int = 0
    complete: bool = False
    wall_time_s: float = 0.0
    losses: list[float] = field(default_factory=list)
    evaluation: dict[str, object] = field(default_factory=dict)


def pairs_from_qrels(
    queries: dict[str, str], qrels: dict[str, dict[str, int]], docs: dict[str, str]
) -> list[TrainingPair]:
    """One pair per positive judgement (score > 0) whose query and document are both known."""
    return [
        TrainingPair(queries[qid], docs[did])
        for qid, judged in qrels.items()
        if qid in queries
        for did, score in judged.items()
        if score > 0 and did in docs
    ]


def pairs_from_generated(generated: Iterable[GeneratedPair], docs: Iterable[Document]) -> list[TrainingPair]:
    """Generated query -> its whole document (``doc.content``, the text the index holds), for pairs written by
    ``retriever generate-queries`` over this corpus."""
    content = {doc.id: doc.content for doc in docs}
    pairs = []
    for pair in generated:
        if pair.doc_id not in content:
            raise CorpusError(f"generated query {pair.query!r} names document {pair.doc_id!r}, which is not in the corpus")
        pairs.append(TrainingPair(pair.query, content[pair.doc_id]))
    return pairs


def generated_margin_triples(base_model: str, cross_encoder_model: str, generated: list[GeneratedPair],
                             docs: list[Document], depth: int, cache_dir: Path) -> tuple[list[MarginTriple],
                                                                                      dict[str, np.ndarray]]:
    """The hard negatives of generated queries (``base_model``'s and BM25's top ``depth``) with the margins of the
    cross-encoder at ``cross_encoder_model``, and ``base_model``'s vectors of the corpus by text (they also spare
    a training its document pass). Vectors and cross-encoder scores are cached in ``cache_dir`` (``vectors/``,
    ``margins/``; the scores keyed by the cross-encoder file's SHA-256 and the length it reads)."""
    from router_retriever.encoding.encoders import EncoderSpec, encoder
    from router_retriever.encoding.reranker import cross_encoder
    from router_retriever.training.hard_negatives import (
        CROSS_ENCODER_MAX_LENGTH,
        MarginCache,
        label_margins,
        mine_negatives,
    )
    from router_retriever.training.query_generation import file_sha256

    spec = EncoderSpec(base_model)
    vectors = encode_cached(encoder(spec, "document"), [d.content for d in docs], cache_dir / "vectors")
    queries = encode_cached(encoder(spec, "query"), [p.query for p in generated], cache_dir / "vectors")
    negatives = mine_negatives(generated, docs, np.stack([queries[p.query] for p in generated]),
                               np.stack([vectors[d.content] for d in docs]), depth)
    scorer = cross_encoder(cross_encoder_model, CROSS_ENCODER_MAX_LENGTH)
    model_hash = file_sha256(Path(resolve_location(cross_encoder_model)) / "model.onnx")
    margins = MarginCache(cache_dir / "margins", f"{model_hash}|{CROSS_ENCODER_MAX_LENGTH}")
    return label_margins(generated, negatives, docs, scorer.scores, margins), vectors


def pairs_from_corpus(docs: Iterable[Document], *, min_words: int = 3, use_titles: bool = True) -> list[TrainingPair]:
    """Pseudo-queries for a domain without queries: title -> body, else (or with ``use_titles=False``)
    first sentence -> rest. Pairs whose query or document has fewer than ``min_words`` words are dropped.
    """
    pairs = []
    for doc in docs:
        if use_titles and doc.title.strip():
            query, body = doc.title.strip(), doc.text.strip()
        else:
            parts = SENTENCE_END.split(doc.text.strip(), maxsplit=1)
            query, body = parts[0], parts[1] if len(parts) > 1 else ""
        if len(query.split()) >= min_words and len(body.split()) >= min_words:
            pairs.append(TrainingPair(query, body))
    return pairs


# The corpus-only recipe (`retriever train-expert --from-corpus` defaults), chosen on SciFact train queries only
# (scripts/recipe/RESULTS.md): 3 sentences per document -> the whole document, 300 steps of 32 pairs (as many
# epochs as that takes, at most 10), every document (max_documents 0), lr 1e-3.
CORPUS_RECIPE: dict = {"kind": "sentences", "per_doc": 3, "max_documents": 0, "lr": 1e-3, "epochs": 10,
                       "max_steps": 300}
# Generated queries (`train-expert --generated`): chosen on SciFact train queries only (809; scripts/recipe/gpl_dev.py,
# 211 pairs generated from the SciFact corpus, base 66.02 nDCG@10, 42 steps each; log in scripts/recipe/gpl-dev.jsonl):
# at lr 1e-3 the contrastive loss alone -1.37 (p 0.02), with the 5+5 hard negatives as candidates -0.37 (10+10 and
# CE-denoised: -0.05), MarginMSE alone -1.46, both -1.33; at lr 2e-4: contrastive +0.22, MarginMSE +0.25 (p 0.51),
# both +0.20; MarginMSE for 140 steps -1.25. The best, MarginMSE on cross-encoder margins of 5 + 5 hard negatives at
# lr 2e-4, is the recipe (no variant beat the base model significantly on SciFact).
GENERATED_RECIPE: dict = {"epochs": 6, "lr": 2e-4, "max_steps": None, "hard_negatives": 5, "margin_weight": 1.0,
                          "contrastive_weight": 0.0}
# A query map from generated queries (`train-expert --linear EXPERT --generated`): chosen on SciFact train queries only
# (scripts/recipe/gpl_map_dev.py, bge-small, base 74.51, the same 211 pairs and margins; log in
# scripts/recipe/gpl-map-dev.jsonl): lr 1e-3, 300 steps: MarginMSE -7.15, contrastive -6.37, both -6.93; lr 1e-4,
# 100 steps: MarginMSE -0.96 (p 0.001), contrastive -1.98. Every map lost: the least harmful is the recipe.
GENERATED_MAP_RECIPE: dict = {"lr": 1e-4, "epochs": 30, "max_steps": 100, "margin_weight": 1.0, "contrastive_weight": 0.0}
# A linear query map's recipe (`train-expert --linear` defaults, any data): few, small steps. Chosen on CISI's
# corpus alone (no query): 20% of its documents held out, known-item MRR@10 of their first sentence -> rest with
# bge-small: identity 0.431; lr 1e-4: 0.453 (100 steps), 0.445 (300), 0.414 (1000); lr 3e-4: 0.446 / 0.416 / 0.404;
# lr 1e-3: 0.410 / 0.403 / 0.375 (the map overfits sentences-in-their-document fast).
QUERY_MAP_RECIPE: dict = {"lr": 1e-4, "epochs": 10, "max_steps": 100}
# A query map trained on labelled queries (qrels, no corpus source): chosen by 2-fold cross-validation on SciFact
# train queries (scripts/recipe/map_dev.py, bge-small, base 76.7 / 72.7 per fold): lr 1e-3, 300 steps +7.75 nDCG@10
# (lr 1e-4, 100 steps, the corpus recipe: -0.12). With folds that share no relevant document every map loses
# (-1.0 .. -7.2): the gain is learning the training queries' documents, not a better query encoder.
QUERY_MAP_QRELS_RECIPE: dict = {"lr": 1e-3, "epochs": 30, "max_steps": 300}


def pseudo_query_pairs(docs: Iterable[Document], *, kind: str = "sentences", per_doc: int = 3, seed: int = 0,
                       min_words: int = 4) -> list[TrainingPair]:
    """Pseudo-query -> whole document (``doc.content``, the text the index holds) pairs from a corpus alone.
    A sentence (or title) found in several documents (boilerplate such as "DESIGN Systematic review.") is no
    query: it has no single right document."""
    docs = list(docs)
    shared = shared_sentences(docs, min_words=min_words)
    return [TrainingPair(query, doc.content) for doc in docs
            for query in pseudo_queries(doc, kind, per_doc, seed=seed, min_words=min_words, exclude=shared)]


def split_held_out(docs: Iterable[Document], fraction: float) -> tuple[list[Document], list[Document]]:
    """(training documents, held-out documents), split by ``is_held_out``."""
    split: tuple[list[Document], list[Document]] = ([], [])
    for doc in docs:
        split[is_held_out(doc.id, fraction)].append(doc)
    return split


def is_held_out(doc_id: str, fraction: float) -> bool:
    """A stable split by document id (independent of order and seed): about ``fraction`` of ids are held out."""
    return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2**64 < fraction


def held_out_pairs(docs: Iterable[Document], fraction: float, *,
                   use_titles: bool = True) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(training pairs, held-out pairs) from a corpus alone, documents split by ``is_held_out``."""
    split: tuple[list[Document], list[Document]] = ([], [])
    for doc in docs:
        split[is_held_out(doc.id, fraction)].append(doc)
    return pairs_from_corpus(split[0], use_titles=use_titles), pairs_from_corpus(split[1], use_titles=use_titles)


def train_query_adapter(
    base_model: str,
    pairs: list[TrainingPair],
    out_dir: Path,
    options: TrainingOptions = TrainingOptions(),
    *,
    rank: int = 8,
    alpha: int = 32,
    negatives: Literal["batch", "all"] = "all",
    document_vectors: Mapping[str, np.ndarray] | None = None,
) -> TrainingReport:
    """Train a LoRA adapter (``rank``, ``alpha``) on the query side of ``base_model`` (a folder or a
    ``pkg:`` location, recorded as given); the document side stays frozen.

    ``negatives="batch"`` scores each query against the documents of its batch; ``"all"`` against
    every cached training document (the in-batch ones included). A query's other positives are
    never counted as negatives. The adapter is saved to ``out_dir`` after every epoch, with
    ``training.json`` and ``loss.png``; ``options.max_steps`` stops early (the last partial epoch is saved).
    ``options.held_out`` pairs are searched among all documents, base model vs adapter. With ``options.triples``
    (hard negatives of the pairs' queries and cross-encoder margins), each step also draws one triple per query of
    the batch and adds ``margin_weight`` x MarginMSE (the scaled cosine gap between document and negative against
    the margin) to ``contrastive_weight`` x the contrastive loss, whose candidates then include the negatives.
    ``document_vectors`` (base-model unit vectors by text) spare encoding the documents they hold.
    """
    if not pairs:
        raise ValueError("no training pairs")
    _seed_everything(options.seed)
    started = time.perf_counter()
    with quiet_loading():
        st = SentenceTransformer(resolve_location(base_model), device="cpu", local_files_only=True)
    triples, scale = options.triples, options.scale
    documents = list(dict.fromkeys([*(p.document for p in pairs), *(t.negative for t in triples)]))
    doc_index = {text: i for i, text in enumerate(documents)}
    doc_emb = _document_embeddings(st, documents, document_vectors or {})
    margins = _margins_by_pair(pairs, triples, doc_index)
    targets = torch.tensor([doc_index[p.document] for p in pairs])
    positives = _positives_by_query(pairs, doc_index)

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.1,
        target_modules=list(ATTENTION_PROJECTIONS),
        task_type=TaskType.FEATURE_EXTRACTION,
    )
    with quiet_loading():  # injects LoRA into the BertModel in place
        peft_model = get_peft_model(cast(torch.nn.Module, st[0].auto_model), config)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    total_steps = _total_steps(len(pairs), options)
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_linear(total_steps))
    report = _new_report(base_model, options, len(pairs), len(documents), rank=rank, alpha=alpha, negatives=negatives)
    generator = torch.Generator().manual_seed(options.seed)
    st.train()
    with tqdm(total=total_steps, desc="train expert", unit="step") as bar:
        for epoch in range(options.epochs):
            for batch in torch.randperm(len(pairs), generator=generator).split(options.batch_size):
                if report.steps >= total_steps:
                    break
                queries = [pairs[i].query for i in batch.tolist()]
                q = F.normalize(st(st.preprocess(queries))["sentence_embedding"], dim=-1)
                loss = _contrastive_loss(q, queries, targets[batch], doc_emb, positives, negatives, scale)
                if triples:
                    loss = report.contrastive_weight * loss + report.margin_weight * _margin_mse_loss(
                        q, batch.tolist(), margins, doc_emb, scale, generator)
                _step(loss, optimizer, schedule, report)
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}")
            report.epochs_completed = epoch + 1
            report.complete = report.steps >= total_steps
            report.wall_time_s = round(time.perf_counter() - started, 2)
            if report.complete and options.held_out:
                report.evaluation = _known_item_evaluation(st, peft_model, options.held_out, doc_emb, doc_index)
            _save_checkpoint(peft_model, report, Path(out_dir))
            if report.complete:
                break
    st.eval()
    return report


def train_query_map(
    model: str,
    pairs: list[TrainingPair],
    query_vectors: dict[str, np.ndarray],
    document_vectors: dict[str, np.ndarray],
    out_dir: Path,
    options: TrainingOptions = TrainingOptions(),
    *,
    weight_decay: float = 0.01,
) -> TrainingReport:
    """Train a linear query map (``router_retriever.encoding.query_map``) over an expert's own vectors: every query's and
    document's vector is given (by text), so no model runs here and a step costs one small matrix product.

    Same objective as the LoRA adapter (every training document a negative, a query's other positives
    masked), on ``delta`` starting at zero (the map starts as the identity; weight decay pulls it back).
    ``options.held_out`` pairs are scored by known-item MRR@10, identity vs map, into the card's ``evaluation``.
    ``options.triples`` add MarginMSE as in ``train_query_adapter`` (their negatives' vectors must be given too).
    """
    if not pairs:
        raise ValueError("no training pairs")
    _seed_everything(options.seed)
    started = time.perf_counter()
    triples, scale = options.triples, options.scale
    documents = list(dict.fromkeys([*(p.document for p in pairs), *(t.negative for t in triples)]))
    doc_index = {text: i for i, text in enumerate(documents)}
    doc_emb = torch.from_numpy(np.stack([document_vectors[d] for d in documents]))
    margins = _margins_by_pair(pairs, triples, doc_index)
    query_emb = torch.from_numpy(np.stack([query_vectors[p.query] for p in pairs]))
    targets = torch.tensor([doc_index[p.document] for p in pairs])
    positives = _positives_by_query(pairs, doc_index)
    delta = torch.nn.Parameter(torch.zeros(doc_emb.shape[1], doc_emb.shape[1]))
    total_steps = _total_steps(len(pairs), options)
    optimizer = torch.optim.AdamW([delta], lr=options.lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_linear(total_steps))
    report = _new_report(model, options, len(pairs), len(documents), rank=None, alpha=None, negatives="all")
    generator = torch.Generator().manual_seed(options.seed)
    mapped = lambda q: F.normalize(q + q @ delta.T, dim=-1)  # noqa: E731
    while report.steps < total_steps:
        for batch in torch.randperm(len(pairs), generator=generator).split(options.batch_size):
            if report.steps >= total_steps:
                break
            q = mapped(query_emb[batch])
            loss = _contrastive_loss(q, [pairs[i].query for i in batch.tolist()], targets[batch], doc_emb, positives,
                                     "all", scale)
            if triples:
                loss = report.contrastive_weight * loss + report.margin_weight * _margin_mse_loss(
                    q, batch.tolist(), margins, doc_emb, scale, generator)
            _step(loss, optimizer, schedule, report)
        report.epochs_completed += 1
    report.complete = True
    report.wall_time_s = round(time.perf_counter() - started, 2)
    query_map = QueryMap(delta.detach().numpy().copy())
    if options.held_out:
        report.evaluation = _map_evaluation(query_map, options.held_out, query_vectors, document_vectors, documents)
    _save_files(query_map.save, (MAP_FILE,), report, Path(out_dir))
    return report


def _total_steps(n_pairs: int, options: TrainingOptions) -> int:
    """Every epoch's batches, or ``options.max_steps`` if fewer."""
    all_epochs = -(-n_pairs // options.batch_size) * options.epochs
    return min(all_epochs, options.max_steps or all_epochs)


def _new_report(base_model: str, options: TrainingOptions, n_pairs: int, n_documents: int, *, rank: int | None,
                alpha: int | None, negatives: str) -> TrainingReport:
    """The card of a run starting: its settings (the loss weights only with triples: else 0 and 1, the loss used)."""
    return TrainingReport(
        base_model=base_model, description=options.description, n_pairs=n_pairs, n_documents=n_documents, rank=rank,
        alpha=alpha, lr=options.lr, epochs=options.epochs, batch_size=options.batch_size, negatives=negatives,
        scale=options.scale, seed=options.seed, n_triples=len(options.triples),
        margin_weight=options.margin_weight if options.triples else 0.0,
        contrastive_weight=options.contrastive_weight if options.triples else 1.0)


def encode_cached(encoder: Encoder, texts: list[str], cache_dir: Path | None, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Vectors of ``texts`` by text, kept in ``cache_dir`` under a key of the encoder's fingerprint and the
    texts, so retraining on the same data never re-encodes it."""
    texts = list(dict.fromkeys(texts))
    key = hashlib.sha256("\0".join([encoder.spec.fingerprint, encoder.role, *texts]).encode()).hexdigest()[:20]
    path = cache_dir / f"{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        vectors = np.load(path)
    else:
        vectors = encoder.encode(texts, batch_size=batch_size, progress=True)
        if path is not None:
            buffer = io.BytesIO()
            np.save(buffer, vectors)
            atomic_write_bytes(path, buffer.getvalue())
    return dict(zip(texts, vectors))


def _map_evaluation(query_map: QueryMap, held_out: Sequence[TrainingPair], query_vectors: dict[str, np.ndarray],
                    document_vectors: dict[str, np.ndarray], documents: list[str]) -> dict[str, object]:
    """Known-item MRR@10 of the held-out pairs among the training and held-out documents, identity vs map."""
    documents = list(dict.fromkeys([*documents, *(p.document for p in held_out)]))
    doc_index = {d: i for i, d in enumerate(documents)}
    doc_emb = torch.from_numpy(np.stack([document_vectors[d] for d in documents]))
    qrels = {str(i): {str(doc_index[p.document]): 1} for i, p in enumerate(held_out)}
    queries = np.stack([query_vectors[p.query] for p in held_out])
    base = known_item_mrr(torch.from_numpy(queries), doc_emb, qrels)
    adapted = known_item_mrr(torch.from_numpy(query_map.apply(queries)), doc_emb, qrels)
    return {"task": f"known item: {len(held_out)} held-out pairs (never trained on), query -> its document "
                    f"among all {len(doc_emb)} documents", "mrr@10_base": round(base, 4), "mrr@10_expert": round(adapted, 4)}


def _known_item_evaluation(st: SentenceTransformer, peft_model: PeftModel, held_out: Sequence[TrainingPair],
                           doc_emb: torch.Tensor, doc_index: dict[str, int]) -> dict[str, object]:
    """MRR@10 of finding each held-out pair's document, among the training and held-out documents
    (base-model embeddings), by its query: the base model (adapter disabled) and the adapter."""
    st.eval()
    new_docs = [d for d in dict.fromkeys(p.document for p in held_out) if d not in doc_index]
    doc_index = doc_index | {d: len(doc_index) + i for i, d in enumerate(new_docs)}
    qrels = {str(i): {str(doc_index[p.document]): 1} for i, p in enumerate(held_out)}
    queries = [p.query for p in held_out]
    with torch.no_grad(), peft_model.disable_adapter():
        doc_emb = torch.cat([doc_emb, _encode_documents(st, new_docs)]) if new_docs else doc_emb
        base = known_item_mrr(st.encode(queries, normalize_embeddings=True, convert_to_tensor=True), doc_emb, qrels)
    with torch.no_grad():
        adapted = known_item_mrr(st.encode(queries, normalize_embeddings=True, convert_to_tensor=True), doc_emb, qrels)
    st.train()
    return {"task": f"known item: {len(held_out)} held-out pairs (never trained on), query -> its document "
                    f"among all {len(doc_emb)} documents", "mrr@10_base": round(base, 4), "mrr@10_expert": round(adapted, 4)}


def known_item_mrr(queries: torch.Tensor, doc_emb: torch.Tensor, qrels: dict[str, dict[str, int]]) -> float:
    """MRR@10 (the evaluation's metrics path) of query rows ranking document rows by cosine; query ``i``
    is qrels id ``str(i)``, document ``j`` is ``str(j)``."""
    scores, ids = torch.topk(queries.float() @ doc_emb.T, k=min(10, len(doc_emb)), dim=1)
    run = {str(q): {str(int(d)): float(s) for s, d in zip(scores[q].tolist(), ids[q].tolist())} for q in range(len(queries))}
    return evaluate(run, qrels, ("RR@10",)).mean["RR@10"]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _encode_documents(st: SentenceTransformer, documents: list[str]) -> torch.Tensor:
    """Normalised base-model embeddings of the training documents (computed once, no grad)."""
    st.eval()
    emb = st.encode(documents, batch_size=32, normalize_embeddings=True, convert_to_tensor=True, show_progress_bar=True)
    return emb.detach().float()


def _document_embeddings(st: SentenceTransformer, documents: list[str],
                         known: Mapping[str, np.ndarray]) -> torch.Tensor:
    """Base-model unit vectors of ``documents``: those ``known`` taken as they are, the others encoded."""
    missing = [d for d in documents if d not in known]
    encoded = dict(zip(missing, _encode_documents(st, missing))) if missing else {}
    return torch.stack([torch.as_tensor(known[d]).float() if d in known else encoded[d] for d in documents])


def _margins_by_pair(pairs: list[TrainingPair], triples: Sequence[MarginTriple],
                     doc_index: dict[str, int]) -> list[torch.Tensor]:
    """For each pair, its triples as rows of (document index, negative index, margin); empty when it has none."""
    rows: dict[tuple[str, str], list[tuple[int, int, float]]] = {}
    for t in triples:
        rows.setdefault((t.query, t.positive), []).append((doc_index[t.positive], doc_index[t.negative], t.margin))
    return [torch.tensor(rows.get((p.query, p.document), []), dtype=torch.float32).reshape(-1, 3) for p in pairs]


def _margin_mse_loss(q: torch.Tensor, batch: list[int], margins: list[torch.Tensor], doc_emb: torch.Tensor,
                     scale: float, generator: torch.Generator) -> torch.Tensor:
    """MarginMSE over one randomly drawn triple per query of the batch that has any: the scaled cosine gap
    between its document and the negative, against the cross-encoder's margin."""
    rows, picked = [], []
    for row, i in enumerate(batch):
        if len(margins[i]):
            rows.append(row)
            picked.append(margins[i][int(torch.randint(len(margins[i]), (1,), generator=generator))])
    if not rows:
        return q.sum() * 0.0
    chosen = torch.stack(picked)
    positive, negative = doc_emb[chosen[:, 0].long()], doc_emb[chosen[:, 1].long()]
    gap = scale * ((q[rows] * positive).sum(-1) - (q[rows] * negative).sum(-1))
    return F.mse_loss(gap, chosen[:, 2])


def _positives_by_query(pairs: list[TrainingPair], doc_index: dict[str, int]) -> dict[str, set[int]]:
    positives: dict[str, set[int]] = {}
    for p in pairs:
        positives.setdefault(p.query, set()).add(doc_index[p.document])
    return positives


def _warmup_linear(total_steps: int, warmup_fraction: float = 0.1):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def _step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
          report: TrainingReport) -> None:
    """One optimisation step on ``loss``, counted (with the loss) in the report."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    report.steps += 1
    report.losses.append(round(loss.item(), 5))


def _contrastive_loss(
    q: torch.Tensor,
    queries: list[str],
    batch_targets: torch.Tensor,
    doc_emb: torch.Tensor,
    positives: dict[str, set[int]],
    negatives: str,
    scale: float,
) -> torch.Tensor:
    """Cross-entropy over scaled cosine similarities of each (unit) query vector ``q`` of the batch to the
    candidate documents; a query's other positives are masked out."""
    candidates = torch.arange(len(doc_emb)) if negatives == "all" else torch.unique(batch_targets)
    column = {int(c): j for j, c in enumerate(candidates.tolist())}
    logits = scale * q @ doc_emb[candidates].T
    mask = torch.zeros_like(logits, dtype=torch.bool)
    for row, (query, target) in enumerate(zip(queries, batch_targets.tolist())):
        for other in positives[query] - {target}:
            if other in column:
                mask[row, column[other]] = True
    labels = torch.tensor([column[t] for t in batch_targets.tolist()])
    return F.cross_entropy(logits.masked_fill(mask, float("-inf")), labels)


def _save_checkpoint(peft_model: PeftModel, report: TrainingReport, out_dir: Path) -> None:
    """The LoRA adapter, card and loss plot, written into ``out_dir`` (see ``_save_files``). peft saves into a
    scratch folder, whose ``ADAPTER_FILES`` alone are kept: not its README.md model card (nor its update of one kept)."""
    def write_adapter(folder: Path) -> None:
        scratch = folder / ".peft"
        peft_model.save_pretrained(str(scratch))
        for name in ADAPTER_FILES:
            (scratch / name).rename(folder / name)
        shutil.rmtree(scratch)

    _save_files(write_adapter, ADAPTER_FILES, report, out_dir)


def _save_files(write_weights: Callable[[Path], None], weight_files: tuple[str, ...], report: TrainingReport,
                out_dir: Path) -> None:
    """Replace ``out_dir`` with the weights, card (naming each weight file's SHA-256) and loss plot as one step
    (``replace_folder``): a crash leaves the previous checkpoint or the new one, never a mix. Other files are kept."""
    def write(folder: Path) -> None:
        for kept in out_dir.iterdir() if out_dir.is_dir() else ():
            if kept.name in (*weight_files, "training.json", "loss.png", ".checkpoint.tmp"):
                continue
            if kept.is_dir():
                shutil.copytree(kept, folder / kept.name)
            else:
                shutil.copy2(kept, folder / kept.name)
        write_weights(folder)
        files = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in weight_files}
        (folder / "training.json").write_text(json.dumps(asdict(report) | {"files": files}, indent=2) + "\n")
        _plot_loss(report.losses, folder / "loss.png")

    replace_folder(out_dir, write)


def _plot_loss(losses: list[float], path: Path) -> None:
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(range(1, len(losses) + 1), losses, lw=1)
    ax.set(xlabel="step", ylabel="contrastive loss", title="query-adapter training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
