"""HTTP status of every engine error: the one place where errors meet HTTP."""

from __future__ import annotations

from core.errors import (
    ConfigError,
    CorpusError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotBuiltError,
    InvalidRequestError,
    ModelNotFoundError,
    RetrieverError,
    UnknownExpertError,
)


class NotReadyError(RetrieverError):
    """The engine is still loading, or failed to load."""


STATUS: dict[type[RetrieverError], int] = {
    InvalidRequestError: 422,
    UnknownExpertError: 404,
    IndexMismatchError: 409,
    IndexCorruptError: 503,  # the service cannot answer until the index is rebuilt
    IndexNotBuiltError: 503,
    NotReadyError: 503,
    ConfigError: 400,
    ModelNotFoundError: 400,
    CorpusError: 400,
}


def http_status(error: RetrieverError) -> int:
    """The status of the most specific class of ``error`` that has one (400 for any other engine error)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400
