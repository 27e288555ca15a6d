"""A LlamaIndex retriever over the REST service: ``pip install 'router-retriever[llamaindex]'``.

    retriever = RouterRetrieverLlamaIndex(base_url="http://127.0.0.1:8000", top_k=5)
    nodes = retriever.retrieve("vitamin D and birth weight")
    nodes = await retriever.aretrieve("vitamin D and birth weight")
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the LlamaIndex adapter needs llama-index-core: pip install 'router-retriever[llamaindex]'") from exc

from router_retriever.adapters import hit_content, hit_metadata
from router_retriever.client import AsyncRetrieverClient, RetrieverClient
from router_retriever.core.types import Mode, SearchResult


class RouterRetrieverLlamaIndex(BaseRetriever):
    """Nodes from ``POST /search``: one ``TextNode`` per hit (``id_`` = document id), scored.

    The async path opens an ``AsyncRetrieverClient`` per call and closes it after: an httpx async client is
    bound to one event loop, and a per-call client is safe under any loop (at the cost of a new connection).
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, top_k: int = 10,
                 expert: str | None = None, route_top_m: int | None = None,
                 filters: Mapping[str, Any] | None = None, timeout: float = 30.0, mode: Mode | None = None,
                 rerank: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._server: tuple[str, str | None, float] = (base_url, api_key, timeout)
        self._client = RetrieverClient(*self._server)
        weakref.finalize(self, self._client.close)  # its connection pool closes with the retriever
        self._options: dict[str, Any] = {"top_k": top_k, "expert": expert, "route_top_m": route_top_m, "filters": filters,
                                         "mode": mode, "rerank": rerank}

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return _nodes(self._client.search(query_bundle.query_str, **self._options))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        async with AsyncRetrieverClient(*self._server) as client:
            return _nodes(await client.search(query_bundle.query_str, **self._options))


def _nodes(result: SearchResult) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(id_=hit.id, text=hit_content(hit), metadata=hit_metadata(hit)),
                          score=hit.score) for hit in result.hits]
