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
        if not encoded or (given is not None and any(hmac.compare_digest(given.encode(), k) for k in encoded)):
            return
        problem = "missing API key: send it in" if given is None else "invalid API key in"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"{problem} the {API_KEY_HEADER} header")

    return check
