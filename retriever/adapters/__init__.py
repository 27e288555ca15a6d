"""RAG framework retrievers that call the REST service: ``langchain`` and ``llamaindex`` (optional extras)."""

from __future__ import annotations

from router_retriever.core.types import Document, Hit


def hit_metadata(hit: Hit) -> dict[str, object]:
    """A hit's document metadata plus its id, title, score, the retriever that ranked it best and every
    retriever that found it (``provenance``: name and rank)."""
    return {**hit.metadata, "id": hit.id, "title": hit.title, "score": hit.score, "expert": hit.expert,
            "provenance": [{"retriever": p.retriever, "rank": p.rank} for p in hit.provenance]}


def hit_content(hit: Hit) -> str:
    """Title and text as one passage, as the document encoders saw it."""
    return Document(id=hit.id, text=hit.text, title=hit.title).content
