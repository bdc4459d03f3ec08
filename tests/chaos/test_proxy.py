"""chaos.proxy.LinkProxy against a real echo server: every fault keeps the stream intact, a cut resets, a heal
restores. Outcomes only (bytes, resets, counts): no duration is asserted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chaos.proxy import LinkProxy
from tests.waiting import eventually


class Echo:
    def __init__(self) -> None:
        self.received = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.received += len(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    server = Echo()
    server.server = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = server.server.sockets[0].getsockname()[1]
    yield server
    server.server.close()


@pytest.fixture
def proxy(echo: Echo) -> AsyncIterator[LinkProxy]:
    link = LinkProxy("test", "127.0.0.1", echo.port, seed=1).start()
    yield link  # type: ignore[misc]
    link.stop()


async def round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


PAYLOAD = bytes(range(256)) * 2048  # 512 KiB: many chunks, order visible


async def test_a_clean_link_forwards_everything(proxy: LinkProxy) -> None:
    assert await round_trip(proxy.port, PAYLOAD) == PAYLOAD
    assert proxy.connections_total == 1


async def test_latency_and_loss_delay_but_keep_the_stream_intact(proxy: LinkProxy) -> None:
    proxy.latency(0.01)
    proxy.loss(0.3, stall=0.02)
    assert await round_trip(proxy.port, PAYLOAD) == PAYLOAD
    proxy.heal()
    assert await round_trip(proxy.port, b"after") == b"after"


async def test_a_partition_holds_the_bytes_until_it_heals(proxy: LinkProxy, echo: Echo) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"before")
    await writer.drain()
    assert await reader.readexactly(6) == b"before"
    proxy.partition()
    await asyncio.sleep(0.05)  # let the partition land on the proxy's loop
    writer.write(b"during")
    await writer.drain()
    await asyncio.sleep(0.2)
    assert echo.received == 6, "nothing crosses a partition"
    proxy.heal()
    assert await reader.readexactly(6) == b"during"  # delivered after, in order
    writer.close()


async def test_a_cut_resets_open_connections_and_refuses_new_ones_until_healed(proxy: LinkProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"x")
    await writer.drain()
    assert await reader.readexactly(1) == b"x"
    proxy.cut()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        writer.write(b"y")
        await writer.drain()
        await reader.readexactly(1)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await round_trip(proxy.port, b"refused")
    proxy.heal()
    assert await round_trip(proxy.port, b"healed") == b"healed"

    async def closed() -> bool:  # the proxy lets go of both ends once the client closed
        return proxy.open_connections == 0

    await eventually(closed)
