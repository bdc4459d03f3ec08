"""The ledger tells the real Redis cache about every committed change, refusals included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.cache import AvailabilityCache
from services.db import create_engine
from services.errors import Unavailable
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.registry import build_services
from tests.ledger.helpers import unique


async def test_every_change_reaches_the_cache(migrated_database_url: str, cache: AvailabilityCache) -> None:
    engine = create_engine(migrated_database_url, pool_size=2)
    orders = build_services(engine, sink=cache)["orders"]
    assert isinstance(orders, OrdersService)
    sku = unique("SKU")
    expires_at = datetime.now(UTC) + timedelta(minutes=10)
    try:
        await orders.upsert(sku, ItemInventory(stock=2))
        assert await cache.available("orders", [sku]) == {sku: 2}

        key = unique("wf") + ":orders"
        await orders.hold(key, ItemsRequest(items=[ItemLine(sku=sku, quantity=2)]), expires_at)
        await cache.published()  # a hold is published without being waited for (AvailabilitySink.publish_soon)
        assert await cache.available("orders", [sku]) == {sku: 0}

        # A refusal changes no counter but republishes the short row, keeping the sold-out hint alive.
        await cache.client.delete(cache.key("orders", sku))
        with pytest.raises(Unavailable):
            await orders.hold(unique("wf") + ":orders", ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), expires_at)
        await cache.published()
        assert await cache.available("orders", [sku]) == {sku: 0}
        assert await cache.client.ttl(cache.key("orders", sku)) > 0

        # A release raises availability: published before it returns, so released stock is never turned away.
        await orders.release(key)
        assert await cache.available("orders", [sku]) == {sku: 2}
    finally:
        await engine.dispose()


async def test_a_hold_does_not_wait_for_redis_and_its_publish_lands(
    migrated_database_url: str, cache: AvailabilityCache, redis_url: str
) -> None:
    """The hold answers before its publish has landed (nothing awaited Redis); `published` then finds it there,
    and closing a cache finishes a publish still on its way."""
    engine = create_engine(migrated_database_url, pool_size=2)
    orders = build_services(engine, sink=cache)["orders"]
    closing = AvailabilityCache.from_url(redis_url, prefix=cache.prefix)
    closing_orders = build_services(engine, sink=closing)["orders"]
    sku = unique("SKU")
    expires_at = datetime.now(UTC) + timedelta(minutes=10)
    try:
        await orders.upsert(sku, ItemInventory(stock=3))
        await orders.hold(unique("wf") + ":orders", ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), expires_at)
        assert cache._sender is not None and not cache._sender.done(), "the hold waited for its publish"
        await cache.published()
        assert cache._sender.done() and not cache._unsent
        assert await cache.available("orders", [sku]) == {sku: 2}

        await closing_orders.hold(
            unique("wf") + ":orders", ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), expires_at
        )
        await closing.aclose()
        assert await cache.available("orders", [sku]) == {sku: 1}
    finally:
        await engine.dispose()
