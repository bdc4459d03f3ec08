"""The outbox on real PostgreSQL: events_for's catalogue, append in the caller's transaction, and ids a reader can
trust under concurrent commits (nothing ever commits below an id a reader has passed)."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.events import EventType, append, events_for, read_after
from services.ledger.transaction import driver_transaction
from tests.events.helpers import lifecycle, new_checkout_id, record_change, view


def test_each_status_makes_its_event() -> None:
    cid = new_checkout_id()
    held = view(cid, "HELD")
    expected = {"CONFIRMED": EventType.CONFIRMED, "CANCELLED": EventType.CANCELLED, "EXPIRED": EventType.EXPIRED,
                "FAILED": EventType.FAILED, "NEEDS_ATTENTION": EventType.NEEDS_ATTENTION}
    assert [e.type for e in events_for(None, held)] == [EventType.HELD]
    assert [e.type for e in events_for(None, view(cid, "REJECTED"))] == [EventType.REJECTED]
    for status, kind in expected.items():
        after = view(cid, status, ["PENDING", "HELD", status])
        (event,) = events_for(held, after)
        assert (event.type, event.checkout_id, event.customer_id, event.data) == (kind, cid, "cust-1", after)


def test_no_change_no_event_and_pending_announces_nothing() -> None:
    cid = new_checkout_id()
    held = view(cid, "HELD")
    assert events_for(held, held) == []
    assert events_for(None, view(cid, "PENDING", ["PENDING"])) == []


def test_statuses_reached_at_once_each_make_an_event_in_order() -> None:
    cid = new_checkout_id()
    confirmed = view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"])
    assert [e.type for e in events_for(None, confirmed)] == [EventType.HELD, EventType.CONFIRMED]


def test_part_cancelled_only_while_the_checkout_remains() -> None:
    cid = new_checkout_id()
    sold = view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"], holds={"flight": "CONFIRMED", "hotel": "CONFIRMED"})
    one_returned = view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"],
                        holds={"flight": "CONFIRMED", "hotel": "RETURNED"})
    (event,) = events_for(sold, one_returned)
    assert (event.type, event.part, event.body()["part"]) == (EventType.PART_CANCELLED, "hotel", "hotel")
    # The last part going cancels the checkout: that is checkout.cancelled, not a part event.
    all_returned = view(cid, "CANCELLED", ["PENDING", "HELD", "CONFIRMED", "CANCELLED"],
                        holds={"flight": "RETURNED", "hotel": "RETURNED"})
    assert [e.type for e in events_for(one_returned, all_returned)] == [EventType.CANCELLED]
    # A rejected checkout's compensations release holds: no part was cancelled.
    held = view(cid, "HELD", holds={"flight": "ACTIVE"})
    released = view(cid, "HELD", holds={"flight": "RELEASED", "hotel": "ACTIVE"})
    assert [e.part for e in events_for(held, released)] == ["flight"]
    rejected = view(cid, "REJECTED", holds={"flight": "RELEASED", "hotel": "REJECTED"})
    assert [e.type for e in events_for(None, rejected)] == [EventType.REJECTED]


def test_a_part_cancelled_written_as_a_history_entry_of_the_same_status_is_only_a_part_event() -> None:
    """The booking record writes a part's cancellation as a history entry repeating the checkout's status."""
    cid = new_checkout_id()
    held = view(cid, "HELD", holds={"flight": "ACTIVE", "hotel": "ACTIVE"})
    part = view(cid, "HELD", ["PENDING", "HELD", "HELD"], holds={"flight": "ACTIVE", "hotel": "RELEASED"})
    assert [(e.type, e.part) for e in events_for(held, part)] == [(EventType.PART_CANCELLED, "hotel")]
    # A status left and reached again is a change each time.
    attention = view(cid, "NEEDS_ATTENTION", ["PENDING", "HELD", "HELD", "NEEDS_ATTENTION"],
                     holds={"flight": "ACTIVE", "hotel": "RELEASED"})
    back = view(cid, "HELD", ["PENDING", "HELD", "HELD", "NEEDS_ATTENTION", "HELD"],
                holds={"flight": "ACTIVE", "hotel": "RELEASED"})
    assert [e.type for e in events_for(part, attention)] == [EventType.NEEDS_ATTENTION]
    assert [e.type for e in events_for(attention, back)] == [EventType.HELD]
    assert [e.type for e in events_for(None, back)] == [EventType.HELD, EventType.NEEDS_ATTENTION, EventType.HELD]


def test_a_part_cancelled_then_a_confirm_recorded_in_one_write_keep_their_order() -> None:
    cid = new_checkout_id()
    held = view(cid, "HELD", holds={"flight": "ACTIVE", "hotel": "ACTIVE"})
    confirmed = view(cid, "CONFIRMED", ["PENDING", "HELD", "HELD", "CONFIRMED"],
                     holds={"flight": "CONFIRMED", "hotel": "RELEASED"})
    events = events_for(held, confirmed)
    assert [e.type for e in events] == [EventType.PART_CANCELLED, EventType.CONFIRMED]
    assert events[0].occurred_at == datetime.fromisoformat(confirmed["history"][2]["at"])
    # Confirmed, then a part returned: the other way round.
    returned = view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED", "CONFIRMED"],
                    holds={"flight": "CONFIRMED", "hotel": "RETURNED"})
    assert [e.type for e in events_for(held, returned)] == [EventType.CONFIRMED, EventType.PART_CANCELLED]


def test_body_is_the_documented_shape() -> None:
    (event,) = events_for(None, view(new_checkout_id(), "HELD"))
    body = event.body()
    assert set(body) == {"id", "type", "checkout_id", "customer_id", "occurred_at", "data", "part"}
    assert body["type"] == "checkout.held"


async def test_append_commits_with_the_transaction_and_a_rollback_leaves_nothing(engine: AsyncEngine) -> None:
    cid = new_checkout_id()
    start = await _last_id(engine)
    with pytest.raises(RuntimeError):
        async with driver_transaction(engine) as db:
            await append(db, events_for(None, view(cid, "HELD")))
            raise RuntimeError("the record's write failed")
    assert [e for e in await read_after(engine, start, 100) if e.checkout_id == cid] == []
    written = []
    for previous, current in lifecycle(cid):
        written += await record_change(engine, previous, current)
    read = [e for e in await read_after(engine, start, 100) if e.checkout_id == cid]
    assert [e.type for e in read] == [EventType.HELD, EventType.PART_CANCELLED, EventType.CONFIRMED]
    assert [e.id for e in read] == [e.id for e in written]
    assert read[1].data["holds"][1]["status"] == "RELEASED"


async def test_the_same_change_written_twice_is_stored_once(engine: AsyncEngine) -> None:
    cid = new_checkout_id()
    start = await _last_id(engine)
    held = view(cid, "HELD")
    first = await record_change(engine, None, held)
    again = await record_change(engine, None, held)  # a retried write computing from a stale previous
    assert len(first) == 1 and again == []
    assert [e.id for e in await read_after(engine, start, 100) if e.checkout_id == cid] == [first[0].id]


async def test_a_later_writer_waits_for_the_earlier_one_to_commit(engine: AsyncEngine) -> None:
    """The race a sequence loses: A takes its id, B takes the next and commits first. Here B cannot take an id
    until A has committed, so a reader never passes A's id before A is visible."""
    start = await _last_id(engine)
    a_id, b_id = new_checkout_id(), new_checkout_id()
    async with driver_transaction(engine) as a_db:
        (a_event,) = await append(a_db, events_for(None, view(a_id, "HELD")))
        b_task = asyncio.create_task(record_change(engine, None, view(b_id, "HELD")))
        await _until_a_writer_waits_for_a_lock(engine)
        assert not b_task.done()
        assert await read_after(engine, start, 100) == []  # A is not committed yet: nothing to pass
    (b_event,) = await b_task
    assert a_event.id is not None and b_event.id is not None and b_event.id > a_event.id
    assert [e.checkout_id for e in await read_after(engine, start, 100)] == [a_id, b_id]


