"""Redis killed, restarted or stalled: callers get "unknown", never an exception, and the cache comes back.

These tests kill or pause a redis-server of their own, never the shared one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from runtime.embedded import EmbeddedRedis, free_port, start_redis
from services.cache import AvailabilityCache
from tests.cache.conftest import HEALTHY_BUDGET_MS, change


async def wait_until_answering(cache: AvailabilityCache, *, attempts: int = 100) -> None:
    for _ in range(attempts):
        if await cache.ping():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the cache never answered again")


async def test_killed_redis_gives_unknown_and_a_restarted_one_is_used_again(tmp_path: Path) -> None:
    server = start_redis(tmp_path, free_port(), persist=False)
    cache = AvailabilityCache.from_url(server.url, budget_ms=HEALTHY_BUDGET_MS)
    try:
        await cache.publish([change("BA117/economy", version=1, capacity=10, held=4)])
        assert await cache.available("flight", ["BA117/economy"]) == {"BA117/economy": 6}

        server.process.kill()
        server.process.wait()

        await cache.publish([change("BA117/economy", version=2, capacity=10, held=5)])
        assert await cache.available("flight", ["BA117/economy"]) is None
        assert await cache.entry("flight", "BA117/economy") is None
        assert await cache.ping() is False
        assert cache.stats.errors == 4

        # Same port, empty data: the script is unknown to the new server and must be loaded again.
        server = start_redis(tmp_path, server.port, persist=False)
        await wait_until_answering(cache)
        await cache.publish([change("BA117/economy", version=3, capacity=10, held=7)])
        assert await cache.available("flight", ["BA117/economy"]) == {"BA117/economy": 3}
        assert cache.stats.errors == 4
    finally:
        await cache.aclose()
        server.stop()


async def test_stalled_redis_gives_unknown_within_the_budget(own_redis: EmbeddedRedis) -> None:
    cache = AvailabilityCache.from_url(own_redis.url, budget_ms=50)
    admin = Redis.from_url(own_redis.url)
    try:
        await cache.publish([change("SKU-1", version=1, capacity=5, service="orders")])
        assert await cache.available("orders", ["SKU-1"]) == {"SKU-1": 5}

        # Every client's commands wait until the pause ends, far beyond the budget (redis-server 6.2 also
        # holds back CLIENT UNPAUSE under ALL, so the pause simply runs out).
        await admin.client_pause(2000, all=True)

        assert await cache.available("orders", ["SKU-1"]) is None
        assert await cache.entry("orders", "SKU-1") is None
        await cache.publish([change("SKU-1", version=2, capacity=5, held=1, service="orders")])
        assert await cache.ping() is False
        assert cache.stats.errors == 4

        await wait_until_answering(cache)
        await cache.publish([change("SKU-1", version=3, capacity=5, held=2, service="orders")])
        assert await cache.available("orders", ["SKU-1"]) == {"SKU-1": 3}
    finally:
        await admin.aclose()
        await cache.aclose()
