"""Delivery state on real PostgreSQL, statement by statement: the races the relay's loops cannot show on demand."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.events.deliveries import FAN_OUT, Deliveries, Recorded
from services.events.outbox import DELIVERIES, ENDPOINTS
from tests.events.helpers import new_checkout_id, record_change, view


async def _next_attempt(engine: AsyncEngine, endpoint_id: int, event_id: int) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(text(
            f"SELECT next_attempt_at::text FROM {DELIVERIES} WHERE endpoint_id = :e AND event_id = :i"),
            {"e": endpoint_id, "i": event_id})).scalar_one())


async def _until_waiting(engine: AsyncEngine, statement: str) -> None:
    for _ in range(500):
        async with engine.connect() as conn:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"),
                {"q": f"%{statement}%"})).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {statement} ever waited for a lock")


async def _new_endpoint(deliveries: Deliveries) -> int:
    url = f"http://127.0.0.1:1/{new_checkout_id()}"
    return (await deliveries.register([url]))[url]


@pytest.mark.parametrize("lease_next", [False, True], ids=["made due", "leased with the 2xx"])
async def test_a_row_fanned_out_behind_a_head_being_delivered_is_made_due(engine: AsyncEngine,
                                                                         lease_next: bool) -> None:
    deliveries = Deliveries(engine)
    endpoint_id = await _new_endpoint(deliveries)
    cid = new_checkout_id()
    held = view(cid, "HELD")
    (head,) = await record_change(engine, None, held)
    assert await deliveries.fan_out(endpoint_id) >= 1
    (leased,) = [item for item in await deliveries.lease(endpoint_id, "me", 100, 60) if item.event.id == head.id]
    (behind,) = await record_change(engine, held, view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"]))
    assert behind.id is not None
    # A fan-out in flight: it has written the row behind the head (waiting, as the head is there) and not committed.
    conn = await engine.connect()
    try:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute("BEGIN")
        assert await driver.fetchval(FAN_OUT, endpoint_id, 500) == 1
        # Meanwhile the head's 2xx is recorded: it must wait for the fan-out, then make the row behind due.
        recording = asyncio.create_task(deliveries.delivered(leased, "me", 60 if lease_next else None))
        await _until_waiting(engine, "checkout.webhook_delivered")
        assert not recording.done()
        await driver.execute("COMMIT")
    finally:
        await conn.close()
    recorded = await recording
    assert recorded.recorded
    assert await _next_attempt(engine, endpoint_id, behind.id) != "infinity"
    if lease_next:
        # The row behind, leased to the caller with the 2xx: no lease round finds it.
        assert recorded.next is not None and recorded.next.event.id == behind.id and recorded.next.attempt == 1
        assert not recorded.next_due
        assert await deliveries.lease(endpoint_id, "someone else", 100, 60) == []
    else:
        # The relay told that the checkout's next event is due (so it leases again at once).
        assert recorded == Recorded(recorded=True, next_due=True)
        (next_one,) = await deliveries.lease(endpoint_id, "me", 100, 60)
        assert next_one.event.id == behind.id


async def test_unstick_makes_a_waiting_head_due(engine: AsyncEngine) -> None:
    deliveries = Deliveries(engine)
    endpoint_id = await _new_endpoint(deliveries)
    (event,) = await record_change(engine, None, view(new_checkout_id(), "HELD"))
    await deliveries.fan_out(endpoint_id)
    async with engine.begin() as conn:
        await conn.execute(text(f"UPDATE {DELIVERIES} SET next_attempt_at = 'infinity' WHERE endpoint_id = :e"),
                           {"e": endpoint_id})
    assert await deliveries.lease(endpoint_id, "me", 100, 60) == []
    assert await deliveries.unstick([endpoint_id]) == 1
    assert [item.event.id for item in await deliveries.lease(endpoint_id, "me", 100, 60)] == [event.id]


async def test_a_fan_out_with_nothing_new_locks_and_writes_nothing(engine: AsyncEngine) -> None:
    deliveries = Deliveries(engine)
    endpoint_id = await _new_endpoint(deliveries)
    (event,) = await record_change(engine, None, view(new_checkout_id(), "HELD"))

    async def endpoint_row() -> tuple[str, str, int]:
        async with engine.connect() as conn:
            row = (await conn.execute(text(
                f"SELECT xmin::text, xmax::text, cursor FROM {ENDPOINTS} WHERE id = :e"), {"e": endpoint_id})).one()
        return str(row[0]), str(row[1]), int(row[2])

    assert await deliveries.fan_out(endpoint_id) >= 1
    moved = await endpoint_row()
    assert moved[2] >= event.id
    # The relay runs a round after every delivery: with no event committed since, the endpoint's row is neither
    # locked (xmax) nor written (xmin), and no delivery row appears.
    assert await deliveries.fan_out(endpoint_id) == 0
    assert await endpoint_row() == moved
    assert [item.event.id for item in await deliveries.lease(endpoint_id, "me", 100, 60)] == [event.id]


async def test_a_2xx_recorded_says_whether_it_made_an_event_due(engine: AsyncEngine) -> None:
    deliveries = Deliveries(engine)
    endpoint_id = await _new_endpoint(deliveries)
    cid = new_checkout_id()
    held = view(cid, "HELD")
    (first,) = await record_change(engine, None, held)
    (second,) = await record_change(engine, held, view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"]))
    (alone,) = await record_change(engine, None, view(new_checkout_id(), "HELD"))
    await deliveries.fan_out(endpoint_id)
    leased = {item.event.id: item for item in await deliveries.lease(endpoint_id, "me", 100, 60)}
    # Only heads are leased: the checkout's second event waits behind its first.
    assert set(leased) == {first.id, alone.id}
    assert await deliveries.delivered(leased[alone.id], "me") == Recorded(recorded=True, next_due=False)
    assert await deliveries.delivered(leased[first.id], "me") == Recorded(recorded=True, next_due=True)
    (then,) = await deliveries.lease(endpoint_id, "me", 100, 60)
    assert then.event.id == second.id
    # A lease that is no longer the caller's (taken by another relay) records nothing.
    assert await deliveries.delivered(then, "someone else") == Recorded(recorded=False, next_due=False)
    assert await deliveries.delivered(then, "me") == Recorded(recorded=True, next_due=False)


async def test_a_2xx_leases_its_checkouts_next_event_when_due(engine: AsyncEngine) -> None:
    """`delivered` with `lease_seconds`: the checkout's next event comes back leased to the caller when it is due,
    never one that is backing off, nor an event of another checkout."""
    deliveries = Deliveries(engine)
    endpoint_id = await _new_endpoint(deliveries)
    cid = new_checkout_id()
    held = view(cid, "HELD")
    confirmed = view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"])
    (first,) = await record_change(engine, None, held)
    (second,) = await record_change(engine, held, confirmed)
    (alone,) = await record_change(engine, None, view(new_checkout_id(), "HELD"))
    await deliveries.fan_out(endpoint_id)
    leased = {item.event.id: item for item in await deliveries.lease(endpoint_id, "me", 100, 60)}
    assert set(leased) == {first.id, alone.id}
    # Nothing behind it: nothing leased, nothing due.
    assert await deliveries.delivered(leased[alone.id], "me", 60) == Recorded(recorded=True, next_due=False)
    outcome = await deliveries.delivered(leased[first.id], "me", 60)
    assert outcome.recorded and not outcome.next_due and outcome.next is not None
    then = outcome.next
    assert (then.event.id, then.event.type, then.event.checkout_id, then.attempt) == (second.id, second.type, cid, 1)
    assert then.event.data == second.data
    # It is the caller's lease: its 2xx records (another owner's does not).
    assert await deliveries.delivered(then, "someone else", 60) == Recorded(recorded=False, next_due=False)
    assert await deliveries.delivered(then, "me", 60) == Recorded(recorded=True, next_due=False)

    # A next event another relay holds a lease on is not leased again; the answer says one is waiting, for a lease
    # round to find once that lease has run out.
    cid = new_checkout_id()
    held = view(cid, "HELD")
    (head,) = await record_change(engine, None, held)
    (behind,) = await record_change(engine, held, view(cid, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"]))
    await deliveries.fan_out(endpoint_id)
    (item,) = await deliveries.lease(endpoint_id, "me", 100, 60)
    assert item.event.id == head.id
    async with engine.begin() as conn:
        await conn.execute(text(f"UPDATE {DELIVERIES} SET leased_until = now() + interval '1 hour', lease_owner = "
                                "'other' WHERE endpoint_id = :e AND event_id = :i"), {"e": endpoint_id, "i": behind.id})
    assert await deliveries.delivered(item, "me", 60) == Recorded(recorded=True, next_due=True)
