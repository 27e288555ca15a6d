"""router-retriever: multi-expert dense retrieval (domain experts, per-encoder FAISS indexes, a pilot-embedding router).

The public API is ``__all__``: the engine, its settings, what it takes and returns, the REST clients and the
errors a caller can catch::

    from router_retriever import Document, Retriever
    with Retriever.from_config("experts.toml") as retriever:
        retriever.build(docs)
        result = retriever.search("statins and LDL", top_k=5)

Each name is imported on first use (PEP 562), so ``from router_retriever import RetrieverClient`` (or
``import router_retriever.client``) loads httpx and nothing of the engine: no FAISS, bm25s, ONNX Runtime or torch.
The rest is imported from its module: ``router_retriever.corpus`` (BEIR folders), ``router_retriever.metrics``
(``evaluate``), ``router_retriever.locations``, ``router_retriever.core.types``, and the subpackages
``encoding``, ``routing``, ``training`` and ``ray`` (ARCHITECTURE.md has the module map).
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router_retriever.api import Retriever
    from router_retriever.client import AsyncRetrieverClient, RetrieverClient
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
    from router_retriever.core.types import Document, Hit, Route, SearchResult

__version__ = version("router-retriever")

_MODULES = {  # each public name -> the module that defines it
    "Retriever": "router_retriever.api",
    "Settings": "router_retriever.config",
    "load_settings": "router_retriever.config",
    "Document": "router_retriever.core.types",
    "Hit": "router_retriever.core.types",
    "SearchResult": "router_retriever.core.types",
    "Route": "router_retriever.core.types",
    "RetrieverClient": "router_retriever.client",
    "AsyncRetrieverClient": "router_retriever.client",
    **dict.fromkeys(("RetrieverError", "ConfigError", "CorpusError", "InvalidRequestError", "UnknownExpertError",
                     "ModelNotFoundError", "IndexNotBuiltError", "IndexMismatchError", "IndexCorruptError", "ReadOnlyError",
                     "DataDirectoryLockedError", "UnavailableError"), "router_retriever.core.errors"),
}

__all__ = [  # noqa: RUF022 (grouped by kind, not sorted)
    "Retriever", "Settings", "load_settings",  # the engine and its configuration
    "Document", "Hit", "SearchResult", "Route",  # what it takes and returns
    "RetrieverClient", "AsyncRetrieverClient",  # the REST service's clients (httpx only)
    "RetrieverError", "ConfigError", "CorpusError", "InvalidRequestError", "UnknownExpertError", "ModelNotFoundError",
    "IndexNotBuiltError", "IndexMismatchError", "IndexCorruptError", "ReadOnlyError", "DataDirectoryLockedError",
    "UnavailableError",  # the error classes a call can raise (router_retriever.core.errors)
    "__version__",
]


def __getattr__(name: str) -> object:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
