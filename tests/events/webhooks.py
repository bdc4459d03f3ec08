"""Real receivers and relays for the webhook tests: each receiver is its own process (tests/events/receiver.py),
a relay is either a task in the test's loop or a `booking-saga relay` process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.embedded import free_port, wait_for_port
from services.db import create_engine
from services.events.outbox import ENDPOINTS
from services.events.relay import Relay, RelayConfig, RelayMetrics

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
RECEIVER = Path(__file__).with_name("receiver.py")
ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A receiver process on a port of its own; `url` stays the same across stop() and start()."""

    def __init__(self, directory: Path, name: str = "receiver") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/{name}"
        self.record = directory / f"{name}.jsonl"
        self.control_file = directory / f"{name}.control.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.control()

    def control(self, status: int = 200, delay: float = 0.0, fail_first: int = 0) -> None:
        self.control_file.write_text(json.dumps({"status": status, "delay": delay, "fail_first": fail_first}))

    def start(self) -> Receiver:
        self.process = subprocess.Popen(
            [sys.executable, str(RECEIVER), str(self.port), SECRET, str(self.record), str(self.control_file)])
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def delivered(self, checkout_ids: set[str] | None = None) -> list[dict[str, Any]]:
        """The events answered 2xx (verified), in the order they arrived, duplicates included."""
        return [r["event"] for r in self.requests() if r["verified"] and r["status"] == 200
                and (checkout_ids is None or r["event"]["checkout_id"] in checkout_ids)]


def config(*urls: str, **overrides: Any) -> RelayConfig:
    settings: dict[str, Any] = dict(urls=urls, secret=SECRET, timeout_seconds=5.0, backoff_base_seconds=0.1,
                                    backoff_max_seconds=0.5, poll_seconds=0.2, concurrency=4)
    settings.update(overrides)
    return RelayConfig(**settings)


@contextlib.asynccontextmanager
async def relay_task(
    engine: AsyncEngine, relay_config: RelayConfig, metrics: RelayMetrics | None = None
) -> AsyncIterator[Relay]:
    """A relay running in this loop, its endpoints registered (so every event written from now on is theirs).
    It has an engine of its own, as `booking-saga relay` has: its connections end with it, whatever a cancelled
    statement left them in."""
    own = create_engine(engine.url.render_as_string(hide_password=False), pool_size=4)
    relay = Relay(own, relay_config, metrics)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.ready.wait(), 30)
        yield relay
    finally:
        relay.stop()
        done, _ = await asyncio.wait([task], timeout=30)
        if not done:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await own.dispose()


def relay_process(database_url: str, *urls: str, log: Path | None = None, **env: str) -> subprocess.Popen[bytes]:
    """`booking-saga relay` as its own process (its output appended to `log` when given)."""
    environment = dict(os.environ, DATABASE_URL=database_url, WEBHOOK_URLS=" ".join(urls), WEBHOOK_SECRET=SECRET,
                       WEBHOOK_TIMEOUT_SECONDS="2", WEBHOOK_BACKOFF_BASE_SECONDS="0.1",
                       WEBHOOK_BACKOFF_MAX_SECONDS="0.5", WEBHOOK_POLL_SECONDS="0.2", PYTHONPATH=str(ROOT), **env)
    output = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen([sys.executable, "-m", "booking_saga.cli", "relay"], env=environment, cwd=ROOT,
                                stdout=output, stderr=output)
    finally:
        if output is not None:
            output.close()  # the child has its own copy


async def registered(engine: AsyncEngine, url: str) -> None:
    """Wait until a relay process has registered `url` (events written before that are not the endpoint's)."""

    async def found() -> bool:
        async with engine.connect() as conn:
            return (await conn.execute(text(f"SELECT 1 FROM {ENDPOINTS} WHERE url = :url"), {"url": url})).first() \
                is not None

    await eventually(found, f"{url} registered")


async def eventually(check: Callable[[], bool] | Callable[[], Awaitable[bool]], what: str,
                     within: float = 90.0) -> None:
    """Wait until `check()` holds; fail after `within` seconds (a bound for a stuck test, not a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


def in_order_per_checkout(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Each checkout's event ids by first arrival (a duplicate is a redelivery); asserts they rise."""
    firsts: dict[str, list[int]] = {}
    for event in events:
        ids = firsts.setdefault(event["checkout_id"], [])
        if event["id"] not in ids:
            ids.append(event["id"])
    for checkout_id, ids in firsts.items():
        assert ids == sorted(ids), f"checkout {checkout_id} out of order: {ids}"
    return firsts
