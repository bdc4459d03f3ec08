"""Webhook delivery state in PostgreSQL: one row per (endpoint, event) not yet delivered, shared by every relay.

- **Fan-out.** Each endpoint has a `cursor`: the events up to it have their delivery rows. `fan_out` locks the
  endpoint's row (`FOR UPDATE SKIP LOCKED`: one replica at a time fans out, the others go on delivering), writes a
  row per event above the cursor and moves the cursor, in one statement (one round trip; a round with no new event
  locks and writes nothing). Event ids are in commit order (services/events/outbox.py), so a cursor never passes
  an event that commits later. A new endpoint starts at the
  newest event: it receives what happens from then on (the feed has the past).
- **Per checkout, in order.** Only the head of a (endpoint, checkout) queue can be leased: the row with no older
  row of the same checkout on that endpoint. The next event of a checkout is sent only once the previous one got a
  2xx (its row is then deleted; `delivered` with `lease_seconds` leases that next row to the same relay in the same
  round trip, so it goes out at once). Different checkouts are leased independently, so they go out concurrently.
  A row written behind another waits with `next_attempt_at` = infinity and is made due when the row before it
  goes, so a lease reads only due heads off the `deliveries_due` index, however long a dead endpoint's queue has
  grown. The fan-out holds the row it found ahead FOR SHARE, so a delivery deleting that row waits for the fan-out
  and then sees the row to promote (`unstick` is the safety net that finds any head left waiting anyway).
- **Leases, not transactions, across the HTTP call.** `lease` marks due heads with `leased_until` and an owner
  (`FOR UPDATE SKIP LOCKED`: two relays never lease the same row) in a short transaction; the POST runs with no
  connection held; the outcome is written only while the lease is still the caller's (`lease_owner` and the attempt
  number match). A relay killed mid-delivery leaves a lease that runs out, and another relay (or the same, restarted)
  sends the event again: at least once, the event id (`webhook-id`) being the receiver's dedup key.
- **Retry, then park.** A failed attempt is retried after `retry_after` seconds (the relay's backoff); an attempt
  that fails once the row is older than the retry window parks the row, and every later row of the same checkout
  on that endpoint with it (they would otherwise overtake it). Rows written behind a parked one are parked at once.
  `replay` puts parked rows back in the queue with a fresh window; replaying one event also replays the parked
  events of its checkout behind it, so order is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.events.model import Event
from services.events.outbox import COUNTER, DELIVERIES, ENDPOINTS, EVENTS, NOTIFY_CHANNEL, event_from_row
from services.ledger.transaction import driver_transaction, pooled_driver

REGISTER = f"""INSERT INTO {ENDPOINTS} (url, cursor) SELECT unnest($1::text[]), (SELECT last_id FROM {COUNTER})
    ON CONFLICT (url) DO NOTHING"""
ENDPOINT_IDS = f"SELECT id, url FROM {ENDPOINTS} WHERE url = ANY($1::text[])"
# The delivery rows of the events of the statement's `picked` (id, checkout_id) on endpoint $1: parked behind a
# parked event of the same checkout, waiting (infinity) behind any other row of it, due now otherwise.
WRITE_PICKED = f"""
    INSERT INTO {DELIVERIES} (endpoint_id, event_id, checkout_id, state, parked_at, last_error, next_attempt_at)
    SELECT $1, p.id, p.checkout_id,
           CASE WHEN b.event_id IS NULL THEN 'PENDING' ELSE 'PARKED' END,
           CASE WHEN b.event_id IS NULL THEN NULL ELSE now() END,
           CASE WHEN b.event_id IS NULL THEN NULL ELSE 'behind parked event ' || b.event_id END,
           CASE WHEN EXISTS (SELECT 1 FROM {DELIVERIES} q WHERE q.endpoint_id = $1 AND q.checkout_id = p.checkout_id
                             LIMIT 1 FOR SHARE)
                THEN 'infinity'::timestamptz ELSE now() END
    FROM picked p LEFT JOIN LATERAL (
        SELECT d.event_id FROM {DELIVERIES} d
        WHERE d.endpoint_id = $1 AND d.checkout_id = p.checkout_id AND d.state = 'PARKED'
        ORDER BY d.event_id LIMIT 1
    ) b ON true
    ON CONFLICT DO NOTHING"""
# One statement, so one round trip and no transaction of its own. The endpoint's row is locked only when events
# above its cursor have committed (the counter says so without a lock), so a round with nothing new writes nothing.
FAN_OUT = f"""
WITH locked AS (
    SELECT n.cursor FROM {ENDPOINTS} n
    WHERE n.id = $1 AND n.cursor < (SELECT last_id FROM {COUNTER})
    FOR UPDATE OF n SKIP LOCKED
), picked AS (
    SELECT id, checkout_id FROM {EVENTS} WHERE id > (SELECT cursor FROM locked) ORDER BY id LIMIT $2
), written AS ({WRITE_PICKED}
), moved AS (
    UPDATE {ENDPOINTS} SET cursor = (SELECT max(id) FROM picked) WHERE id = $1 AND EXISTS (SELECT 1 FROM picked)
)
SELECT count(*) FROM picked"""
LEASE = f"""
WITH due AS (
    SELECT h.event_id FROM {DELIVERIES} h
    WHERE h.endpoint_id = $1 AND h.state = 'PENDING' AND h.next_attempt_at <= now()
      AND (h.leased_until IS NULL OR h.leased_until < now())
      AND NOT EXISTS (SELECT 1 FROM {DELIVERIES} o WHERE o.endpoint_id = h.endpoint_id
                      AND o.checkout_id = h.checkout_id AND o.event_id < h.event_id)
    ORDER BY h.next_attempt_at, h.event_id LIMIT $3
    FOR UPDATE OF h SKIP LOCKED
)
UPDATE {DELIVERIES} d SET leased_until = now() + make_interval(secs => $4), lease_owner = $2,
    attempts = d.attempts + 1
