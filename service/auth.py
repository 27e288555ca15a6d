"""Optional API-key authentication: a key in the ``X-API-Key`` header, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from fastapi import HTTPException, Security, status
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"


def api_key_guard(keys: Sequence[str]) -> Callable[[str | None], None]:
    """A dependency that accepts a request carrying one of ``keys`` (every request when there are none)."""
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (when the service has one)")
    encoded = [key.encode() for key in keys]

    def check(given: str | None = Security(header)) -> None:
        if not encoded:
            return
        if given is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing API key: send it in the {API_KEY_HEADER} header")
        if not any(hmac.compare_digest(given.encode(), key) for key in encoded):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid API key in the {API_KEY_HEADER} header")

    return check
