"""Input checks of the engine, one function per rule, with their limits from one settings object.

The Python API, the CLI and the REST service all pass through these functions; the service's request
schemas take their bounds from the same ``Limits``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from router_retriever.core.errors import CorpusError, InvalidRequestError
from router_retriever.core.types import MODES, Document, Mode

WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what str.strip() removes
NOT_BLANK_PATTERN = "[^" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"
"""A regular expression (the same in Python, JSON Schema and pydantic's Rust engine) that matches text
with a character ``str.strip()`` keeps: the "not blank" rule of queries, ids and document content."""


class Limits(BaseModel):
    """Request limits (the ``[limits]`` config table; ``RETRIEVER_MAX_*`` environment variables override)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_query_chars: int = Field(default=10_000, gt=0, description="characters per query")
    max_top_k: int = Field(default=100, gt=0, description="hits per query (top_k)")
    max_batch: int = Field(default=64, gt=0, description="queries per batch request")
    max_documents: int = Field(default=256, gt=0, description="documents per add request")
    max_id_chars: int = Field(default=512, gt=0, description="characters per document id")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="REST request body size, in bytes")


def check_encodable(text: str, what: str) -> None:
    """Reject text the tokenizer and SQLite cannot take (lone UTF-16 surrogates, valid in JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(f"{what} is not valid Unicode text: {exc.reason} at position {exc.start}") from exc


def valid_query(query: object, limits: Limits) -> str:
    """A non-blank, encodable string of at most ``max_query_chars``."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequestError("query must be a non-empty string")
    if len(query) > limits.max_query_chars:
        raise InvalidRequestError(f"query is longer than {limits.max_query_chars} characters")
    check_encodable(query, "query")
    return query


def valid_queries(queries: object, limits: Limits) -> list[str]:
    """A list of valid queries (not one bare string)."""
    if isinstance(queries, str) or not isinstance(queries, Sequence):
        raise InvalidRequestError("search_many takes a list of queries, not one string")
    return [valid_query(q, limits) for q in queries]


def valid_top_k(top_k: object, limits: Limits, name: str = "top_k") -> int:
    """An integer (not a bool) in ``1..max_top_k``."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= limits.max_top_k:
        raise InvalidRequestError(f"{name} must be an integer between 1 and {limits.max_top_k} (got {top_k!r})")
    return top_k


def valid_top_m(top_m: object, experts: int, name: str = "top_m") -> int:
    """An integer in ``1..experts`` (how many routed experts to search and fuse)."""
    if not isinstance(top_m, int) or isinstance(top_m, bool) or not 1 <= top_m <= experts:
        raise InvalidRequestError(f"{name} must be between 1 and {experts} (got {top_m!r})")
    return top_m


def valid_mode(mode: object) -> Mode:
    """One of ``dense``, ``sparse``, ``hybrid``."""
    for known in MODES:
        if mode == known:
            return known
    raise InvalidRequestError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")


def valid_metadata(metadata: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """Metadata that can be answered back as strict JSON (no NaN or infinities, encodable strings)."""
    try:
        check_encodable(json.dumps(metadata, ensure_ascii=False, allow_nan=False), f"metadata of {what}")
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"metadata of {what} is not plain finite JSON: {exc}") from exc
    return metadata


def check_unique_ids(docs: Iterable[Document], where: str) -> None:
    """Raise a CorpusError naming the first duplicate or empty document id."""
    seen: set[str] = set()
    for doc in docs:
        if not doc.id.strip():
            raise CorpusError(f"{where}: a document has an empty id")
        if doc.id in seen:
            raise CorpusError(f"{where}: duplicate document id {doc.id!r}")
        seen.add(doc.id)


def valid_documents(docs: Iterable[Document], limits: Limits) -> list[Document]:
    """Unique non-empty ids, some text, encodable strings, JSON-safe (finite) metadata."""
    docs = list(docs)
    check_unique_ids(docs, "request")
    for doc in docs:
        if len(doc.id) > limits.max_id_chars:
            raise InvalidRequestError(f"document id {doc.id[:40]!r}... is longer than {limits.max_id_chars} characters")
        if not doc.content.strip():
            raise InvalidRequestError(f"document {doc.id!r} needs a non-empty title or text")
        check_encodable(f"{doc.id}{doc.content}", f"document {doc.id!r}")
        valid_metadata(doc.metadata, f"document {doc.id!r}")
    return docs


def valid_ids(ids: Iterable[str]) -> list[str]:
    """Document ids that are encodable strings."""
    ids = list(ids)
    for doc_id in ids:
        check_encodable(doc_id, f"document id {doc_id!r}")
    return ids

