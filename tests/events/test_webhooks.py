"""Webhooks end to end: events appended in transactions on a real PostgreSQL, the relay (a task here, or
`booking-saga relay` processes), receivers in processes of their own that verify each request with the
standardwebhooks library and record what they got."""

from __future__ import annotations

import asyncio
import io
import signal
from argparse import Namespace
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking_saga.relay import events_main
from services.db import create_engine
from services.events import EventType, read_after
from services.events.outbox import DELIVERIES, ENDPOINTS
from services.events.relay import Relay, RelayMetrics
from settings import Settings
from tests.events.helpers import lifecycle, new_checkout_id, record_change, view
from tests.events.webhooks import (
    Receiver,
    config,
    eventually,
    in_order_per_checkout,
    registered,
    relay_process,
    relay_task,
)

pytestmark = pytest.mark.slow


async def write_lifecycles(engine: AsyncEngine, count: int) -> tuple[set[str], list[int]]:
    """`count` checkouts, each HELD, a part cancelled, CONFIRMED; interleaved across checkouts."""
    checkout_ids = [new_checkout_id() for _ in range(count)]
    ids: list[int] = []
    steps = [lifecycle(cid) for cid in checkout_ids]
    for step in range(3):
        for changes in steps:
            ids += [e.id for e in await record_change(engine, *changes[step]) if e.id is not None]
    return set(checkout_ids), ids


def all_delivered(receiver: Receiver, checkout_ids: set[str], ids: list[int]) -> bool:
    return set(ids) <= {e["id"] for e in receiver.delivered(checkout_ids)}


async def test_every_event_type_is_delivered_signed_and_verified(engine: AsyncEngine, tmp_path: Path) -> None:
    receiver = Receiver(tmp_path).start()
    try:
        async with relay_task(engine, config(receiver.url)):
            cid = new_checkout_id()
            held = view(cid, "HELD", holds={"flight": "ACTIVE", "hotel": "ACTIVE"})
            part = view(cid, "HELD", holds={"flight": "ACTIVE", "hotel": "RELEASED"})
            changes: list[tuple[dict[str, Any] | None, dict[str, Any]]] = [(None, held), (held, part)]
            history = ["PENDING", "HELD"]
            for status in ("NEEDS_ATTENTION", "CONFIRMED", "CANCELLED", "EXPIRED", "FAILED"):
                history = [*history, status]
                changes.append((changes[-1][1], view(cid, status, history)))
            other = new_checkout_id()
            changes.append((None, view(other, "REJECTED")))
            written = []
            for previous, current in changes:
                written += await record_change(engine, previous, current)
            assert {e.type for e in written} == set(EventType)
            await eventually(lambda: len(receiver.delivered({cid, other})) >= len(written), "every event delivered")
        requests = [r for r in receiver.requests() if r["event"] and r["event"]["checkout_id"] in {cid, other}]
        assert all(r["verified"] and r["id"] == str(r["event"]["id"]) for r in requests)
        delivered = receiver.delivered({cid, other})
        # In order within a checkout (the other checkout's event may come at any point: concurrency).
        assert [e["type"] for e in delivered if e["checkout_id"] == cid] == [
            e.type.value for e in written if e.checkout_id == cid]
        assert {e["type"] for e in delivered} == {t.value for t in EventType}
        # The body is the feed's event, byte for byte the same fields.
        feed = {e.id: e.body() for e in await read_after(engine, min(e.id or 0 for e in written) - 1, 100)}
        assert all(feed[e["id"]] == e for e in delivered)
    finally:
        receiver.stop()


