"""Multi-expert dense retrieval: domain experts, per-encoder FAISS indexes, a pilot-embedding router.

The public API::

    from retriever import Retriever, Document
    with Retriever.from_config("experts.toml") as retriever:
        retriever.build(docs)
        result = retriever.search("statins and LDL", top_k=5)
"""

from importlib.metadata import version
from typing import TYPE_CHECKING

from core.errors import (
    ConfigError,
    CorpusError,
    DataDirectoryLockedError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotBuiltError,
    InvalidRequestError,
    ModelNotFoundError,
    ReadOnlyError,
    RetrieverError,
    UnavailableError,
    UnknownExpertError,
)
from core.types import MODES, SPARSE, Document, ExpertInfo, Hit, Mode, Provenance, Route, SearchResult, Status
from indexes.lock import WriterLock
from retriever.api import Retriever
from retriever.batching import QueryBatcher
from retriever.config import Settings, load_settings
from retriever.corpus import QRELS_HEADER, BeirFolder, iter_jsonl, read_corpora, read_corpus, read_qrels, read_queries
from retriever.experts import router_identity
from retriever.extras import require_extra
from retriever.fusion import RRF_K, reciprocal_rank_fusion, weighted_fusion
from retriever.locations import resolve_location, split_spec
from retriever.metrics import DEFAULT_MEASURES, HEADLINE, EvalResult, evaluate
from retriever.parts import LocalParts, Parts
from retriever.pilot_building import domain_queries
from retriever.pilots import PilotLibrary
from retriever.ray_cluster import import_ray, ray_cluster
from retriever.router import PilotRouter
from retriever.validation import NOT_BLANK_PATTERN, Limits, check_encodable, valid_metadata

__version__ = version("router-retriever")

if TYPE_CHECKING:
    from retriever.training import is_held_out, pairs_from_corpus  # noqa: F401 (listed in __all__ through _TRAINING)

_TRAINING = ("is_held_out", "pairs_from_corpus")  # from retriever.training (torch, peft): imported on first use

__all__ = [  # the engine (first line) and the toolkit the evaluation and benchmarks build on
    "MODES", "SPARSE", "Document", "ExpertInfo", "Hit", "Mode", "Provenance", "Retriever", "Route", "SearchResult",
    "Settings", "Status", "load_settings",
    "ConfigError", "CorpusError", "IndexCorruptError", "IndexMismatchError", "IndexNotBuiltError",
    "InvalidRequestError", "ModelNotFoundError", "RetrieverError", "UnavailableError", "UnknownExpertError",
    "DataDirectoryLockedError", "ReadOnlyError", "WriterLock",
    "DEFAULT_MEASURES", "HEADLINE", "NOT_BLANK_PATTERN", "QRELS_HEADER", "RRF_K", "BeirFolder", "EvalResult", "Limits", "PilotLibrary",
    "PilotRouter", "QueryBatcher", "__version__", "check_encodable", "domain_queries", "evaluate", "iter_jsonl", "read_corpora",
    "read_corpus", "read_qrels", "read_queries", "reciprocal_rank_fusion", "require_extra", "resolve_location", "router_identity",
    "split_spec",
    "valid_metadata", "weighted_fusion", "import_ray", "ray_cluster", "LocalParts", "Parts", *_TRAINING,
]


def __getattr__(name: str) -> object:
    if name in _TRAINING:
        from retriever import training

        return getattr(training, name)
    raise AttributeError(f"module 'retriever' has no attribute {name!r}")
