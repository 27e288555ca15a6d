"""The client and the LangChain and LlamaIndex retrievers against a live server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest

from retriever.client import RetrieverClient, ServiceError
from retriever.pipeline import SearchPipeline
from retriever.types import Document
from service.app import ServiceConfig, create_app

from service_server import serve_in_thread

KEY = "adapter-key"
SRE_QUERY = "percentage of reads served from InnoDB cache"


@pytest.fixture(scope="module")
def url(pipeline: SearchPipeline) -> Iterator[str]:
    """A read-only server over the session's built slice."""
    with serve_in_thread(create_app(pipeline, ServiceConfig(api_keys=(KEY,)))) as base_url:
        yield base_url


def test_client_returns_the_pipelines_own_results(url: str, pipeline: SearchPipeline,
                                                  corpus_slice: list[Document]) -> None:
    query = corpus_slice[5].title
    direct = pipeline.search(query, top_k=5)
    with RetrieverClient(url, api_key=KEY) as client:
        remote = client.search(query, top_k=5)
        assert [h.id for h in remote.hits] == [h.id for h in direct.hits]
        assert remote.hits[0].id == corpus_slice[5].id and remote.route.expert == direct.route.expert
        assert [r.route.expert for r in client.search_batch([query, SRE_QUERY], top_k=2)] == ["general", "sre"]
        assert client.route(SRE_QUERY).expert == "sre" and client.ready() and client.health()
        assert [e["name"] for e in client.experts()] == ["general", "sre"]
        assert not client.delete_document("no-such-document")
        with pytest.raises(ServiceError, match="unknown expert 'legal'") as error:
            client.search(query, expert="legal")
        assert error.value.status_code == 404 and error.value.kind == "UnknownExpertError"
    with RetrieverClient(url, api_key="wrong") as client, pytest.raises(ServiceError, match="invalid API key"):
        client.search(query)


def test_langchain_retriever_returns_the_right_documents(url: str, corpus_slice: list[Document]) -> None:
    from retriever.adapters.langchain import RouterRetrieverLangChain

    doc = corpus_slice[9]
    docs = RouterRetrieverLangChain(base_url=url, api_key=KEY, top_k=3).invoke(doc.title)
    assert len(docs) == 3 and docs[0].id == doc.id and docs[0].page_content == doc.content
    assert docs[0].metadata["expert"] == "general" and docs[0].metadata["title"] == doc.title
    forced = RouterRetrieverLangChain(base_url=url, api_key=KEY, top_k=2, expert="sre").invoke(doc.title)
    assert {d.metadata["expert"] for d in forced} == {"sre"}


def test_llamaindex_retriever_returns_the_right_nodes(url: str, corpus_slice: list[Document]) -> None:
    from retriever.adapters.llamaindex import RouterRetrieverLlamaIndex

    doc = corpus_slice[9]
    nodes = RouterRetrieverLlamaIndex(base_url=url, api_key=KEY, top_k=3).retrieve(doc.title)
    assert len(nodes) == 3 and nodes[0].node.node_id == doc.id and nodes[0].node.get_content() == doc.content
    assert nodes[0].score == pytest.approx(nodes[0].node.metadata["score"])
    assert nodes[0].score >= nodes[1].score >= nodes[2].score
    sre = RouterRetrieverLlamaIndex(base_url=url, api_key=KEY, top_k=2).retrieve(SRE_QUERY)
    assert {n.node.metadata["expert"] for n in sre} == {"sre"}


@pytest.mark.parametrize("module, missing, extra", [
    ("retriever.adapters.langchain", "langchain_core.retrievers", "router-retriever[langchain]"),
    ("retriever.adapters.llamaindex", "llama_index.core.retrievers", "router-retriever[llamaindex]"),
])
def test_missing_extra_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch, module: str, missing: str,
                                           extra: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        importlib.import_module(module)