FROM due, {EVENTS} e
WHERE d.endpoint_id = $1 AND d.event_id = due.event_id AND e.id = due.event_id
RETURNING e.id, e.type, e.checkout_id, e.customer_id, e.occurred_at, e.part, e.data::text, e.recorded_at,
    d.attempts"""
# The row goes and its checkout's next row is made due: two statements, each with a snapshot of its own, in one
# round trip (the function's migration, 0006_webhook_delivered, says why they must be two). NULL: not the caller's
# row; else 1 when the checkout has a next event waiting on the endpoint, 0 when not.
DELIVERED = "SELECT checkout.webhook_delivered($1, $2, $3, $4)"
# The same, then the checkout's next row leased to the caller when it is due, in the same round trip (a third
# statement in the function: 0007_webhook_delivered_next). No row: not the caller's row; else whether a next event
# waits, and the one leased (NULLs when none was).
DELIVERED_NEXT = "SELECT * FROM checkout.webhook_delivered_next($1, $2, $3, $4, $5)"
# A row written while its checkout's head was being deleted can miss its promotion: found here, a while later.
UNSTICK = f"""UPDATE {DELIVERIES} h SET next_attempt_at = now()
    WHERE h.endpoint_id = ANY($1::int[]) AND h.state = 'PENDING' AND h.next_attempt_at = 'infinity'
      AND NOT EXISTS (SELECT 1 FROM {DELIVERIES} o WHERE o.endpoint_id = h.endpoint_id
                      AND o.checkout_id = h.checkout_id AND o.event_id < h.event_id)
    RETURNING h.event_id"""
RETRY = f"""UPDATE {DELIVERIES} SET leased_until = NULL, lease_owner = NULL, last_error = $5,
    next_attempt_at = now() + make_interval(secs => $6)
    WHERE endpoint_id = $1 AND event_id = $2 AND lease_owner = $3 AND attempts = $4
      AND created_at > now() - make_interval(secs => $7)
    RETURNING checkout_id"""
RELEASE = f"""UPDATE {DELIVERIES} SET leased_until = NULL, lease_owner = NULL
    WHERE endpoint_id = $1 AND event_id = $2 AND lease_owner = $3 AND attempts = $4"""
RELEASE_ALL = f"""UPDATE {DELIVERIES} SET leased_until = NULL, lease_owner = NULL
    WHERE endpoint_id = $1 AND lease_owner = $2"""
OWNED = f"""SELECT checkout_id FROM {DELIVERIES} WHERE endpoint_id = $1 AND event_id = $2 AND lease_owner = $3
    AND attempts = $4 FOR UPDATE"""
PARK = f"""UPDATE {DELIVERIES} SET state = 'PARKED', parked_at = now(), leased_until = NULL, lease_owner = NULL,
    last_error = CASE WHEN event_id = $2 THEN $4 ELSE 'behind parked event ' || $2 END
    WHERE endpoint_id = $1 AND checkout_id = $3 AND event_id >= $2 AND state = 'PENDING'
    RETURNING event_id"""
PARKED = f"""SELECT n.url, d.event_id, e.type, d.checkout_id, d.attempts, d.created_at, d.parked_at, d.last_error
    FROM {DELIVERIES} d JOIN {ENDPOINTS} n ON n.id = d.endpoint_id JOIN {EVENTS} e ON e.id = d.event_id
    WHERE d.state = 'PARKED' AND ($1::text IS NULL OR n.url = $1)
    ORDER BY n.url, d.event_id LIMIT $2"""
REPLAY = f"""UPDATE {DELIVERIES} d SET state = 'PENDING', attempts = 0, created_at = now(), next_attempt_at = now(),
    parked_at = NULL, leased_until = NULL, lease_owner = NULL
    FROM {ENDPOINTS} n
    WHERE n.id = d.endpoint_id AND d.state = 'PARKED' AND ($2::text IS NULL OR n.url = $2)
      AND ($1::bigint[] IS NULL OR EXISTS (
          SELECT 1 FROM {DELIVERIES} p WHERE p.endpoint_id = d.endpoint_id AND p.checkout_id = d.checkout_id
          AND p.state = 'PARKED' AND p.event_id = ANY($1::bigint[]) AND p.event_id <= d.event_id))
    RETURNING d.event_id"""
NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
STATS = f"""SELECT n.url,
    count(d.event_id) FILTER (WHERE d.state = 'PENDING'),
    count(d.event_id) FILTER (WHERE d.state = 'PARKED'),
    coalesce(extract(epoch FROM now() - min(d.created_at) FILTER (WHERE d.state = 'PENDING')), 0)::float8,
    (SELECT last_id FROM {COUNTER}) - n.cursor
    FROM {ENDPOINTS} n LEFT JOIN {DELIVERIES} d ON d.endpoint_id = n.id
    WHERE n.url = ANY($1::text[]) GROUP BY n.id, n.url, n.cursor"""
FAN_OUT_BATCH = 500


@dataclass(frozen=True)
class Leased:
    """A delivery this relay may attempt now: the event, and which attempt this is (its lease token)."""

    endpoint_id: int
    event: Event
    attempt: int
    recorded_at: datetime

    @classmethod
    def from_row(cls, endpoint_id: int, row: Sequence[Any]) -> Leased:
        """From a leased row as the lease and the 2xx answer it: the event's eight columns (`recorded_at` the
        last), then the attempt."""
        return cls(endpoint_id, event_from_row(row[:8]), int(row[8]), row[7])


@dataclass(frozen=True)
class Recorded:
    """A 2xx's outcome: recorded (the lease was still the caller's), and whether the checkout has a next event
    waiting on the endpoint (due now, as a rule: the relay leases again at once)."""

    recorded: bool
    next_due: bool
    # The checkout's next event, leased to the caller with the 2xx (`delivered` given `lease_seconds`).
    next: Leased | None = None


@dataclass(frozen=True)
class Parked:
    url: str
    event_id: int
    type: str
    checkout_id: str
    attempts: int
    created_at: datetime
    parked_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class EndpointStats:
    url: str
    pending: int
    parked: int
    oldest_pending_seconds: float
    # Committed events not yet fanned out to this endpoint.
    backlog: int


class Deliveries:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def register(self, urls: Sequence[str]) -> dict[str, int]:
        """Each url's endpoint id; a url never seen starts at the newest committed event."""
        async with pooled_driver(self.engine) as db:
            await db.execute(REGISTER, list(urls))
            return {url: endpoint_id for endpoint_id, url in await db.fetch(ENDPOINT_IDS, list(urls))}

    async def fan_out(self, endpoint_id: int, batch: int = FAN_OUT_BATCH) -> int:
        """Write the delivery rows of up to `batch` new events; how many events were fanned out (0 also when
        another replica is fanning out this endpoint right now)."""
        async with pooled_driver(self.engine) as db:
            return int(await db.fetchval(FAN_OUT, endpoint_id, batch))

    async def lease(self, endpoint_id: int, owner: str, limit: int, lease_seconds: float) -> list[Leased]:
        """Up to `limit` due heads of their checkouts' queues on this endpoint, leased to `owner`."""
        async with pooled_driver(self.engine) as db:
            rows = await db.fetch(LEASE, endpoint_id, owner, limit, lease_seconds)
        leased = [Leased.from_row(endpoint_id, row) for row in rows]
        return sorted(leased, key=lambda item: item.event.id or 0)

    async def delivered(self, leased: Leased, owner: str, lease_seconds: float | None = None) -> Recorded:
        """Record a 2xx: the row goes, and its checkout's next row is due. Not `recorded` when the lease had run
        out and been taken meanwhile. With `lease_seconds`, that next row is leased to `owner` too when it is due
        (`next`; `next_due` then says whether one is waiting that was not leased)."""
        async with pooled_driver(self.engine) as db:
            if lease_seconds is None:
                waiting = await db.fetchval(DELIVERED, leased.endpoint_id, leased.event.id, owner, leased.attempt)
                return Recorded(recorded=waiting is not None, next_due=bool(waiting))
            row = await db.fetchrow(DELIVERED_NEXT, leased.endpoint_id, leased.event.id, owner, leased.attempt,
                                    lease_seconds)
        if row is None:
            return Recorded(recorded=False, next_due=False)
        if row[1] is None:
            return Recorded(recorded=True, next_due=bool(row[0]))
        return Recorded(recorded=True, next_due=False, next=Leased.from_row(leased.endpoint_id, row[1:]))

    async def unstick(self, endpoint_ids: Sequence[int]) -> int:
        """Make due the heads left waiting behind a row that is gone (see UNSTICK); how many."""
        async with pooled_driver(self.engine) as db:
            return len(await db.fetch(UNSTICK, list(endpoint_ids)))

    async def release(self, leased: Leased, owner: str) -> None:
        """Give a lease back unused (the relay is stopping): any relay may send the event at once."""
        async with pooled_driver(self.engine) as db:
            await db.execute(RELEASE, leased.endpoint_id, leased.event.id, owner, leased.attempt)

    async def release_all(self, endpoint_id: int, owner: str) -> int:
        """Give back every lease `owner` holds on the endpoint (the relay is stopping); how many."""
        async with pooled_driver(self.engine) as db:
            status = await db.execute(RELEASE_ALL, endpoint_id, owner)
        return int(status.split()[-1])

    async def failed(
        self, leased: Leased, owner: str, error: str, retry_after: float, retry_window: float
    ) -> list[int]:
        """Record a failed attempt: retried after `retry_after` seconds while the row is younger than
        `retry_window` seconds, parked otherwise (with the rows of its checkout behind it). The event ids parked
        (empty when retried, or when the lease was no longer the caller's)."""
        async with driver_transaction(self.engine) as db:
            retried = await db.fetchval(RETRY, leased.endpoint_id, leased.event.id, owner, leased.attempt,
                                        error, retry_after, retry_window)
            if retried is not None:
                return []
            checkout_id = await db.fetchval(OWNED, leased.endpoint_id, leased.event.id, owner, leased.attempt)
            if checkout_id is None:
                return []
            rows = await db.fetch(PARK, leased.endpoint_id, leased.event.id, checkout_id, error)
            return [int(row[0]) for row in rows]

    async def parked(self, url: str | None = None, limit: int = 1000) -> list[Parked]:
        async with pooled_driver(self.engine) as db:
            rows = await db.fetch(PARKED, url, limit)
        return [Parked(*row) for row in rows]

    async def replay(self, event_ids: Sequence[int] | None = None, url: str | None = None) -> list[int]:
        """Parked deliveries back in the queue, due now with a fresh retry window: all of them, those to `url`,
        and/or those of `event_ids` (each with its checkout's parked events behind it). The event ids replayed."""
        async with driver_transaction(self.engine) as db:
            rows = await db.fetch(REPLAY, None if event_ids is None else list(event_ids), url)
            await db.execute(NOTIFY)
        return sorted({int(row[0]) for row in rows})

    async def stats(self, urls: Sequence[str]) -> list[EndpointStats]:
        async with pooled_driver(self.engine) as db:
            rows = await db.fetch(STATS, list(urls))
        return [EndpointStats(str(url), int(pending), int(parked), float(oldest), int(backlog))
                for url, pending, parked, oldest, backlog in rows]
