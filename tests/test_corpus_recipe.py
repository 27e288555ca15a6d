"""The corpus-only recipe's pair generation on the shipped SciFact slice (pure functions, no model: fast)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from router_retriever import Document
from router_retriever.corpus import read_corpus
from router_retriever.locations import resolve_location
from router_retriever.training.pseudo_queries import PSEUDO_QUERY_KINDS, pseudo_queries, sample_documents, split_sentences
from router_retriever.training.trainer import CORPUS_RECIPE, pseudo_query_pairs, split_held_out

SLICE = "pkg:retriever/data/scifact-1k"


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return read_corpus(Path(resolve_location(SLICE)))


def test_recipe_defaults_are_a_known_kind():
    assert CORPUS_RECIPE["kind"] in PSEUDO_QUERY_KINDS
    assert CORPUS_RECIPE["per_doc"] > 1 and CORPUS_RECIPE["max_steps"] > 0


def test_several_pseudo_queries_per_document_each_paired_with_its_whole_document(docs):
    pairs = pseudo_query_pairs(docs, kind="sentences", per_doc=3, seed=0)
    by_content = {d.content: d for d in docs}
    per_doc = Counter(p.document for p in pairs)
    assert set(per_doc) <= set(by_content)  # the positive is the whole document, as the index holds it
    assert max(per_doc.values()) == 3 and sum(n == 3 for n in per_doc.values()) > 0.9 * len(docs)
    for pair in pairs:
        doc = by_content[pair.document]
        assert len(pair.query.split()) >= 4
        assert pair.query in doc.title or pair.query in split_sentences(doc.text)
    for doc in docs[:50]:  # distinct queries within a document
        queries = pseudo_queries(doc, "sentences", 3)
        assert len(queries) == len(set(queries))


@pytest.mark.parametrize("kind", PSEUDO_QUERY_KINDS)
def test_every_kind_draws_from_its_own_document_only(docs, kind):
    made = 0
    for doc in docs[:100]:
        queries = pseudo_queries(doc, kind, 4)
        made += len(queries)
        for query in queries:  # every word of a query is a word of its own document
            assert all(w in doc.content.lower() for w in query.lower().split()), (kind, query)
    assert made > 300


def test_deterministic_with_a_seed_and_independent_of_corpus_order(docs):
    first = pseudo_query_pairs(docs, kind="sentences", per_doc=3, seed=0)
    assert first == pseudo_query_pairs(docs, kind="sentences", per_doc=3, seed=0)
    assert set(first) == set(pseudo_query_pairs(list(reversed(docs)), kind="sentences", per_doc=3, seed=0))
    assert first != pseudo_query_pairs(docs, kind="sentences", per_doc=3, seed=1)
    sample = sample_documents(docs, 300, seed=0)
    assert len(sample) == 300 and sample == sample_documents(docs, 300, seed=0)
    assert {d.id for d in sample} == {d.id for d in sample_documents(list(reversed(docs)), 300, seed=0)}
    assert sample_documents(docs, 0) == docs


def test_no_training_query_comes_from_a_held_out_document(docs):
    training, held = split_held_out(docs, 0.2)
    assert held and training and len(training) + len(held) == len(docs)
    assert not {d.id for d in training} & {d.id for d in held}
    pairs = pseudo_query_pairs(training, kind="sentences", per_doc=3)
    by_content = {d.content: d for d in training}
    assert {p.document for p in pairs} <= set(by_content)  # no held-out document is a positive (nor a negative)
    for pair in pairs:  # each query is a sentence of its own training document
        doc = by_content[pair.document]
        assert pair.query in split_sentences(doc.text) or pair.query == doc.title.strip()
    held_sentences = {s for d in held for s in split_sentences(d.text)} | {d.title.strip() for d in held}
    training_sentences = {s for d in training for s in split_sentences(d.text)} | {d.title.strip() for d in training}
    assert {p.query for p in pairs} & held_sentences <= training_sentences  # only text a training document has too


def test_a_sentence_of_several_documents_is_no_query():
    boiler = "DESIGN Systematic review and meta-analysis."
    docs = [Document(f"d{i}", f"{boiler} Topic number {i} is studied here at length. It matters a lot for {i}.")
            for i in range(3)]
    queries = {p.query for p in pseudo_query_pairs(docs, kind="sentences", per_doc=5)}
    assert boiler not in queries and len(queries) == 6


def test_unknown_kind_is_an_error(docs):
    with pytest.raises(ValueError, match="unknown pseudo-query kind"):
        pseudo_queries(docs[0], "questions", 3)
