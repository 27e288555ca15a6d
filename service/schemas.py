"""Request and response models of the REST service (they are its OpenAPI schema)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, model_validator

from router_retriever.core.errors import InvalidRequestError
from router_retriever.core.types import ExpertInfo, Hit, Mode, Route, SearchResult
from router_retriever.validation import NOT_BLANK_PATTERN, Limits, check_encodable, valid_metadata


class _Request(BaseModel):
    """Requests refuse unknown fields, so a misspelt option is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _as_value_error(check: Callable[[Any], object]) -> Callable[[Any], Any]:
    """A validation-module check as a pydantic validator (pydantic reports ValueErrors as 422 problems)."""

    def validate(value: Any) -> Any:
        try:
            check(value)
        except InvalidRequestError as exc:
            raise ValueError(str(exc)) from exc
        return value

    return validate


Text = Annotated[str, AfterValidator(_as_value_error(lambda text: check_encodable(text, "text")))]
NOT_BLANK: dict[str, Any] = {"pattern": NOT_BLANK_PATTERN}  # in the schema; the server checks the same rule with str.strip()


def _not_blank(message: str) -> AfterValidator:
    """Refuse blank text with ``message`` (what the schema's ``NOT_BLANK`` pattern says, in plain words)."""

    def check(text: str) -> None:
        if not text.strip():
            raise InvalidRequestError(message)

    return AfterValidator(_as_value_error(check))


Query = Annotated[Text, _not_blank("query must be a non-empty string")]
_INTEGRAL = BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)


def integer(low: int, high: int) -> Any:
    """A JSON Schema integer in ``low..high``: 35 and 35.0 (the same JSON number), never "35", 35.5 or true.
    The bounds sit inside the type, so the schema states them even where the field is optional."""
    return Annotated[Annotated[StrictInt, Field(ge=low, le=high)], _INTEGRAL]
Metadata = Annotated[dict[str, Any], AfterValidator(_as_value_error(lambda meta: valid_metadata(meta, "the document")))]
Scalar = Text | int | float | bool | None
FilterValue = Scalar | list[Scalar]


@dataclass(frozen=True)
class RequestModels:
    """The request schemas of one app, with the bounds of its ``Limits`` (so OpenAPI states what is enforced)."""

    search: type[BaseModel]
    batch: type[BaseModel]
    route: type[BaseModel]
    documents: type[BaseModel]


def request_models(limits: Limits, experts: int) -> RequestModels:
    """Request models whose field bounds are ``limits`` (and ``experts``, the most that top-m can fuse)."""
    query_field = Field(min_length=1, max_length=limits.max_query_chars, json_schema_extra=NOT_BLANK,
                        description="Free-text query (not blank).")
    top_m_field = Field(default=None, description="Search the m best-routed experts and fuse their lists (RRF, or soft "
                        "mixing with [router] mix_temperature).")
    TopM = integer(1, experts)
    TopK = integer(1, limits.max_top_k)

    class SearchOptions(_Request):
        """Options shared by single and batch search."""

        top_k: TopK = Field(default=10, description="Hits to return.")  # type: ignore[valid-type]
        expert: Text | None = Field(default=None, description="Force this expert and skip routing.")
        route_top_m: TopM | None = top_m_field  # type: ignore[valid-type]
        filters: dict[Text, FilterValue] | None = Field(
            default=None, description="Metadata equality filters; a list value means 'any of'.")
        with_text: StrictBool = Field(default=True, description="Include each hit's text (false: ids, titles and scores).")
        mode: Mode | None = Field(default=None, description="dense | sparse | hybrid (default: the service's).")
        rerank: StrictBool | None = Field(default=None, description="Rescore the top candidates with the cross-encoder "
                                          "(default: the service's setting).")

    class SearchRequest(SearchOptions):
        query: Query = query_field

    class BatchSearchRequest(SearchOptions):
        queries: list[Annotated[Query, query_field]] = Field(min_length=1, max_length=limits.max_batch, description="Queries.")

    class RouteRequest(_Request):
        query: Query = query_field
        route_top_m: TopM | None = top_m_field  # type: ignore[valid-type]

    class DocumentIn(_Request):
        """A document; its title or its text (or both) must not be blank (the schema's ``anyOf``)."""

        model_config = ConfigDict(json_schema_extra={"anyOf": [
            {"required": [name], "properties": {name: {"pattern": NOT_BLANK_PATTERN}}} for name in ("text", "title")]})

        id: Annotated[Text, _not_blank("document id must not be blank")] = Field(
            min_length=1, max_length=limits.max_id_chars, json_schema_extra=NOT_BLANK,
            description="Document id, unique within the request.")
        title: Text = ""
        text: Text = Field(default="", description="Body; title and text together must not be blank.")
        metadata: Metadata = Field(default_factory=dict, description="JSON object, usable in filters.")

    class DocumentsRequest(_Request):
        documents: list[DocumentIn] = Field(min_length=1, max_length=limits.max_documents,
                                            description="Documents to add or replace (by id); ids must be unique "
                                            "within one request (422 otherwise: JSON Schema cannot say so).")

        @model_validator(mode="after")
        def _unique_ids(self) -> DocumentsRequest:
            seen: set[str] = set()
            for doc in self.documents:
                if doc.id in seen:
                    raise ValueError(f"duplicate document id {doc.id!r}: ids must be unique within a request")
                seen.add(doc.id)
            return self

    return RequestModels(SearchRequest, BatchSearchRequest, RouteRequest, DocumentsRequest)