async def test_a_receiver_down_for_a_while_loses_nothing_and_order_is_kept(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path)  # not started: connections are refused
    registry = CollectorRegistry()
    async with relay_task(engine, config(receiver.url), RelayMetrics(registry)):
        checkout_ids, ids = await write_lifecycles(engine, 5)
        await eventually(lambda: (registry.get_sample_value(
            "booking_webhook_deliveries_total", {"endpoint": receiver.url, "outcome": "failed"}) or 0) >= 10,
            "attempts failing while the receiver is down")
        receiver.start()
        try:
            await eventually(lambda: all_delivered(receiver, checkout_ids, ids), "everything delivered once up")
        finally:
            receiver.stop()
        labels = {"endpoint": receiver.url}
        # The relay counts a delivery once it has recorded it, a moment after the receiver has answered.
        await eventually(lambda: (registry.get_sample_value("booking_webhook_delivery_lag_seconds_count", labels)
                                  or 0) >= len(ids), "every delivery's lag observed")
        assert (registry.get_sample_value("booking_webhook_deliveries_total",
                                          {**labels, "outcome": "delivered"}) or 0) >= len(ids)
        # The delivery state the dashboard shows: nothing waiting, nothing parked, nothing left to fan out.
        await eventually(lambda: registry.get_sample_value("booking_webhook_pending", labels) == 0
                         and registry.get_sample_value("booking_webhook_parked", labels) == 0
                         and registry.get_sample_value("booking_webhook_backlog_events", labels) == 0,
                         "the gauges show an empty queue")
    firsts = in_order_per_checkout(receiver.delivered(checkout_ids))
    assert sorted(i for ids_ in firsts.values() for i in ids_) == sorted(ids)


async def test_500s_then_200s(engine: AsyncEngine, tmp_path: Path) -> None:
    receiver = Receiver(tmp_path)
    receiver.control(fail_first=6)
    receiver.start()
    try:
        async with relay_task(engine, config(receiver.url)):
            checkout_ids, ids = await write_lifecycles(engine, 2)
            await eventually(lambda: all_delivered(receiver, checkout_ids, ids), "delivered after the 500s")
        statuses = [r["status"] for r in receiver.requests() if r["event"]["checkout_id"] in checkout_ids]
        assert statuses[:6] == [500] * 6 and statuses[-1] == 200
        in_order_per_checkout(receiver.delivered(checkout_ids))
    finally:
        receiver.stop()


async def test_failures_park_then_an_operator_replays_them_in_order(
    engine: AsyncEngine, tmp_path: Path, migrated_database_url: str
) -> None:
    receiver = Receiver(tmp_path)
    receiver.control(status=503)
    receiver.start()
    settings = Settings(database_url=migrated_database_url)
    try:
        # A retry window of under a second: the first failures park.
        async with relay_task(engine, config(receiver.url, retry_hours=0.5 / 3600)):
            checkout_ids, ids = await write_lifecycles(engine, 2)

            async def listed() -> str:
                out = io.StringIO()
                await events_main(settings, Namespace(action="failed", endpoint=receiver.url, limit=100, json=False),
                                  out)
                return out.getvalue()

            async def all_parked() -> bool:
                text = await listed()
                return all(str(i) in text for i in ids)

            await eventually(all_parked, "every event parked")
            text = await listed()
            assert "HTTP 503" in text and "behind parked event" in text
            receiver.control(status=200)
            out = io.StringIO()
            code = await events_main(settings, Namespace(action="replay", event_ids=[], endpoint=receiver.url), out)
            assert code == 0 and out.getvalue().startswith(f"replaying {len(ids)} ")
            await eventually(lambda: all_delivered(receiver, checkout_ids, ids), "replayed and delivered")
        in_order_per_checkout(receiver.delivered(checkout_ids))
        assert "no parked deliveries" in await listed()
    finally:
        receiver.stop()


async def test_a_slow_endpoint_delays_no_other_endpoint(engine: AsyncEngine, tmp_path: Path) -> None:
    slow, fast = Receiver(tmp_path, "slow"), Receiver(tmp_path, "fast")
    slow.control(delay=3.0)
    slow.start()
    fast.start()
    try:
        async with relay_task(engine, config(slow.url, fast.url, timeout_seconds=10.0)):
            checkout_ids, ids = await write_lifecycles(engine, 1)
            await eventually(lambda: all_delivered(fast, checkout_ids, ids), "the fast endpoint has everything")
            # The slow one answers one event of the checkout every 3 s: it is still on its way.
            assert len(slow.delivered(checkout_ids)) < len(ids)
            await eventually(lambda: all_delivered(slow, checkout_ids, ids), "the slow endpoint too, in time")
        in_order_per_checkout(slow.delivered(checkout_ids))
    finally:
        slow.stop()
        fast.stop()


