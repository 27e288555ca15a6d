"""Multi-expert dense retrieval: domain experts, per-encoder FAISS indexes, a pilot-embedding router.

The public API::

    from router_retriever.api import Retriever
    from router_retriever.core.types import Document
    with Retriever.from_config("experts.toml") as retriever:
        retriever.build(docs)
        result = retriever.search("statins and LDL", top_k=5)
"""

from importlib.metadata import version
from typing import TYPE_CHECKING

from router_retriever.api import Retriever
from router_retriever.batching import QueryBatcher
from router_retriever.config import Settings, load_settings
from router_retriever.core.errors import (
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
from router_retriever.core.types import MODES, SPARSE, Document, ExpertInfo, Hit, Mode, Provenance, Route, SearchResult, Status
from router_retriever.corpus import QRELS_HEADER, BeirFolder, iter_jsonl, read_corpora, read_corpus, read_qrels, read_queries
from router_retriever.experts import router_identity
from router_retriever.extras import require_extra
from router_retriever.indexes.lock import WriterLock
from router_retriever.locations import resolve_location, split_spec
from router_retriever.metrics import DEFAULT_MEASURES, HEADLINE, EvalResult, evaluate
from router_retriever.parts import LocalParts, Parts
from router_retriever.ray.cluster import import_ray, ray_cluster
from router_retriever.routing.fusion import RRF_K, reciprocal_rank_fusion, weighted_fusion
from router_retriever.routing.pilot_building import domain_queries
from router_retriever.routing.pilots import PilotLibrary
from router_retriever.routing.router import PilotRouter
from router_retriever.validation import NOT_BLANK_PATTERN, Limits, check_encodable, valid_metadata

__version__ = version("router-retriever")

if TYPE_CHECKING:
    from router_retriever.training.trainer import is_held_out, pairs_from_corpus  # noqa: F401 (listed in __all__ through _TRAINING)

_TRAINING = ("is_held_out", "pairs_from_corpus")  # from router_retriever.training.trainer (torch, peft): imported on first use

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
        from router_retriever.training import trainer as training

        return getattr(training, name)
    raise AttributeError(f"module 'retriever' has no attribute {name!r}")
