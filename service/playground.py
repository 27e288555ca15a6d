"""The search playground: one static page (``service/static/``) over the REST API, served at ``/`` and ``/ui``.

The page is plain HTML, CSS and JavaScript shipped in the package (no CDN, no build step), so it works
offline. It needs no API key itself: its calls to ``/experts`` and ``/search`` carry the key the user
types, kept in the page only. A strict Content-Security-Policy keeps it to its own files and this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
PAGE = "playground.html"
ASSETS = {"playground.css": "text/css; charset=utf-8", "playground.js": "text/javascript; charset=utf-8"}

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def add_playground_routes(app: FastAPI) -> None:
    """``GET /`` and ``GET /ui``: the playground page; ``GET /ui/<asset>``: its stylesheet and script."""

    def page() -> FileResponse:
        return FileResponse(STATIC / PAGE, media_type="text/html; charset=utf-8", headers=HEADERS)

    for path in ("/", "/ui"):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False, response_class=FileResponse)

    def asset_route(name: str, media_type: str) -> None:
        def asset() -> FileResponse:
            return FileResponse(STATIC / name, media_type=media_type, headers=HEADERS)

        app.add_api_route(f"/ui/{name}", asset, methods=["GET"], include_in_schema=False, response_class=FileResponse)

    for name, media_type in ASSETS.items():
        asset_route(name, media_type)
