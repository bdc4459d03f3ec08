"""A fault-injecting TCP proxy for one link of the chaos stack (this machine's kernel has no netem).

`LinkProxy(name, upstream_host, upstream_port)` listens on a free port of 127.0.0.1 and forwards every connection
to the upstream, on an event loop of its own thread. Faults are switched on command, from any thread:

- `latency(seconds)`: every chunk is delivered `seconds` after it was read, in each direction (order kept).
- `loss(rate, stall)`: a chunk is held back `stall` seconds with probability `rate`, as TCP delivers a segment it
  had to retransmit: the stream stays intact and in order, only late.
- `partition()`: nothing flows either way, and new connections wait, until `heal()`; what was in flight is
  delivered after (a partition that heals, as TCP sees one). The peers' own timeouts decide what happens meanwhile.
- `cut()`: every open connection is reset now (a middlebox dropping its state); new connections are refused until
  `heal()`.
- `heal()`: back to a clean link.

Nothing is dropped from the middle of a stream: a protocol never sees corrupt bytes, only delays and resets.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from dataclasses import dataclass, field

_CHUNK = 65536


@dataclass
class LinkState:
    delay: float = 0.0
    loss_rate: float = 0.0
    loss_stall: float = 0.0
    refusing: bool = False
    flowing: asyncio.Event = field(default_factory=asyncio.Event)


class LinkProxy:
    def __init__(self, name: str, upstream_host: str, upstream_port: int, *, seed: int | None = None) -> None:
        self.name = name
        self.upstream = (upstream_host, upstream_port)
        self.rng = random.Random(seed)
        self.port = 0
        self.connections_total = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._state = LinkState()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{name}", daemon=True)

    # -- life -------------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> LinkProxy:
        """Listen (on `port`, or a free one) and forward until `stop()`. Returns self."""
        self._thread.start()
        self._call(self._listen(port))
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._open)

    # -- faults (any thread) ----------------------------------------------------------------------------------

    def latency(self, seconds: float) -> None:
        self._set(delay=seconds)

    def loss(self, rate: float, stall: float = 0.5) -> None:
        self._set(loss_rate=rate, loss_stall=stall)

    def partition(self) -> None:
        self._loop.call_soon_threadsafe(self._state.flowing.clear)

    def cut(self) -> None:
        self._set(refusing=True)
        self._call(self._reset_all())

    def heal(self) -> None:
        self._set(delay=0.0, loss_rate=0.0, loss_stall=0.0, refusing=False)
        self._loop.call_soon_threadsafe(self._state.flowing.set)

    # -- the proxy --------------------------------------------------------------------------------------------

    def _set(self, **values: float | bool) -> None:
        def apply() -> None:
            for key, value in values.items():
                setattr(self._state, key, value)

        self._loop.call_soon_threadsafe(apply)

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)  # type: ignore[arg-type]

    async def _listen(self, port: int) -> None:
        self._state.flowing.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> None:
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        if self._state.refusing:
            _reset(client_writer)
            return
        await self._state.flowing.wait()  # a partition: the connection waits with the rest
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_writer)
            return
        pair = {client_writer, upstream_writer}
        self._open |= pair
        try:
            await asyncio.gather(
                self._pump(client_reader, upstream_writer), self._pump(upstream_reader, client_writer),
            )
        finally:
            for writer in pair:
                self._open.discard(writer)
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction: a reader task timestamps chunks, this one delivers them when due (order kept)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=256)

        async def read() -> None:
            try:
                while chunk := await reader.read(_CHUNK):
                    await queue.put((loop.time(), chunk))
            except (ConnectionError, OSError):
                pass
            await queue.put((loop.time(), b""))

        reading = asyncio.create_task(read())
        try:
            while True:
                read_at, chunk = await queue.get()
                state = self._state
                due = read_at + state.delay
                if state.loss_rate and self.rng.random() < state.loss_rate:
                    due += state.loss_stall
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await state.flowing.wait()
                if not chunk:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            _reset(writer)
        finally:
            reading.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a link that drops its state does: the peer sees a reset, not an EOF."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