async def test_a_sequence_would_lose_the_race(engine: AsyncEngine) -> None:
    """The control: the same two writers on a plain sequence, and the reader passes an id that commits later."""
    table = f"public.seq_race_{random.randrange(10**9)}"
    a_conn, b_conn, reader = await engine.connect(), await engine.connect(), await engine.connect()
    try:
        await a_conn.execute(text(f"CREATE TABLE {table} (id bigserial PRIMARY KEY)"))
        await a_conn.commit()
        a_tx = await a_conn.begin()
        a_id = (await a_conn.execute(text(f"INSERT INTO {table} DEFAULT VALUES RETURNING id"))).scalar_one()
        async with b_conn.begin():
            await b_conn.execute(text(f"INSERT INTO {table} DEFAULT VALUES"))
        passed = (await reader.execute(text(f"SELECT max(id) FROM {table}"))).scalar_one()
        await reader.commit()
        await a_tx.commit()
        assert a_id < passed  # committed after a reader passed a higher id: lost to that reader
        await a_conn.execute(text(f"DROP TABLE {table}"))
        await a_conn.commit()
    finally:
        for conn in (a_conn, b_conn, reader):
            await conn.close()


@pytest.mark.slow
async def test_concurrent_writers_never_commit_below_what_a_reader_passed(engine: AsyncEngine) -> None:
    writers, changes = 8, 20
    start = await _last_id(engine)
    committed: list[int] = []
    done = asyncio.Event()

    async def writer(n: int) -> None:
        for _ in range(changes):
            cid = new_checkout_id()
            async with driver_transaction(engine) as db:
                written = await append(db, events_for(None, view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"])))
                # Work between the append and the commit widens every window a weaker design would have.
                await asyncio.sleep(random.uniform(0, 0.004))
            committed.extend(e.id for e in written if e.id is not None)

    seen: list[int] = []

    async def reader() -> None:
        cursor = start
        while True:
            finished = done.is_set()
            page = await read_after(engine, cursor, 7)
            for event in page:
                assert event.id is not None and event.id > cursor
                seen.append(event.id)
                cursor = event.id
            if finished and not page:
                return

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(writers)))
    done.set()
    await reading
    assert len(committed) == writers * changes * 2
    assert seen == sorted(seen)
    assert set(committed) <= set(seen), f"missed by the reader: {sorted(set(committed) - set(seen))[:10]}"


async def _last_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT last_id FROM checkout.event_counter"))).scalar_one())


async def _until_a_writer_waits_for_a_lock(engine: AsyncEngine) -> None:
    for _ in range(500):
        async with engine.connect() as conn:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%event_counter%'"
            ))).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second writer never waited for the counter")
