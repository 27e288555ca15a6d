"""Request and response models of the REST service (they are its OpenAPI schema)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from core.types import Hit, Route, SearchResult
from retriever.config import MAX_TOP_K
from retriever.pipeline import MAX_QUERY_CHARS

MAX_ID_CHARS = 512


class _Request(BaseModel):
    """Requests refuse unknown fields, so a misspelt option is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _utf8(text: str) -> str:
    """Refuse strings with lone surrogates: valid JSON, but neither the tokenizers nor SQLite take them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogate code points)") from exc
    return text


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse metadata that could not be answered back as strict JSON (NaN, infinities, lone surrogates)."""
    try:
        _utf8(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except ValueError as exc:
        raise ValueError(f"metadata must be strict JSON: {exc}") from exc
    return value


Text = Annotated[str, AfterValidator(_utf8)]
Metadata = Annotated[dict[str, Any], AfterValidator(_json_object)]
Scalar = Text | int | float | bool | None
FilterValue = Scalar | list[Scalar]

Query = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Free-text query (not blank).")
TopK = Field(default=10, ge=1, le=MAX_TOP_K, description="Hits to return (at most the service's max_top_k).")
Expert = Field(default=None, description="Force this expert and skip routing.")
RouteTopM = Field(default=None, ge=1, description="Search the m best-routed experts and fuse their lists (RRF).")
Filters = Field(default=None, description="Metadata equality filters; a list value means 'any of'.")
WithText = Field(default=True, description="Include each hit's text (false: ids, titles and scores only).")


class SearchOptions(_Request):
    """Options shared by single and batch search."""

    top_k: StrictInt = TopK
    expert: Text | None = Expert
    route_top_m: StrictInt | None = RouteTopM
    filters: dict[Text, FilterValue] | None = Filters
    with_text: bool = WithText


class SearchRequest(SearchOptions):
    query: Text = Query


class BatchSearchRequest(SearchOptions):
    queries: list[Annotated[Text, Query]] = Field(min_length=1, description="Queries (at most max_batch).")


class RouteRequest(_Request):
    query: Text = Query
    route_top_m: StrictInt | None = RouteTopM


class DocumentIn(_Request):
    id: Text = Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"\S", description="Unique document id.")
    title: Text = ""
    text: Text = Field(default="", description="Body; title and text together must not be blank.")
    metadata: Metadata = Field(default_factory=dict, description="JSON object, usable in filters.")


class DocumentsRequest(_Request):
    documents: list[DocumentIn] = Field(min_length=1, description="Documents to add or replace (by id).")


class RouteOut(BaseModel):
    """The router's decision: chosen experts (best first) and every expert's score."""

    expert: str
    experts: list[str]
    scores: dict[str, float]
    forced: bool

    @classmethod
    def of(cls, route: Route) -> RouteOut:
        return cls(expert=route.expert, experts=list(route.experts), scores=route.scores, forced=route.forced)


class HitOut(BaseModel):
    id: str
    score: float
    title: str
    text: str | None = Field(description="Null when the request set with_text=false.")
    metadata: dict[str, Any]
    expert: str = Field(description="The expert whose index produced this hit.")

    @classmethod
    def of(cls, hit: Hit, with_text: bool) -> HitOut:
        return cls(id=hit.id, score=hit.score, title=hit.title, text=hit.text if with_text else None,
                   metadata=hit.metadata, expert=hit.expert)


class SearchResponse(BaseModel):
    query: str
    hits: list[HitOut]
    route: RouteOut

    @classmethod
    def of(cls, result: SearchResult, with_text: bool) -> SearchResponse:
        return cls(query=result.query, hits=[HitOut.of(h, with_text) for h in result.hits],
                   route=RouteOut.of(result.route))


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse]


class RouteResponse(BaseModel):
    query: str
    route: RouteOut


class ExpertOut(BaseModel):
    name: str
    description: str
    query_encoder: str
    document_encoder: str
    dimension: int
    index_documents: int


class ExpertsResponse(BaseModel):
    experts: list[ExpertOut]
    default_route_top_m: int
    routed: bool = Field(description="Whether a pilot library routes queries (else one expert, or name one).")


class DocumentsResponse(BaseModel):
    upserted: int
    documents: int = Field(description="Documents in the store after the request.")


class DeleteResponse(BaseModel):
    deleted: str
    documents: int


class HealthResponse(BaseModel):
    status: str = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    detail: str
    documents: int = 0
    indexes: dict[str, int] = Field(default_factory=dict, description="Vectors per document-encoder index.")


class ErrorResponse(BaseModel):
    """Every error answer: a readable message, the error kind, and per-field problems for invalid input."""

    detail: str
    error: str
    errors: list[dict[str, Any]] | None = None
