"""A minimal HTTP/1.1 keep-alive client on asyncio streams: the bench's load generator.

The load generator shares the machine's two cores with the system it measures, so every millisecond of CPU it
spends per request is taken from the API, the workers or Temporal. httpx costs several milliseconds per request
at 50 connections; this client does only what the bench needs (JSON in, JSON out, Content-Length bodies, one
request per connection at a time) for a fraction of that.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_HEADER_LINES = 100


class HttpError(Exception):
    pass


class ClosedBeforeAnswer(HttpError):
    """The server closed the connection before any byte of an answer."""


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpClient:
    """Connections are opened on demand and reused; at most as many as requests in flight at once."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port, got {base_url}")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self._idle: list[Connection] = []

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        while self._idle:
            _reader, writer = self._idle.pop()
            writer.close()

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(payload)}"]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        reused = bool(self._idle)
        connection = self._idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
        try:
            async with asyncio.timeout(self.timeout):
                response, keep = await self._exchange(connection, message)
        except (ClosedBeforeAnswer, ConnectionResetError, BrokenPipeError):
            connection[1].close()
            if not reused:
                raise
            # A kept-alive connection the server closed while it was idle (uvicorn's keep-alive timeout): it never
            # read this request. Sent again on the next idle connection or a new one, as HTTP clients do.
            return await self.request(method, path, body, headers)
        except BaseException:
            connection[1].close()
            raise
        if keep:
            self._idle.append(connection)
        else:
            connection[1].close()
        return response

    @staticmethod
    async def _exchange(connection: Connection, message: bytes) -> tuple[Response, bool]:
        reader, writer = connection
        writer.write(message)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ClosedBeforeAnswer("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, keep = 0, True
        headers: list[tuple[bytes, bytes]] = []
        for _ in range(MAX_HEADER_LINES):
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            headers.append((name, value.strip()))
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise HttpError("chunked answers are not supported by the bench client")
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        else:
            raise HttpError("too many header lines")
        return Response(status, await reader.readexactly(length) if length else b"", headers), keep
