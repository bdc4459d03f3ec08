"""The relay's HTTP client (aiohttp, services/events/relay.py) and httpx (the bench's and the chaos tool's) make no
import per request once warm.

httpcore asks for sniffio whenever it makes a lock or a cancel shield, i.e. several times per request; without
sniffio installed (anyio no longer brings it) every ask is a failed import that searches sys.path anew, which
cost the relay about a tenth of its CPU per webhook (encode/httpcore#1103). pyproject.toml lists sniffio for that
reason; this fails if it goes missing from an install, or a new release of either library imports per request.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType

import httpx

from services.events.relay import RelayConfig, endpoint_client
from tests.unit.raw_http import http_server, status


class _Recorder(importlib.abc.MetaPathFinder):
    """Sees every import that is not already in sys.modules (and finds nothing itself)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.asked.append(fullname)
        return None


async def imports_once_warm(post: Callable[[], Awaitable[int]]) -> list[str]:
    """The imports five more requests ask for, after a first one (which imports lazily); each must answer 204."""
    assert await post() == 204
    asked = _Recorder()
    sys.meta_path.insert(0, asked)
    try:
        for _ in range(5):
            assert await post() == 204
    finally:
        sys.meta_path.remove(asked)
    return asked.asked


async def test_requests_import_nothing_once_warm() -> None:
    async with http_server(status(204)) as (address, _, _):
        url = f"http://{address}/hooks"
        async with httpx.AsyncClient(timeout=5.0) as client:

            async def httpx_post() -> int:
                return (await client.post(url, content=b"{}")).status_code

            httpx_asked = await imports_once_warm(httpx_post)
        async with endpoint_client(url, RelayConfig(urls=(url,), secret="s", timeout_seconds=5.0)) as post:
            relay_asked = await imports_once_warm(lambda: post(b"{}", {"content-type": "application/json"}))
    assert httpx_asked == []
    assert relay_asked == []
