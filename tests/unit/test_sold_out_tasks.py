"""The sold-out answer's own work: a late buyer answered from lookups already settled starts no task of its own."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from api import admission, fast_path
from api.deps import AppState
from api.fast_path import SharedLookups
from services.orders.schemas import ItemLine, ItemsRequest
from services.types import Alternative
from workflows.models import CheckoutRequest, CheckoutStatus

SKU = "SKU-SOLD-OUT"
OFFER = Alternative(service="orders", description="another sku", available=3)


class Cache:
    """The availability cache, showing the sku short."""

    def __init__(self) -> None:
        self.reads = 0

    async def available(self, service: str, resources: list[str]) -> dict[str, int] | None:
        self.reads += 1
        return dict.fromkeys(resources, 0)


class Started:
    async def has(self, checkout_id: str) -> bool:
        return False


class Orders:
    def __init__(self) -> None:
        self.lookups = 0

    async def alternatives(self, request: object) -> list[Alternative]:
        self.lookups += 1
        return [OFFER]


def attempt() -> admission.Attempt:
    request = CheckoutRequest(customer_id="cust", items=ItemsRequest(items=[ItemLine(sku=SKU, quantity=1)]))
    return admission.Attempt(request, "co-1", "hash", 600, {"orders": {SKU: 1}})


def state(orders: Orders, cache: Cache) -> AppState:
    return cast(AppState, SimpleNamespace(
        cache=cache, started=Started(), services={"orders": orders},
        alternatives=fast_path.shared_alternatives(), cache_reads=fast_path.shared_reads(),
    ))


class TaskCount:
    """Every task or future the code under test starts through asyncio.ensure_future, asyncio.gather or
    asyncio.shield."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = 0
        for name in ("ensure_future", "gather", "shield"):
            real = getattr(asyncio, name)
            monkeypatch.setattr(asyncio, name, self._counting(real))

    def _counting(self, real: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.started += 1
            return real(*args, **kwargs)
        return counted


async def test_a_settled_shared_lookup_answers_without_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    orders, cache = Orders(), Cache()
    booking = state(orders, cache)
    first = await admission.sold_out_view(booking, attempt())  # looks the alternatives up, and keeps them
    assert first is not None and first.alternatives == [OFFER]
    await asyncio.sleep(0)  # the lookup's done callbacks have run

    tasks = TaskCount(monkeypatch)
    view = await admission.sold_out_view(booking, attempt())

    assert view is not None and view.status == CheckoutStatus.REJECTED
    assert view.alternatives == [OFFER] and [s.resource for s in view.unavailable] == [SKU]
    # The cache is read afresh for every answer (its reads are shared only while they run), the alternatives once.
    assert (cache.reads, orders.lookups) == (2, 1)
    # The shared cache read's task and its shield, nothing else: no gather for one service, no task for the kept
    # alternatives.
    assert tasks.started == 2


async def test_alternatives_not_yet_settled_are_looked_up_beside_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    orders = Orders()
    booking = state(orders, Cache())
    tasks = TaskCount(monkeypatch)
    view = await admission.sold_out_view(booking, attempt())

    assert view is not None and view.alternatives == [OFFER] and orders.lookups == 1
    assert tasks.started > 2


async def test_settled_is_only_a_finished_fresh_successful_lookup() -> None:
    shared: SharedLookups[str, int] = SharedLookups(ttl_seconds=60)
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 7

    asking = asyncio.ensure_future(shared.get("a", slow))
    await asyncio.sleep(0)
    assert shared.settled("a") is None  # still running
    release.set()
    assert await asking == 7
    kept = shared.settled("a")
    assert kept is not None and kept.result() == 7

    async def failing() -> int:
        raise RuntimeError("lookup failed")

    with pytest.raises(RuntimeError):
        await shared.get("b", failing)
    assert shared.settled("b") is None

    expired: SharedLookups[str, int] = SharedLookups(ttl_seconds=0)

    async def quick() -> int:
        return 1

    assert await expired.get("a", quick) == 1
    assert expired.settled("a") is None
