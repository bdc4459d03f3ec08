"""Fixtures for the availability cache: a cache on the session's Redis with a key prefix of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runtime.embedded import EmbeddedRedis, free_port, start_redis
from services.cache import AvailabilityCache
from services.protocol import RowState

# Generous, so that a loaded 2-core machine never turns a healthy call into a timeout; the slow-Redis test
# sets its own small budget.
HEALTHY_BUDGET_MS = 5000


def change(
    resource: str, *, version: int, capacity: int = 10, held: int = 0, sold: int = 0, service: str = "flight"
) -> RowState:
    """A ledger row as a committed change left it, the way the ledger hands it to publish()."""
    return RowState(service=service, resource=resource, capacity=capacity, held=held, sold=sold, version=version)


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[AvailabilityCache]:
    """A cache on the shared Redis; its keys are unique to this test and deleted afterwards."""
    prefix = f"bs:test:{uuid.uuid4().hex}:"
    cache = AvailabilityCache.from_url(redis_url, prefix=prefix, budget_ms=HEALTHY_BUDGET_MS)
    yield cache
    async for key in cache.client.scan_iter(match=f"{prefix}*"):
        await cache.client.delete(key)
    await cache.aclose()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, for tests that kill or pause it (never the shared one)."""
    server = start_redis(tmp_path, free_port(), persist=False)
    yield server
    server.stop()
