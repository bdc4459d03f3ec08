"""The storefront: `GET /demo`, a page a person opens to try a checkout, and its two assets.

The page (api/static/demo/) is static and talks to the API only through the public HTTP routes a front end
would use: `GET /v1/catalogue` for the inventory, `/v1/checkouts` for the rest. Nothing here is part of the
API contract, so none of it appears in the OpenAPI schema. The files are read from the package, fixed names
only: there is no path parameter that could reach anything else on disk.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static" / "demo"
ASSETS = {"demo.js": "text/javascript; charset=utf-8", "demo.css": "text/css; charset=utf-8"}
# Same origin only: the page loads its own script and style and calls its own API, nothing else.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # A demo changes with the code it ships with: revalidate rather than run yesterday's script.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/demo")
async def storefront() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/demo/static/demo.js")
async def script() -> FileResponse:
    return FileResponse(STATIC / "demo.js", media_type=ASSETS["demo.js"], headers=HEADERS)


@router.get("/demo/static/demo.css")
async def style() -> FileResponse:
    return FileResponse(STATIC / "demo.css", media_type=ASSETS["demo.css"], headers=HEADERS)
