"""A LangChain retriever over the REST service: ``pip install 'router-retriever[langchain]'``.

    retriever = RouterRetrieverLangChain(base_url="http://127.0.0.1:8000", top_k=5)
    docs = retriever.invoke("vitamin D and birth weight")
    docs = await retriever.ainvoke("vitamin D and birth weight")
"""

from __future__ import annotations

import weakref
from typing import Any

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the LangChain adapter needs langchain-core: pip install 'router-retriever[langchain]'") from exc
from pydantic import PrivateAttr

from router_retriever.adapters import hit_content, hit_metadata
from router_retriever.client import AsyncRetrieverClient, RetrieverClient
from router_retriever.core.types import Mode, SearchResult


class RouterRetrieverLangChain(BaseRetriever):
    """Documents from ``POST /search``: routed (or forced) expert, hits as LangChain documents.

    Each document's metadata holds the hit's own metadata plus ``id``, ``title``, ``score`` and ``expert``.
    The async path opens an ``AsyncRetrieverClient`` per call and closes it after: an httpx async client is
    bound to one event loop, and a per-call client is safe under any loop (at the cost of a new connection).
    """

    base_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    top_k: int = 10
    expert: str | None = None
    route_top_m: int | None = None
    filters: dict[str, Any] | None = None
    mode: Mode | None = None
    rerank: bool | None = None
    timeout: float = 30.0
    _client: RetrieverClient = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        self._client = RetrieverClient(self.base_url, self.api_key, self.timeout)
        weakref.finalize(self, self._client.close)  # its connection pool closes with the retriever

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return _documents(self._client.search(query, self.top_k, expert=self.expert, route_top_m=self.route_top_m,
                                              filters=self.filters, mode=self.mode, rerank=self.rerank))

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        async with AsyncRetrieverClient(self.base_url, self.api_key, self.timeout) as client:
            return _documents(await client.search(query, self.top_k, expert=self.expert, route_top_m=self.route_top_m,
                                                  filters=self.filters, mode=self.mode, rerank=self.rerank))


def _documents(result: SearchResult) -> list[Document]:
    return [Document(id=hit.id, page_content=hit_content(hit), metadata=hit_metadata(hit)) for hit in result.hits]
