"""The outbox: events written in the caller's transaction, with ids in commit order.

`append(db, events)` writes into `checkout.events` on the caller's asyncpg connection, inside the caller's open
transaction (services.ledger.transaction.driver_transaction); `append_with(db, change, arguments, events)` sends the
caller's last write (the booking record's) and the events as one statement. Either way the change and its events
commit together or not at all.

Ids in commit order. A reader of `GET /v1/events?after=<id>` must be able to trust that nothing will ever commit
below an id it has passed. A sequence does not give that: two transactions take 10 and 11, the one with 11 commits
first, a reader reads 11 and moves past it, then 10 commits, unseen forever. So the id comes from one counter row,
`checkout.event_counter`, updated by `append` (which the caller calls last in its transaction): the row lock taken
by that UPDATE is held until the transaction ends, so the next writer gets its ids only once this one has committed
(or rolled back, taking its ids with it). An id is therefore handed out only after every smaller id is committed
(or will never exist), which is the guarantee. What it costs: transactions that append serialize for the time
between their append and their commit (one statement and the commit's WAL flush), so `append` must be the last
statement of the transaction; transactions that append nothing never touch the counter.

Why not the alternative (a sequence plus `pg_current_xact_id()` per row, readers filtering on
`pg_snapshot_xmin(pg_current_snapshot())`): it needs no lock, but every reader then waits for the OLDEST open
transaction of the whole server, any transaction (a long report, a stuck migration) stalls every feed and webhook,
and the cursor becomes a pair (xid, id) instead of an id a person can read. At the rates a checkout saga writes
(a few events per checkout) the counter's short serialization costs less than that.

The event also sends a NOTIFY on `booking_events` (delivered at commit), so the webhook relay picks it up at once
instead of at its next poll.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, MetaData, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.events.model import Event, EventType
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, pooled_driver

SCHEMA = "checkout"
NOTIFY_CHANNEL = "booking_events"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("events_by_checkout", "checkout_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(Text, unique=True)
    type: Mapped[str] = mapped_column(Text)
    checkout_id: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    part: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, object]] = mapped_column(JSONB)
    # clock_timestamp() at the insert: as close to the commit as the row can say (the delivery lag starts here).
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventCounter(Base):
    __tablename__ = "event_counter"

    one: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True)
    # Events up to this id have their deliveries to this endpoint written.
    cursor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("deliveries_by_checkout", "endpoint_id", "checkout_id", "event_id"),
        Index("deliveries_due", "endpoint_id", "next_attempt_at", postgresql_where=text("state = 'PENDING'")),
    )

    endpoint_id: Mapped[int] = mapped_column(Integer, ForeignKey(WebhookEndpoint.id), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(EventRow.id), primary_key=True)
    checkout_id: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)  # PENDING or PARKED; a delivered one is deleted
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


EVENTS = qualified(EventRow.__table__)
COUNTER = qualified(EventCounter.__table__)
ENDPOINTS = qualified(WebhookEndpoint.__table__)
DELIVERIES = qualified(WebhookDelivery.__table__)


def _append_sql(first: int, change: str | None = None, *, before: str = "", if_changed: bool = False) -> str:
    """One statement: take `n` ids from the counter (its row lock is held to the end of the caller's transaction),
    write the events with them, and notify the relay; with `change`, that write runs as a CTE of the same
    statement (after the CTEs `before`, with their trailing comma). Its 8 parameters are numbered from `first`. A
    key already written (the same change written again) is skipped; its id stays unused, a gap readers never wait
    for. `if_changed`: the counter is taken and the events written only if `change` answered a row (its
    RETURNING), and the statement answers a row per event written, or one row without an id when there was none,
    or no row when `change` wrote nothing."""
    n, keys, types, checkout_ids, customer_ids, occurred, parts, datas = (f"${first + i}" for i in range(8))
    ctes = f"{before}change AS ({change}), " if change is not None else ""
    condition = f" AND {n}::integer > 0 AND EXISTS (SELECT FROM change)" if if_changed else ""
    notify = f"pg_notify('{NOTIFY_CHANNEL}', '')"
    answer = (f"SELECT w.id, w.key, CASE WHEN w.id IS NOT NULL THEN {notify} END FROM change "
              "LEFT JOIN written w ON true ORDER BY w.id" if if_changed
              else f"SELECT id, key, {notify} FROM written ORDER BY id")
    return f"""
WITH {ctes}counter AS (
    UPDATE {COUNTER} SET last_id = last_id + {n}::integer WHERE one{condition} RETURNING last_id
), written AS (
    INSERT INTO {EVENTS} (id, key, type, checkout_id, customer_id, occurred_at, part, data)
    SELECT counter.last_id - {n}::integer + e.ord, e.key, e.type, e.checkout_id, e.customer_id, e.occurred_at,
           e.part, e.data::jsonb
    FROM counter, unnest({keys}::text[], {types}::text[], {checkout_ids}::text[], {customer_ids}::text[],
                         {occurred}::timestamptz[], {parts}::text[], {datas}::text[])
        WITH ORDINALITY AS e(key, type, checkout_id, customer_id, occurred_at, part, data, ord)
    ON CONFLICT (key) DO NOTHING
    RETURNING id, key
)
{answer}"""


_APPEND = _append_sql(1)

COLUMNS = "id, type, checkout_id, customer_id, occurred_at, part, data::text, recorded_at"
READ_AFTER = f"SELECT {COLUMNS} FROM {EVENTS} WHERE id > $1 ORDER BY id LIMIT $2"


async def append(db: Driver, events: Sequence[Event]) -> list[Event]:
    """Write `events` in the transaction open on `db`; they commit with it. Call it LAST in the transaction
    (see the module docstring). Returns the events written, with their ids, in id order (an event whose key was
    already written is left out). Nothing is done for no events."""
    if not events:
        return []
    keys, arguments = append_arguments(events)
    return _written(events, keys, await db.fetch(_APPEND, *arguments))


async def append_with(db: Driver, change: str, arguments: Sequence[object], events: Sequence[Event]) -> list[Event]:
    """`change` (a write with `len(arguments)` parameters, the transaction's last) and the append of `events`,
    as ONE statement in the transaction open on `db`: a round trip less than the two apart. Answers as `append`;
    with no events, `change` runs alone."""
    if not events:
        await db.execute(change, *arguments)
        return []
    keys, appended = append_arguments(events)
    statement = _append_sql(len(arguments) + 1, change)
    return _written(events, keys, await db.fetch(statement, *arguments, *appended))


async def append_if_changed(db: Driver, before: str, change: str, arguments: Sequence[object],
                            events: Sequence[Event]) -> bool:
    """`change` (a write with `len(arguments)` parameters that answers one row, `RETURNING 1`, when it wrote, none
    when it did not; run after the CTEs `before`) and, only if it wrote, the append of `events`, as ONE statement:
    outside a transaction block it commits alone, holding the counter's lock no longer than itself. True when
    `change` wrote; False: nothing was written."""
    _keys, appended = append_arguments(events)
    statement = _append_sql(len(arguments) + 1, change, before=before, if_changed=True)
    return bool(await db.fetch(statement, *arguments, *appended))


def append_arguments(events: Sequence[Event]) -> tuple[list[str], list[object]]:
    """The events' keys, and the append's 8 parameters in order (n, keys, types, checkout ids, customer ids,
    occurred_at, parts, data as JSON text)."""
    keys = [event.key or f"{event.checkout_id}:{event.type.value}:{event.occurred_at.isoformat()}"
            for event in events]
    return keys, [
        len(events), keys, [event.type.value for event in events], [event.checkout_id for event in events],
        [event.customer_id for event in events], [event.occurred_at for event in events],
        [event.part for event in events], [json.dumps(event.data, default=str) for event in events],
    ]


def _written(events: Sequence[Event], keys: list[str], rows: Sequence[Any]) -> list[Event]:
    by_key = {key: event for event, key in zip(events, keys, strict=True)}
    return [by_key[key].model_copy(update={"id": event_id, "key": key}) for event_id, key, _ in rows]


def event_from_row(row: Sequence[object]) -> Event:
    """An Event from a row of READ_AFTER's columns (asyncpg)."""
    event_id, kind, checkout_id, customer_id, occurred_at, part, data, _recorded = row
    assert isinstance(occurred_at, datetime) and isinstance(data, str)
    return Event(id=int(str(event_id)), type=EventType(str(kind)), checkout_id=str(checkout_id),
                 customer_id=str(customer_id), occurred_at=occurred_at, part=None if part is None else str(part),
                 data=json.loads(data))


async def read_after(engine: AsyncEngine, after: int, limit: int) -> list[Event]:
    """Up to `limit` committed events with ids above `after`, in id (commit) order: the feed's page."""
    async with pooled_driver(engine) as db:
        return [event_from_row(row) for row in await db.fetch(READ_AFTER, after, limit)]
