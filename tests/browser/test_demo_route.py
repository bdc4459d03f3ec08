"""`GET /demo` and its assets, without a browser: served from the package, same-origin only, not in the schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, with_test_defaults


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: these routes read files only, nothing the lifespan opens.
    app = create_app(with_test_defaults(Settings(operator_token=OPERATOR_TOKEN)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def test_the_page_and_its_assets_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/demo")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/demo/static/demo.js" in page.text and "/demo/static/demo.css" in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/demo/static/demo.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "/v1/catalogue" in script.text and "Idempotency-Key" in script.text
    style = await client.get("/demo/static/demo.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


async def test_nothing_else_is_reachable_and_the_schema_leaves_the_page_out(client: httpx.AsyncClient) -> None:
    for path in ("/demo/static/index.html", "/demo/static/../routes/demo.py", "/demo/static/%2e%2e/main.py"):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("application/problem+json")
    schema = (await client.get("/openapi.json")).json()
    assert not [path for path in schema["paths"] if path.startswith("/demo")]


def test_the_page_uses_only_its_own_origin() -> None:
    from api.routes.demo import STATIC

    for name in ("index.html", "demo.js", "demo.css"):
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text.replace("https://booking-saga.dev/problems/", ""), name
