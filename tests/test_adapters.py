"""The client and the LangChain and LlamaIndex retrievers against a live server (uvicorn on 127.0.0.1), and
against the same app on Ray Serve (split into router, encoder and shard deployments; a local Ray cluster
started for this module; marked ``ray``)."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from router_retriever import Retriever, load_settings
from router_retriever.client import AsyncRetrieverClient, RetrieverClient, ServiceError
from router_retriever.core.types import Document
from router_retriever.service.app import ServiceConfig, create_app

from conftest import import_or_unavailable, write_config
from service_server import RAY_SPLIT, Served, serve_in_thread, serve_on_ray

KEY = "adapter-key"
SRE_QUERY = "percentage of reads served from InnoDB cache"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["uvicorn", pytest.param("ray", marks=pytest.mark.ray)])
def served(request: pytest.FixtureRequest, built_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over a copy of the session's built slice: uvicorn over a writable retriever (these tests only
    read, but the client's False for deleting an unknown id needs a writer), or the split Ray Serve app
    (read-only: that delete answers 405)."""
    folder = tmp_path_factory.mktemp(f"adapters-{request.param}")
    shutil.copytree(built_config.parent / "data", folder / "data")
    if request.param == "ray":
        import_or_unavailable("ray.serve")
        with serve_on_ray(write_config(folder, RAY_SPLIT), (KEY,)) as base_url:
            yield Served(base_url, writable=False, on_ray=True)
        return
    with closing(Retriever(load_settings(write_config(folder)))) as retriever, \
            serve_in_thread(create_app(retriever, ServiceConfig(api_keys=(KEY,)))) as base_url:
        yield Served(base_url)


@pytest.fixture(scope="module")
def url(served: Served) -> str:
    return served.url


def test_client_returns_the_pipelines_own_results(served: Served, url: str, retriever: Retriever,
                                                  corpus_slice: list[Document]) -> None:
    query = corpus_slice[5].title
    direct = retriever.search(query, top_k=5)
    with RetrieverClient(url, api_key=KEY) as client:
        remote = client.search(query, top_k=5)
        assert [h.id for h in remote.hits] == [h.id for h in direct.hits]
        assert remote.hits[0].id == corpus_slice[5].id and remote.route.expert == direct.route.expert
        assert [r.route.expert for r in client.search_batch([query, SRE_QUERY], top_k=2)] == ["general", "sre"]
        assert client.route(SRE_QUERY).expert == "sre" and client.ready() and client.health()
        assert [e["name"] for e in client.experts()] == ["general", "sre"]
        if served.writable:
            assert not client.delete_document("no-such-document")
        else:
            with pytest.raises(ServiceError, match="read-only") as refused:
                client.delete_document("no-such-document")
            assert refused.value.status_code == 405
        with pytest.raises(ServiceError, match="unknown expert 'legal'") as error:
            client.search(query, expert="legal")
        assert error.value.status_code == 404 and error.value.kind == "UnknownExpertError"
    with RetrieverClient(url, api_key="wrong") as client, pytest.raises(ServiceError, match="invalid API key"):
        client.search(query)


def test_langchain_retriever_returns_the_right_documents(url: str, corpus_slice: list[Document]) -> None:
    from router_retriever.adapters.langchain import RouterRetrieverLangChain

    doc = corpus_slice[9]
    docs = RouterRetrieverLangChain(base_url=url, api_key=KEY, top_k=3).invoke(doc.title)
    assert len(docs) == 3 and docs[0].id == doc.id and docs[0].page_content == doc.content
    assert docs[0].metadata["expert"] == "general" and docs[0].metadata["title"] == doc.title
    forced = RouterRetrieverLangChain(base_url=url, api_key=KEY, top_k=2, expert="sre").invoke(doc.title)
    assert {d.metadata["expert"] for d in forced} == {"sre"}


def test_llamaindex_retriever_returns_the_right_nodes(url: str, corpus_slice: list[Document]) -> None:
    from router_retriever.adapters.llamaindex import RouterRetrieverLlamaIndex

    doc = corpus_slice[9]
    nodes = RouterRetrieverLlamaIndex(base_url=url, api_key=KEY, top_k=3).retrieve(doc.title)
    assert len(nodes) == 3 and nodes[0].node.node_id == doc.id and nodes[0].node.get_content() == doc.content
    assert nodes[0].score == pytest.approx(nodes[0].node.metadata["score"])
    assert nodes[0].score >= nodes[1].score >= nodes[2].score
    sre = RouterRetrieverLlamaIndex(base_url=url, api_key=KEY, top_k=2).retrieve(SRE_QUERY)
    assert {n.node.metadata["expert"] for n in sre} == {"sre"}


