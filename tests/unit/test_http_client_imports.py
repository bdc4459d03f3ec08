"""The relay's HTTP client (aiohttp, services/events/relay.py) and httpx (the bench's and the chaos tool's) make no
import per request once warm.

httpcore asks for sniffio whenever it makes a lock or a cancel shield, i.e. several times per request; without
sniffio installed (anyio no longer brings it) every ask is a failed import that searches sys.path anew, which
cost the relay about a tenth of its CPU per webhook (encode/httpcore#1103). pyproject.toml lists sniffio for that
reason; this fails if it goes missing from an install, or a new release of either library imports per request.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

import httpx

from services.events.relay import RelayConfig, endpoint_client


class _Recorder(importlib.abc.MetaPathFinder):
    """Sees every import that is not already in sys.modules (and finds nothing itself)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.asked.append(fullname)
        return None


async def test_requests_import_nothing_once_warm() -> None:
    served: list[asyncio.Task[None]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks"
    httpx_asked = _Recorder()
    relay_asked = _Recorder()
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            assert (await client.post(url, content=b"{}")).status_code == 204  # warm: first use imports lazily
            sys.meta_path.insert(0, httpx_asked)
            try:
                for _ in range(5):
                    assert (await client.post(url, content=b"{}")).status_code == 204
            finally:
                sys.meta_path.remove(httpx_asked)
        async with endpoint_client(url, RelayConfig(urls=(url,), secret="s", timeout_seconds=5.0)) as post:
            assert await post(b"{}", {"content-type": "application/json"}) == 204
            sys.meta_path.insert(0, relay_asked)
            try:
                for _ in range(5):
                    assert await post(b"{}", {"content-type": "application/json"}) == 204
            finally:
                sys.meta_path.remove(relay_asked)
        await asyncio.gather(*served)  # each ends when the client closes its connection
    finally:
        server.close()
        await server.wait_closed()
    assert httpx_asked.asked == []
    assert relay_asked.asked == []
