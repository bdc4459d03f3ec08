"""Concurrent holds against real PostgreSQL: counts of successes and counters, never timings."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.errors import Busy, Unavailable
from services.flight.schemas import FlightInventory, FlightRequest
from services.flight.service import FlightService
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.types import HoldResult, HoldStatus
from tests.ledger.helpers import assert_ledger_clean, later, unique

ROOT = Path(__file__).resolve().parents[2]


async def retrying(call: Callable[[], Awaitable[HoldResult]]) -> HoldResult:
    """Retry on Busy, as the activity layer (Temporal retries) does; any other error goes to the caller."""
    while True:
        try:
            return await call()
        except Busy:
            await asyncio.sleep(0.05)


async def outcomes(calls: list[Callable[[], Awaitable[HoldResult]]]) -> tuple[int, int]:
    """(held, refused) over calls run all at once."""
    results = await asyncio.gather(*(retrying(call) for call in calls), return_exceptions=True)
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, Unavailable)]
    assert not unexpected, unexpected
    held = sum(isinstance(r, HoldResult) for r in results)
    return held, len(results) - held


async def test_fifteen_holds_of_two_on_stock_ten(orders: OrdersService, services) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=10))
    request = ItemsRequest(items=[ItemLine(sku=sku, quantity=2)])
    calls = [lambda k=unique("wf"): orders.hold(k, request, later()) for _ in range(15)]
    assert await outcomes(calls) == (5, 10)
    assert (await orders.availability(sku)).model_dump() == (
        {"sku": sku, "capacity": 10, "held": 10, "sold": 0, "available": 0, "price": None}
    )
    await assert_ledger_clean(services)


async def test_fifty_one_seat_holds_on_ten_seats(flight: FlightService, services) -> None:
    flight_id = unique("FL")
    await flight.upsert(
        flight_id,
        FlightInventory(origin="CDG", destination="BCN", departs_at=later(86400), seats={"economy": 10, "business": 2}),
    )
    request = FlightRequest(flight_id=flight_id, seat_class="economy", seats=1)
    calls = [lambda k=unique("wf"): flight.hold(k, request, later()) for _ in range(50)]
    assert await outcomes(calls) == (10, 40)
    economy = (await flight.availability(flight_id)).seat_classes["economy"]
    assert (economy.held, economy.available) == (10, 0)
    await assert_ledger_clean(services)


@pytest.mark.slow
async def test_same_key_from_two_processes_holds_once(
    orders: OrdersService, migrated_database_url: str, services
) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=10))
    key = unique("wf") + ":orders"
    argv = [sys.executable, "-m", "tests.ledger.hold_in_process", migrated_database_url, sku, "3", key]
    processes = [
        await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert (await process.stdout.readline()).strip() == b"ready"
        # Both are connected and waiting: let them go at once.
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        replies = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 60)
        answers = [json.loads(stdout) for stdout, _ in replies]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
    assert [a["ok"] for a in answers] == [True, True], answers
    assert answers[0]["result"] == answers[1]["result"]
    assert answers[0]["result"]["status"] == HoldStatus.ACTIVE
    assert (await orders.availability(sku)).held == 3
    await assert_ledger_clean(services)


async def test_opposite_order_multi_sku_holds_never_deadlock(orders: OrdersService, services) -> None:
    first, second = unique("SKU-A"), unique("SKU-B")
    await orders.upsert(first, ItemInventory(stock=1000))
    await orders.upsert(second, ItemInventory(stock=1000))
    forward = ItemsRequest(items=[ItemLine(sku=first, quantity=1), ItemLine(sku=second, quantity=2)])
    backward = ItemsRequest(items=[ItemLine(sku=second, quantity=1), ItemLine(sku=first, quantity=2)])
    in_flight = asyncio.Semaphore(6)  # bounded: this machine is shared

    async def hold_then_release(round_number: int) -> None:
        async with in_flight:
            key = unique("wf") + ":orders"
            await orders.hold(key, forward if round_number % 2 else backward, later())
            if round_number % 3 == 0:
                await orders.release(key)

    # No retry here: any Busy (a deadlock would surface as one) fails the test.
    await asyncio.gather(*(hold_then_release(n) for n in range(60)))
    kept = sum(1 for n in range(60) if n % 3)
    assert (await orders.availability(first)).held + (await orders.availability(second)).held == kept * 3
    await assert_ledger_clean(services)


async def test_locked_row_answers_busy_then_succeeds(orders: OrdersService, engine: AsyncEngine, services) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=5))
    key = unique("wf") + ":orders"
    request = ItemsRequest(items=[ItemLine(sku=sku, quantity=1)])
    async with engine.connect() as blocker:
        await blocker.execute(text("SELECT 1 FROM orders.inventory WHERE sku = :sku FOR UPDATE"), {"sku": sku})
        with pytest.raises(Busy):
            await orders.hold(key, request, later())
        await blocker.rollback()
    # The refused attempt left nothing behind: the same key now holds, once.
    assert (await orders.hold(key, request, later())).status is HoldStatus.ACTIVE
    assert (await orders.availability(sku)).held == 1
    await assert_ledger_clean(services)


async def test_multi_line_holds_are_all_or_nothing_under_contention(orders: OrdersService, services) -> None:
    """Baskets of two skus, the second scarcer: a basket holds both lines or neither, whatever the interleaving
    (the lines are taken in one statement, all or nothing)."""
    plenty, scarce = unique("SKU-P"), unique("SKU-S")
    await orders.upsert(plenty, ItemInventory(stock=10))
    await orders.upsert(scarce, ItemInventory(stock=4))
    request = ItemsRequest(items=[ItemLine(sku=plenty, quantity=1), ItemLine(sku=scarce, quantity=1)])
    calls = [lambda k=unique("wf"): orders.hold(k, request, later()) for _ in range(12)]
    assert await outcomes(calls) == (4, 8)
    assert (await orders.availability(plenty)).held == 4
    assert (await orders.availability(scarce)).held == 4
    await assert_ledger_clean(services)
