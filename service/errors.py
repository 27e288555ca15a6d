"""HTTP status of every engine error: the one place where errors meet HTTP."""

from __future__ import annotations

import router_retriever as engine


class NotReadyError(engine.RetrieverError):
    """The engine is still loading, or failed to load."""


STATUS: dict[type[engine.RetrieverError], int] = {
    engine.InvalidRequestError: 422,
    engine.UnknownExpertError: 404,
    engine.IndexMismatchError: 409,
    engine.IndexCorruptError: 503,  # the service cannot answer until the index is rebuilt
    engine.IndexNotBuiltError: 503,
    NotReadyError: 503,
    engine.ConfigError: 400,
    engine.ModelNotFoundError: 400,
    engine.CorpusError: 422,  # duplicate or empty ids in a request: invalid like every other bad body
    engine.ReadOnlyError: 405,  # a write to `retriever serve --read-only`
    engine.DataDirectoryLockedError: 409,
    engine.UnavailableError: 503,  # a Serve deployment (encoder, shard) died or is late: Retry-After
}
RETRY_AFTER_S = 1  # the Retry-After of a 503 (loading, or a part of the engine restarting)


def http_status(error: engine.RetrieverError) -> int:
    """The status of the most specific class of ``error`` that has one (400 for any other engine error)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400
