"""Booking records on real PostgreSQL (services/bookings/records.py): writes only move forward, concurrent
writes of one checkout serialize, a cancellation's change is one transaction, keyset paging, retention; and the
ledger's return of a sale (RETURNED, idempotent, never more than sold)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.bookings.models import MarkParts, RecordInput
from services.bookings.records import BookingRecords, decode_cursor
from services.db import create_engine
from services.errors import HoldNotActive, InvalidRequest
from services.events import EventType, read_after
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.registry import build_services
from services.types import HoldStatus
from tests.ledger.helpers import assert_ledger_clean


@pytest.fixture(scope="module")
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=8)
    yield engine
    await engine.dispose()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def version(checkout_id: str, customer: str, statuses: list[str], start: datetime | None = None) -> RecordInput:
    start = start or datetime.now(UTC)
    history = [{"status": s, "at": (start + timedelta(seconds=i)).isoformat(), "reason": None}
               for i, s in enumerate(statuses)]
    holds = [{"hold_key": f"{checkout_id}:orders", "service": "orders", "status": "CONFIRMED", "lines": []},
             {"hold_key": f"{checkout_id}:flight", "service": "flight", "status": "CONFIRMED", "lines": []}]
    view: dict[str, Any] = {"checkout_id": checkout_id, "customer_id": customer, "request_hash": "h",
                            "status": statuses[-1], "holds": holds, "history": history}
    return RecordInput(checkout_id=checkout_id, customer_id=customer, status=statuses[-1], version=len(history),
                       view=view)


async def test_a_record_only_moves_forward(engine: AsyncEngine) -> None:
    records = BookingRecords(engine)
    checkout_id, customer = unique("co"), unique("cust")
    held = version(checkout_id, customer, ["PENDING", "HELD"])
    confirmed = version(checkout_id, customer, ["PENDING", "HELD", "CONFIRMED"], datetime.fromisoformat(
        held.view["history"][0]["at"]))
    assert await records.record(confirmed)
    assert not await records.record(held)  # a late write of an older view
    assert not await records.record(confirmed)  # a retried one
    stored = await records.load(checkout_id)
    assert stored is not None and stored.status == "CONFIRMED" and stored.version == 3
    assert stored.created_at == datetime.fromisoformat(held.view["history"][0]["at"])


async def test_a_write_and_its_events_are_one_change(engine: AsyncEngine) -> None:
    """The record and its events are written by one statement: each newer version adds its events, an older or
    repeated one adds none, and a write without the request keeps the one recorded."""
    records = BookingRecords(engine)
    checkout_id, customer = unique("co"), unique("cust")
    async with engine.connect() as conn:
        start = int((await conn.execute(text("SELECT last_id FROM checkout.event_counter"))).scalar_one())
    held = version(checkout_id, customer, ["PENDING", "HELD"])
    held = held.model_copy(update={"request": {"customer_id": customer}})
    confirmed = version(checkout_id, customer, ["PENDING", "HELD", "CONFIRMED"], datetime.fromisoformat(
        held.view["history"][0]["at"]))
    assert await records.record(held)
    assert await records.record(confirmed)
    assert not await records.record(held) and not await records.record(confirmed)
    stored = await records.load(checkout_id)
    assert stored is not None and stored.status == "CONFIRMED" and stored.request == {"customer_id": customer}
    events = [e for e in await read_after(engine, start, 1000) if e.checkout_id == checkout_id]
    assert [e.type for e in events] == [EventType.HELD, EventType.CONFIRMED]


async def test_concurrent_first_writes_leave_the_newest(engine: AsyncEngine) -> None:
    records = BookingRecords(engine)
    checkout_id, customer = unique("co"), unique("cust")
    start = datetime.now(UTC)
    writes = [version(checkout_id, customer, ["PENDING", "HELD", "CONFIRMED"][: n + 1], start) for n in range(3)]
    outcomes = await asyncio.gather(*(records.record(w) for w in writes * 5))
    assert any(outcomes)
    stored = await records.load(checkout_id)
    assert stored is not None and stored.version == 3 and stored.status == "CONFIRMED"


async def test_a_cancellation_changes_parts_once(engine: AsyncEngine) -> None:
    records = BookingRecords(engine)
    checkout_id, customer = unique("co"), unique("cust")
    await records.record(version(checkout_id, customer, ["PENDING", "HELD", "CONFIRMED"]))
    returned = {"hold_key": f"{checkout_id}:orders", "service": "orders", "status": "RETURNED", "lines": []}
    change = MarkParts(checkout_id=checkout_id, holds={"orders": returned}, at=datetime.now(UTC),
                       reason="part cancelled: items")
    first, again = await asyncio.gather(records.change_parts(change), records.change_parts(change))
    stored = await records.load(checkout_id)
    assert stored is not None and stored.status == "CONFIRMED" and stored.version == 4
    assert first is not None and again is not None and first.version == again.version == 4
    assert [h["status"] for h in stored.view["holds"]] == ["RETURNED", "CONFIRMED"]
    everything = MarkParts(checkout_id=checkout_id, at=datetime.now(UTC), reason="sale cancelled", holds={
        "flight": {"hold_key": f"{checkout_id}:flight", "service": "flight", "status": "RETURNED", "lines": []}})
    done = await records.change_parts(everything)
    assert done is not None and done.status == "CANCELLED" and done.version == 5
    assert [c["status"] for c in done.view["history"]] == ["PENDING", "HELD", "CONFIRMED", "CONFIRMED",
                                                           "CANCELLED"]
    assert await records.change_parts(MarkParts(checkout_id=unique("co"), holds={}, at=datetime.now(UTC),
                                                reason="x")) is None


async def test_pages_are_keyset_newest_first(engine: AsyncEngine) -> None:
    records = BookingRecords(engine)
    customer = unique("cust")
    start = datetime.now(UTC)
    ids = [unique("co") for _ in range(7)]
    for n, checkout_id in enumerate(ids):
        await records.record(version(checkout_id, customer, ["PENDING", "HELD"], start + timedelta(minutes=n)))
    seen: list[str] = []
    cursor = None
    while True:
        page = await records.page(customer, [], 3, cursor)
        seen += [r.checkout_id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    assert (await records.page(customer, ["CONFIRMED"], 3, None)).records == []
    with pytest.raises(InvalidRequest):
        decode_cursor("bm90IGpzb24")
    async with engine.connect() as conn:
        plan = "\n".join(row[0] for row in await conn.execute(text(
            "EXPLAIN SELECT * FROM checkout.bookings WHERE customer_id = 'x' "
            "ORDER BY created_at DESC, checkout_id DESC LIMIT 3")))
    assert "bookings_by_customer" in plan, plan


async def test_retention_forgets_settled_records_only(engine: AsyncEngine) -> None:
    records = BookingRecords(engine, keep_days=30)
    customer = unique("cust")
    old, held = unique("co"), unique("co")
    await records.record(version(old, customer, ["PENDING", "HELD", "CONFIRMED"]))
    await records.record(version(held, customer, ["PENDING", "HELD"]))
    assert await BookingRecords(engine).expire_overdue(datetime.now(UTC) + timedelta(days=365), 0) == 0  # kept
    assert await records.expire_overdue(datetime.now(UTC) + timedelta(days=31), 0) >= 1
    assert await records.load(old) is None
    assert await records.load(held) is not None


async def test_the_ledger_returns_a_sale_once(engine: AsyncEngine) -> None:
    orders = build_services(engine)["orders"]
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=5))
    key = unique("wf") + ":orders"
    request = ItemsRequest(items=[ItemLine(sku=sku, quantity=3)])
    await orders.hold(key, request, datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(HoldNotActive):
        await orders.return_sale(key)  # held, not sold: nothing to give back
    await orders.confirm(key)
    outcomes = await asyncio.gather(*(orders.return_sale(key) for _ in range(10)))
    assert {o.status for o in outcomes} == {HoldStatus.RETURNED}
    assert (await orders.availability(sku)).sold == 0
    assert (await orders.availability(sku)).available == 5
    with pytest.raises(HoldNotActive):
        await orders.confirm(key)  # a returned sale is not sold again
    await assert_ledger_clean({"orders": orders})
