"""API keys: a key in the ``X-API-Key`` header, compared in constant time. Full keys (``RETRIEVER_API_KEY``)
may do everything; search keys (``RETRIEVER_READ_API_KEY``) may only read (search, route, experts, metrics)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from fastapi import HTTPException, Security, status
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"


def api_key_guard(keys: Sequence[str], search_only: Sequence[str] = ()) -> Callable[[str | None], None]:
    """A dependency that accepts a request carrying one of ``keys`` (every request when no key of either kind
    is configured) and refuses one carrying a key of ``search_only`` with 403."""
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (when the service has one)")
    is_open = not keys and not search_only

    def check(given: str | None = Security(header)) -> None:
        if is_open or key_matches(given, keys):
            return
        if key_matches(given, search_only):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key may only search: adding and deleting "
                                "documents needs a key of RETRIEVER_API_KEY")
        problem = "missing API key: send it in" if given is None else "invalid API key in"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"{problem} the {API_KEY_HEADER} header")

    return check


def key_matches(given: str | None, keys: Sequence[str]) -> bool:
    """Whether ``given`` is one of ``keys`` (each compared in constant time)."""
    return given is not None and any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)