@pytest.mark.anyio
async def test_async_client_answers_as_the_sync_client(served: Served, url: str, corpus_slice: list[Document]) -> None:
    query = corpus_slice[5].title
    with RetrieverClient(url, api_key=KEY) as sync:
        expected = sync.search(query, top_k=5)
        expected_batch = sync.search_batch([query, SRE_QUERY], top_k=2, with_text=False)
    async with AsyncRetrieverClient(url, api_key=KEY) as client:
        result = await client.search(query, top_k=5)
        assert result == expected and result.hits[0].id == corpus_slice[5].id
        batch = await client.search_batch([query, SRE_QUERY], top_k=2, with_text=False)
        assert batch == expected_batch and [r.route.expert for r in batch] == ["general", "sre"]
        assert all(hit.text == "" for r in batch for hit in r.hits)
        route = await client.route(SRE_QUERY, route_top_m=2)
        assert route.expert == "sre" and set(route.scores) == {"general", "sre"}
        assert [e["name"] for e in await client.experts()] == ["general", "sre"]
        assert await client.health() and await client.ready()
        if served.writable:
            assert not await client.delete_document("no-such-document")
        else:
            with pytest.raises(ServiceError, match="read-only") as refused:
                await client.delete_document("no-such-document")
            assert refused.value.status_code == 405
        with pytest.raises(ServiceError, match="unknown expert 'legal'") as error:
            await client.search(query, expert="legal")
        assert error.value.status_code == 404 and error.value.kind == "UnknownExpertError"
        with pytest.raises(ServiceError) as error:
            await client.search_batch([query] * 2, top_k=0)
        assert error.value.status_code == 422 and "top_k" in error.value.detail
    async with AsyncRetrieverClient(url, api_key="wrong") as client:
        with pytest.raises(ServiceError, match="invalid API key") as error:
            await client.search(query)
        assert error.value.status_code == 401 and await client.health()


@pytest.mark.anyio
async def test_async_client_adds_and_deletes_documents(fresh_retriever: Retriever) -> None:
    doc = Document(id="sre/runbook 1", title="Pod eviction runbook",
                   text="Drain the node, respect the PodDisruptionBudget, then cordon it.", metadata={"team": "sre"})
    with serve_in_thread(create_app(fresh_retriever, ServiceConfig(api_keys=(KEY,)))) as base_url:
        async with AsyncRetrieverClient(base_url, api_key=KEY) as client:
            assert await client.add_documents([doc]) == 1
            top = (await client.search("PodDisruptionBudget node drain runbook", top_k=1)).hits[0]
            assert top.id == doc.id and top.metadata == {"team": "sre"} and top.text == doc.text
            assert await client.delete_document(doc.id)
            hits = (await client.search("PodDisruptionBudget node drain runbook", top_k=20)).hits
            assert doc.id not in {h.id for h in hits}
            assert not await client.delete_document(doc.id)


@pytest.mark.anyio
async def test_async_retrievers_return_the_sync_results(url: str, corpus_slice: list[Document]) -> None:
    from router_retriever.adapters.langchain import RouterRetrieverLangChain
    from router_retriever.adapters.llamaindex import RouterRetrieverLlamaIndex

    queries = [corpus_slice[9].title, SRE_QUERY, corpus_slice[20].title]
    langchain = RouterRetrieverLangChain(base_url=url, api_key=KEY, top_k=3)
    llamaindex = RouterRetrieverLlamaIndex(base_url=url, api_key=KEY, top_k=3)
    sync_docs = [langchain.invoke(q) for q in queries]
    sync_nodes = [llamaindex.retrieve(q) for q in queries]
    async_docs = await asyncio.gather(*(langchain.ainvoke(q) for q in queries))
    async_nodes = await asyncio.gather(*(llamaindex.aretrieve(q) for q in queries))
    # concurrent queries are batched by the service: the same ids, scores equal up to float rounding
    assert [[d.id for d in docs] for docs in async_docs] == [[d.id for d in docs] for docs in sync_docs]
    assert [d.page_content for d in async_docs[0]] == [d.page_content for d in sync_docs[0]]
    assert async_docs[0][0].id == corpus_slice[9].id and async_docs[1][0].metadata["expert"] == "sre"
    assert [[n.node.node_id for n in nodes] for nodes in async_nodes] == \
        [[n.node.node_id for n in nodes] for nodes in sync_nodes]
    assert [n.score for nodes in async_nodes for n in nodes] == \
        pytest.approx([n.score for nodes in sync_nodes for n in nodes], abs=1e-5)
    with pytest.raises(ServiceError, match="unknown expert 'legal'"):
        await RouterRetrieverLangChain(base_url=url, api_key=KEY, expert="legal").ainvoke(SRE_QUERY)


def test_async_retrievers_work_across_event_loops(url: str, corpus_slice: list[Document]) -> None:
    from router_retriever.adapters.langchain import RouterRetrieverLangChain
    from router_retriever.adapters.llamaindex import RouterRetrieverLlamaIndex

    doc = corpus_slice[9]
    langchain = RouterRetrieverLangChain(base_url=url, api_key=KEY, top_k=2)
    llamaindex = RouterRetrieverLlamaIndex(base_url=url, api_key=KEY, top_k=2)
    for _ in range(2):  # each asyncio.run is a new loop; the retrievers hold no loop-bound client
        assert asyncio.run(langchain.ainvoke(doc.title))[0].id == doc.id
        assert asyncio.run(llamaindex.aretrieve(doc.title))[0].node.node_id == doc.id


@pytest.mark.parametrize("module, missing, extra", [
    ("router_retriever.adapters.langchain", "langchain_core.retrievers", "router-retriever[langchain]"),
    ("router_retriever.adapters.llamaindex", "llama_index.core.retrievers", "router-retriever[llamaindex]"),
])
def test_missing_extra_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch, module: str, missing: str,
                                           extra: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        importlib.import_module(module)
