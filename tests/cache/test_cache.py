"""The availability cache against a real Redis: version guard, TTL, reads, garbage, metrics."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from services.cache import AvailabilityCache
from services.protocol import RowState
from services.types import RowAvailability
from settings import Settings
from tests.cache.conftest import HEALTHY_BUDGET_MS, change


async def test_published_rows_read_back_with_their_version(cache: AvailabilityCache) -> None:
    await cache.publish(
        [
            change("BA117/economy", version=3, capacity=10, held=2, sold=5),
            change("BA117/business", version=1, capacity=4, sold=4),
        ]
    )

    assert await cache.available("flight", ["BA117/economy", "BA117/business", "BA117/first"]) == {
        "BA117/economy": 3,
        "BA117/business": 0,
    }
    assert await cache.entry("flight", "BA117/economy") == RowAvailability(
        capacity=10, held=2, sold=5, available=3, version=3
    )
    assert await cache.entry("flight", "BA117/first") is None
    # Another service's rows live under other keys.
    assert await cache.available("hotel", ["BA117/economy"]) == {}
    assert (cache.stats.hits, cache.stats.misses, cache.stats.errors) == (3, 3, 0)


async def test_resource_names_of_every_service_round_trip(cache: AvailabilityCache) -> None:
    await cache.publish(
        [
            change("H1/deluxe/2026-12-01", version=1, capacity=3, held=1, service="hotel"),
            change("SKU-1", version=7, capacity=100, sold=40, service="orders"),
        ]
    )

    assert await cache.available("hotel", ["H1/deluxe/2026-12-01"]) == {"H1/deluxe/2026-12-01": 2}
    assert await cache.available("orders", ["SKU-1"]) == {"SKU-1": 60}


async def test_any_row_change_is_accepted(cache: AvailabilityCache) -> None:
    @dataclass(frozen=True)
    class Change:
        service: str
        resource: str
        availability: RowAvailability

    counters = RowAvailability(capacity=5, held=1, sold=1, available=3, version=2)
    await cache.publish([Change("orders", "SKU-2", counters)])

    assert await cache.entry("orders", "SKU-2") == counters


async def test_an_older_version_never_replaces_a_newer_one(cache: AvailabilityCache) -> None:
    await cache.publish([change("SKU-1", version=5, held=5, service="orders")])
    await cache.publish([change("SKU-1", version=4, held=0, service="orders")])

    entry = await cache.entry("orders", "SKU-1")
    assert entry is not None
    assert (entry.version, entry.held) == (5, 5)


async def test_concurrent_writers_leave_the_highest_version(cache: AvailabilityCache) -> None:
    versions = list(range(1, 21))
    random.Random(6).shuffle(versions)
    # Each write touches two rows, as a hold over two nights does; held tells which write a row came from.
    writes = [
        cache.publish(
            [
                change("H1/std/2026-12-01", version=v, capacity=100, held=v, service="hotel"),
                change("H1/std/2026-12-02", version=v, capacity=100, held=v, service="hotel"),
            ]
        )
        for v in versions
    ]
    await asyncio.gather(*writes)

    for night in ("H1/std/2026-12-01", "H1/std/2026-12-02"):
        assert await cache.entry("hotel", night) == RowAvailability(
            capacity=100, held=20, sold=0, available=80, version=20
        )
    assert cache.stats.errors == 0


async def test_entries_expire(cache: AvailabilityCache) -> None:
    await cache.publish([change("BA117/economy", version=1)])

    ttl = await cache.client.ttl(cache.key("flight", "BA117/economy"))
    assert 0 < ttl <= cache.ttl_seconds


async def test_garbage_means_unknown_and_counts_an_error(cache: AvailabilityCache) -> None:
    await cache.publish([change("SKU-1", version=1, service="orders")])
    await cache.client.set(cache.key("orders", "SKU-9"), "not a hash")
    await cache.client.hset(
        cache.key("orders", "SKU-8"), mapping={"version": "x", "capacity": "1", "held": "0", "sold": "0"}
    )

    assert await cache.available("orders", ["SKU-1", "SKU-9"]) is None
    assert await cache.available("orders", ["SKU-1", "SKU-8"]) is None
    assert await cache.entry("orders", "SKU-8") is None
    assert cache.stats.errors == 3

    # The next write of a garbage row replaces it, whatever its version.
    await cache.publish(
        [
            change("SKU-9", version=1, capacity=2, service="orders"),
            change("SKU-8", version=0, capacity=3, service="orders"),
        ]
    )
    assert await cache.available("orders", ["SKU-1", "SKU-8", "SKU-9"]) == {"SKU-1": 10, "SKU-8": 3, "SKU-9": 2}


async def test_counters_reach_the_registry_passed_in(redis_url: str) -> None:
    registry = CollectorRegistry()
    cache = AvailabilityCache.from_url(
        redis_url, prefix=f"bs:test:{uuid.uuid4().hex}:", budget_ms=HEALTHY_BUDGET_MS, registry=registry
    )
    try:
        assert await cache.available("flight", ["X1/economy", "X2/economy"]) == {}
        await cache.client.set(cache.key("flight", "X3/economy"), "garbage")
        assert await cache.entry("flight", "X3/economy") is None
    finally:
        await cache.client.delete(cache.key("flight", "X3/economy"))
        await cache.aclose()

    assert registry.get_sample_value("booking_saga_cache_misses_total") == 2
    assert registry.get_sample_value("booking_saga_cache_hits_total") == 0
    assert registry.get_sample_value("booking_saga_cache_errors_total", {"operation": "entry"}) == 1


async def test_ping_answers_when_redis_does(cache: AvailabilityCache) -> None:
    assert await cache.ping() is True


async def test_nothing_to_do_costs_nothing(cache: AvailabilityCache) -> None:
    await cache.publish([])
    assert await cache.available("flight", []) == {}
    assert (cache.stats.hits, cache.stats.misses, cache.stats.errors) == (0, 0, 0)


def test_settings_without_a_redis_url_are_refused() -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        AvailabilityCache.from_settings(Settings(redis_url=""))


async def test_rows_handed_over_meanwhile_go_together_and_the_newest_version_stays(
    cache: AvailabilityCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """publish_soon: rows handed over while a publish is on its way share the next one; versions still decide."""
    sent: list[int] = []
    real_publish = cache.publish

    async def counted(rows: list[RowState]) -> None:
        sent.append(len(rows))
        await real_publish(rows)

    monkeypatch.setattr(cache, "publish", counted)
    for version in range(1, 21):
        cache.publish_soon([change("BA117/economy", version=version, capacity=100, held=version),
                            change(f"SKU-{version}", version=1, capacity=5, held=1, service="orders")])
    cache.publish_soon([change("BA117/economy", version=3, capacity=100, held=3)])  # late and stale: changes nothing
    await cache.published()

    assert sum(sent) == 41 and len(sent) <= 2, sent
    assert await cache.available("flight", ["BA117/economy"]) == {"BA117/economy": 100 - 20}
    assert await cache.available("orders", [f"SKU-{v}" for v in (1, 20)]) == {"SKU-1": 4, "SKU-20": 4}