class RouteOut(BaseModel):
    """The router's decision: chosen experts (best first) and every expert's score."""

    expert: str
    experts: list[str]
    scores: dict[str, float]
    forced: bool
    fallback: bool = Field(default=False, description="unlike every domain's pilots: sent to the router's fallback expert")

    @classmethod
    def of(cls, route: Route) -> RouteOut:
        return cls(expert=route.expert, experts=list(route.experts), scores=route.scores, forced=route.forced,
                   fallback=route.fallback)


class ProvenanceOut(BaseModel):
    retriever: str = Field(description="An expert's name, 'bm25' or 'rerank'.")
    rank: int = Field(description="1-based rank of the hit in that retriever's list.")
    score: float = Field(description="That retriever's own score.")


class HitOut(BaseModel):
    id: str
    score: float = Field(description="The final score (fused, or the cross-encoder's when reranked).")
    title: str
    text: str | None = Field(description="Null when the request set with_text=false.")
    metadata: dict[str, Any]
    expert: str = Field(description="The retriever that ranked this hit best (an expert, or 'bm25').")
    provenance: list[ProvenanceOut] = Field(description="Every retriever that found this hit, with its rank there.")

    @classmethod
    def of(cls, hit: Hit, with_text: bool) -> HitOut:
        return cls(id=hit.id, score=hit.score, title=hit.title, text=hit.text if with_text else None,
                   metadata=hit.metadata, expert=hit.expert,
                   provenance=[ProvenanceOut(retriever=p.retriever, rank=p.rank, score=p.score) for p in hit.provenance])


class SearchResponse(BaseModel):
    query: str
    mode: Mode
    hits: list[HitOut]
    route: RouteOut

    @classmethod
    def of(cls, result: SearchResult, with_text: bool) -> SearchResponse:
        return cls(query=result.query, mode=result.mode, hits=[HitOut.of(h, with_text) for h in result.hits],
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
    dimension: int | None = Field(description="Null until the expert's index is built.")
    index_documents: int
    index_kind: str
    domains: list[str] = Field(description="Pilot domains that route to this expert.")
    routable: bool = Field(description="Whether the router can choose it (it has pilots).")

    @classmethod
    def of(cls, info: ExpertInfo) -> ExpertOut:
        return cls(name=info.name, description=info.description, query_encoder=info.query_encoder,
                   document_encoder=info.document_encoder, dimension=info.dimension,
                   index_documents=info.index_documents, index_kind=info.index_kind, domains=list(info.domains),
                   routable=info.routable)


class ExpertsResponse(BaseModel):
    experts: list[ExpertOut]
    default_route_top_m: int
    routed: bool = Field(description="Whether a pilot library routes queries (else one expert, or name one).")
    modes: list[Mode] = Field(description="Search modes: dense (routed experts), sparse (BM25), hybrid (both fused).")
    default_mode: Mode
    rerank: bool = Field(description="Whether search reranks by default (the cross-encoder second stage).")


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
    missing: dict[str, int] = Field(default_factory=dict, description="Per index, stored documents it has no "
                                    "vector for (not findable; a writer re-encodes them at startup).")
    stale: dict[str, int] = Field(default_factory=dict, description="Per index, vectors of removed documents "
                                  "(harmless: searches drop them).")
    read_only: bool = Field(default=False, description="Whether this server refuses writes (--read-only).")


class ErrorResponse(BaseModel):
    """Every error answer: a readable message, the error kind, and per-field problems for invalid input."""

    detail: str
    error: str
    errors: list[dict[str, Any]] | None = None
