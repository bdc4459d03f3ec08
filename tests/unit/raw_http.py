"""A raw HTTP/1.1 server in the test's own event loop, for the unit tests of HTTP clients (the relay's and httpx):
it sees each request's head as sent, answers with bytes the test chooses, and counts connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

Answer = Callable[[bytes], bytes]


@asynccontextmanager
async def http_server(answer: Answer) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """A server on a free port: each request's head goes to `answer`, whose bytes are the reply. Yields its
    address, the request heads in order and the number of connections it accepted. On leaving, waits for every
    connection's handler to end (the clients must have closed theirs)."""
    heads: list[bytes] = []
    connections: list[int] = []
    served: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(asyncio.current_task())  # type: ignore[arg-type]
        connections.append(1)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                heads.append(head)
                writer.write(answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", heads, connections
        await asyncio.gather(*served)  # each ends when its client closes the connection
    finally:
        server.close()
        await server.wait_closed()


def status(code: int, extra: bytes = b"") -> Answer:
    """An answer with status `code` (and `extra` header lines): a two-byte body, none for a 204."""
    body = b"" if code == 204 else b"content-length: 2\r\n\r\nok"  # a 204 has no body
    return lambda _head: b"HTTP/1.1 %d X\r\n%b%b" % (code, extra, body or b"\r\n")