async def test_a_relay_killed_mid_delivery_loses_nothing(
    engine: AsyncEngine, tmp_path: Path, migrated_database_url: str
) -> None:
    receiver = Receiver(tmp_path)
    receiver.control(delay=1.0)
    receiver.start()
    relays = [relay_process(migrated_database_url, receiver.url)]
    try:
        await registered(engine, receiver.url)
        checkout_ids, ids = await write_lifecycles(engine, 4)
        await eventually(lambda: len(receiver.requests()) >= 2, "requests in flight")
        relays[0].send_signal(signal.SIGKILL)
        relays[0].wait(10)
        receiver.control()
        relays.append(relay_process(migrated_database_url, receiver.url))
        await eventually(lambda: all_delivered(receiver, checkout_ids, ids), "delivered by the next relay")
        in_order_per_checkout(receiver.delivered(checkout_ids))
    finally:
        for relay in relays:
            relay.terminate()
            relay.wait(10)
        receiver.stop()


async def test_a_relay_stopped_mid_delivery_hands_its_leases_back(
    engine: AsyncEngine, tmp_path: Path, migrated_database_url: str
) -> None:
    receiver = Receiver(tmp_path)
    receiver.control(delay=5.0)
    receiver.start()
    relay = relay_process(migrated_database_url, receiver.url)
    try:
        await registered(engine, receiver.url)
        endpoint_id = await _endpoint_id(engine, receiver.url)
        await write_lifecycles(engine, 3)
        await eventually(lambda: _leased(engine, endpoint_id), "leases taken")
        relay.terminate()  # SIGTERM: a graceful stop
        assert relay.wait(30) == 0
        assert not await _leased(engine, endpoint_id)
    finally:
        if relay.poll() is None:
            relay.kill()
        receiver.stop()


