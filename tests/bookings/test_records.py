"""Booking records on real PostgreSQL (services/bookings/records.py): writes only move forward, concurrent
writes of one checkout serialize, a first write in one statement writes what the locked write does and waits for
the checkout's lock, a cancellation's change is one transaction, keyset paging, retention; and the ledger's return
of a sale (RETURNED, idempotent, never more than sold)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.bookings.models import BookingRecord, MarkParts, RecordInput
from services.bookings.records import LOCK_SEED, BookingRecords, decode_cursor, insert_first, record_change
from services.db import create_engine
from services.errors import HoldNotActive, InvalidRequest
from services.events import EventType, read_after
from services.ledger.transaction import driver_transaction, pooled_driver
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.registry import build_services
from services.types import HoldStatus
from tests.ledger.helpers import assert_ledger_clean
from tests.waiting import eventually


@pytest.fixture(scope="module")
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=8)
    yield engine
    await engine.dispose()


HELD_THEN_CONFIRMED = [EventType.HELD.value, EventType.CONFIRMED.value]


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


async def _counter(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT last_id FROM checkout.event_counter"))).scalar_one())


async def _stored_events(engine: AsyncEngine, after: int, checkout_id: str) -> list[tuple[str, str, Any]]:
    return [(e.type.value, str(e.key), e.data) for e in await read_after(engine, after, 1000)
            if e.checkout_id == checkout_id]


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


@pytest.mark.parametrize("first_write", [False, True], ids=["locked", "one-statement"])
async def test_concurrent_first_writes_leave_the_newest(engine: AsyncEngine, first_write: bool) -> None:
    """Whichever version lands first, the newest stays, and each status's event is written once, in order."""
    records = BookingRecords(engine)
    checkout_id, customer = unique("co"), unique("cust")
    start = datetime.now(UTC)
    before = await _counter(engine)
    writes = [version(checkout_id, customer, ["PENDING", "HELD", "CONFIRMED"][: n + 1], start).model_copy(
        update={"first_write": first_write}) for n in range(3)]
    outcomes = await asyncio.gather(*(records.record(w) for w in writes * 5))
    assert any(outcomes)
    stored = await records.load(checkout_id)
    assert stored is not None and stored.version == 3 and stored.status == "CONFIRMED"
    assert [kind for kind, _, _ in await _stored_events(engine, before, checkout_id)] == HELD_THEN_CONFIRMED


async def test_a_first_write_in_one_statement_writes_what_the_locked_write_writes(engine: AsyncEngine) -> None:
    """`first_write`: the record and its events as the locked write makes them (the same row, the same events);
    a retried first write writes nothing, takes no event id, and answers False; the next write goes on as ever."""
    records = BookingRecords(engine)
    start = datetime.now(UTC)
    pairs: dict[bool, tuple[BookingRecord, list[tuple[str, str, Any]], str]] = {}
    for first_write in (True, False):
        checkout_id = unique("co")
        held = version(checkout_id, "cust-first", ["PENDING", "HELD"], start).model_copy(
            update={"request": {"customer_id": "cust-first"}, "first_write": first_write})
        before = await _counter(engine)
        assert await records.record(held)
        stored = await records.load(checkout_id)
        assert stored is not None
        events = await _stored_events(engine, before, checkout_id)
        pairs[first_write] = (stored, events, checkout_id)
        if first_write:
            counted = await _counter(engine)
            assert not await records.record(held)  # its activity's next attempt, after a commit it never heard of
            assert await _counter(engine) == counted, "a first write that found its record took event ids"
            assert await _stored_events(engine, before, checkout_id) == events
            confirmed = version(checkout_id, "cust-first", ["PENDING", "HELD", "CONFIRMED"], start)
            assert await records.record(confirmed)
            assert [kind for kind, _, _ in await _stored_events(engine, before, checkout_id)] == HELD_THEN_CONFIRMED
    (fast, fast_events, fast_id), (locked, locked_events, locked_id) = pairs[True], pairs[False]
    assert fast_events and len(fast_events) == len(locked_events) == 1
    assert fast_events[0][0] == locked_events[0][0] == EventType.HELD.value
    assert fast_events[0][1] == locked_events[0][1].replace(locked_id, fast_id)
    assert json.dumps(fast_events[0][2]).replace(fast_id, "id") == json.dumps(locked_events[0][2]).replace(
        locked_id, "id")
    assert (fast.customer_id, fast.status, fast.version, fast.request, fast.created_at) == (
        locked.customer_id, locked.status, locked.version, locked.request, locked.created_at)


async def test_a_first_write_after_a_later_version_changes_nothing(engine: AsyncEngine) -> None:
    records = BookingRecords(engine)
    checkout_id, customer = unique("co"), unique("cust")
    start = datetime.now(UTC)
    confirmed = version(checkout_id, customer, ["PENDING", "HELD", "CONFIRMED"], start)
    assert await records.record(confirmed)
    before = await _counter(engine)
    late = version(checkout_id, customer, ["PENDING", "HELD"], start).model_copy(update={"first_write": True})
    assert not await records.record(late)
    stored = await records.load(checkout_id)
    assert stored is not None and stored.status == "CONFIRMED" and stored.version == 3
    assert await _stored_events(engine, before, checkout_id) == []


async def test_a_first_write_waits_for_the_checkouts_lock_and_then_finds_the_record(engine: AsyncEngine) -> None:
    """A writer holding the checkout's lock (a transaction of `record_change` that has inserted and not committed)
    keeps the one-statement first write waiting; once it commits, the first write finds its record and writes
    nothing (ON CONFLICT sees the row committed after the statement began)."""
    checkout_id, customer = unique("co"), unique("cust")
    held = version(checkout_id, customer, ["PENDING", "HELD"])
    before = await _counter(engine)

    async def first_write() -> bool:
        async with pooled_driver(engine) as db:
            return await insert_first(db, held.model_copy(update={"first_write": True}))

    async def waits_for_the_lock() -> bool:
        async with pooled_driver(engine) as db:
            return bool(await db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = "
                f"(hashtextextended($1, {LOCK_SEED}) & 4294967295)::oid", checkout_id))

    async with driver_transaction(engine) as db:
        assert await record_change(db, held)
        waiting = asyncio.create_task(first_write())
        await eventually(waits_for_the_lock)
        assert not waiting.done()
    assert await waiting is False
    stored = await BookingRecords(engine).load(checkout_id)
    assert stored is not None and stored.version == 2
    assert [kind for kind, _, _ in await _stored_events(engine, before, checkout_id)] == [EventType.HELD.value]


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
