"""Every error the engine raises on bad input: one base class, one subclass per problem.

The service maps each class to an HTTP status (``router_retriever.service.errors``); the CLI prints the message without a
traceback.
"""


class RetrieverError(Exception):
    """Base class for errors caused by bad input, configuration or data."""


class InvalidRequestError(RetrieverError):
    """A query, top_k, filter or document that cannot be served (empty query, top_k out of range, ...)."""


class UnknownExpertError(RetrieverError):
    """An expert name that is not configured."""


class ConfigError(RetrieverError):
    """A configuration file that is missing, malformed or inconsistent."""


class ModelNotFoundError(RetrieverError):
    """A model folder, package or adapter that cannot be found or loaded."""


class CorpusError(RetrieverError):
    """A corpus file that is missing or malformed (bad JSON, duplicate or empty ids, ...)."""


class IndexMismatchError(RetrieverError):
    """An index built by another model, dimension or index kind than its expert's configuration says."""


class IndexCorruptError(RetrieverError):
    """An index or manifest file that is truncated, corrupt or does not match its checksum."""


class StoreCorruptError(IndexCorruptError):
    """A document store (``docs.sqlite``) that SQLite cannot read: not a database, truncated or malformed."""


class IndexNotBuiltError(RetrieverError):
    """An index that has not been built yet."""


class DataDirectoryLockedError(RetrieverError):
    """A second writer on a data directory: another process (named in the message) holds its writer lock."""


class ReadOnlyError(RetrieverError):
    """A write through a retriever opened read-only (``read_only=True``, ``retriever serve --read-only``)."""


class UnavailableError(RetrieverError):
    """A part of the engine that runs elsewhere (a Ray Serve deployment: a query encoder, an index shard) died or
    did not answer in time: the request may be retried shortly."""