async def _endpoint_id(engine: AsyncEngine, url: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT id FROM {ENDPOINTS} WHERE url = :u"), {"u": url})).scalar_one())


async def _leased(engine: AsyncEngine, endpoint_id: int) -> bool:
    async with engine.connect() as conn:
        return bool((await conn.execute(text(
            f"SELECT count(*) FROM {DELIVERIES} WHERE endpoint_id = :e AND lease_owner IS NOT NULL"),
            {"e": endpoint_id})).scalar_one())


async def test_two_relays_at_once(engine: AsyncEngine, tmp_path: Path, migrated_database_url: str) -> None:
    receiver = Receiver(tmp_path)
    receiver.start()
    relays = [relay_process(migrated_database_url, receiver.url) for _ in range(2)]
    try:
        await registered(engine, receiver.url)
        checkout_ids, ids = await write_lifecycles(engine, 20)
        await eventually(lambda: all_delivered(receiver, checkout_ids, ids), "everything delivered")
        delivered = receiver.delivered(checkout_ids)
        in_order_per_checkout(delivered)
        assert sorted({e["id"] for e in delivered}) == sorted(ids)
    finally:
        for relay in relays:
            relay.terminate()
            relay.wait(10)
        receiver.stop()


async def test_relay_needs_endpoints(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="WEBHOOK_URLS"):
        Relay(engine, config())


async def test_a_commit_wakes_the_relay_without_waiting_for_its_poll(engine: AsyncEngine, tmp_path: Path) -> None:
    receiver = Receiver(tmp_path).start()
    try:
        # A poll far beyond the wait below: only the commit's NOTIFY can bring the event in time.
        async with relay_task(engine, config(receiver.url, poll_seconds=600.0)):
            await asyncio.sleep(0.5)  # the relay's first rounds done; it now waits for a wake-up
            checkout_ids, ids = await write_lifecycles(engine, 1)
            await eventually(lambda: all_delivered(receiver, checkout_ids, ids), "delivered on NOTIFY", within=60)
    finally:
        receiver.stop()


async def test_a_relay_without_endpoints_idles_until_stopped(migrated_database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    relay = relay_process(migrated_database_url, log=log)
    try:
        await eventually(lambda: log.exists() and "nothing to deliver" in log.read_text(), "the relay says so")
        assert relay.poll() is None
        relay.terminate()
        assert relay.wait(30) == 0
    finally:
        if relay.poll() is None:
            relay.kill()


async def rounds_to_deliver(
    engine: AsyncEngine, receiver: Receiver, write: Callable[[], Awaitable[tuple[set[str], list[int]]]]
) -> tuple[set[str], list[int]]:
    """Run a relay whose rounds start at most every few seconds while `write` commits events, wait until every one
    is delivered, and check they took one round, or two where the first commit came once the window since the
    relay's start had passed (that round starts at once and the others wait for the next); one more per window the
    writing spanned. A round per commit would run one per event."""
    registry = CollectorRegistry()
    window = 5.0
    labels = {"endpoint": receiver.url}
    async with relay_task(engine, config(receiver.url, poll_seconds=600.0, round_seconds=window, concurrency=16),
                          RelayMetrics(registry)):
        rounds_before = registry.get_sample_value("booking_webhook_rounds_total", labels) or 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        checkout_ids, ids = await write()
        writing = loop.time() - started
        await eventually(lambda: all_delivered(receiver, checkout_ids, ids), "every event delivered")
        rounds = (registry.get_sample_value("booking_webhook_rounds_total", labels) or 0) - rounds_before
    assert 1 <= rounds <= 2 + writing // window, (rounds, writing)
    return checkout_ids, ids


async def test_commits_between_two_rounds_go_out_in_one(engine: AsyncEngine, tmp_path: Path) -> None:
    """Rounds start at most every `round_seconds`: events committed one by one meanwhile share the next round (one
    fan-out and one lease for all)."""

    async def write() -> tuple[set[str], list[int]]:
        checkout_ids = {new_checkout_id() for _ in range(8)}
        ids = [e.id for cid in checkout_ids for e in await record_change(engine, None, view(cid, "HELD"))]
        return checkout_ids, ids

    receiver = Receiver(tmp_path).start()
    try:
        await rounds_to_deliver(engine, receiver, write)
    finally:
        receiver.stop()


async def test_a_stop_does_not_wait_for_the_next_round(engine: AsyncEngine, tmp_path: Path) -> None:
    """A relay waiting for its next round's time stops at once when asked, holding no lease."""
    receiver = Receiver(tmp_path).start()
    own = create_engine(engine.url.render_as_string(hide_password=False), pool_size=4)
    relay = Relay(own, config(receiver.url, poll_seconds=600.0, round_seconds=3600.0))
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.ready.wait(), 30)
        await asyncio.sleep(0.5)  # the relay's first round done
        checkout_id = new_checkout_id()
        await record_change(engine, None, view(checkout_id, "HELD"))  # wakes the relay, whose next round is far
        await asyncio.sleep(0.5)
        relay.stop()
        # Far below the hour the round would wait; a bound for a stuck stop, not a measurement.
        await asyncio.wait_for(task, 60)
        async with engine.connect() as conn:
            leased = (await conn.execute(text(f"SELECT count(*) FROM {DELIVERIES} WHERE lease_owner IS NOT NULL"
                                              " AND checkout_id = :c"), {"c": checkout_id})).scalar_one()
        assert leased == 0
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await own.dispose()
        receiver.stop()


async def test_a_checkouts_events_go_out_back_to_back_in_one_round(engine: AsyncEngine, tmp_path: Path) -> None:
    """Each 2xx leases its checkout's next event with it (checkout.webhook_delivered_next), so the relay sends it
    at once, in order, without a lease round of its own: three events of each checkout, written one after the
    other, go out in the round that fanned them out."""
    receiver = Receiver(tmp_path).start()
    try:
        checkout_ids, ids = await rounds_to_deliver(engine, receiver, lambda: write_lifecycles(engine, 4))
    finally:
        receiver.stop()
    firsts = in_order_per_checkout(receiver.delivered(checkout_ids))
    assert sorted(i for ids_ in firsts.values() for i in ids_) == sorted(ids)
