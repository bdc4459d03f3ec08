"""The booking record's write before the cut that moved it onto asyncpg, its events in the record's own statement:
kept as that cut's baseline only.

Before, a write ran on SQLAlchemy's connection and transaction: BEGIN, SET LOCAL lock_timeout, the checkout's
advisory lock, the stored record, the record's INSERT or UPDATE, the events' append as a statement of its own, and
COMMIT (seven round trips, each through SQLAlchemy's statement, result and greenlet layers). The records scenario
(bench/scenarios/records.py) writes the same checkouts through it and through services/bookings/records.py, in the
same run. Nothing outside bench/ uses this module.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.bookings.models import RecordInput
from services.bookings.records import LOCK_SEED, Booking, created_at_of
from services.events import events_for
from services.events.outbox import COUNTER, EVENTS, NOTIFY_CHANNEL, append_arguments
from services.ledger.transaction import ledger_transaction

_T: Table = Booking.__table__  # type: ignore[assignment]
FORMER_APPEND = text(f"""
WITH counter AS (
    UPDATE {COUNTER} SET last_id = last_id + :n WHERE one RETURNING last_id
), written AS (
    INSERT INTO {EVENTS} (id, key, type, checkout_id, customer_id, occurred_at, part, data)
    SELECT counter.last_id - :n + e.ord, e.key, e.type, e.checkout_id, e.customer_id, e.occurred_at, e.part,
           e.data::jsonb
    FROM counter, unnest(CAST(:keys AS text[]), CAST(:types AS text[]), CAST(:checkout_ids AS text[]),
                         CAST(:customer_ids AS text[]), CAST(:occurred AS timestamptz[]), CAST(:parts AS text[]),
                         CAST(:datas AS text[]))
        WITH ORDINALITY AS e(key, type, checkout_id, customer_id, occurred_at, part, data, ord)
    ON CONFLICT (key) DO NOTHING
    RETURNING id, key
)
SELECT id, key, pg_notify('{NOTIFY_CHANNEL}', '') FROM written ORDER BY id
""")


# FORMER_APPEND's parameters, in append_arguments' order.
FORMER_APPEND_NAMES = ("n", "keys", "types", "checkout_ids", "customer_ids", "occurred", "parts", "datas")


async def former_record(engine: AsyncEngine, new: RecordInput) -> bool:
    """The former `BookingRecords.record`: True when it changed the record."""
    async with ledger_transaction(engine) as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(new.checkout_id, LOCK_SEED))))
        row = (await conn.execute(select(_T).where(_T.c.checkout_id == new.checkout_id))).first()
        if row is not None and row.version >= new.version:
            return False
        values: dict[str, Any] = {
            "customer_id": new.customer_id, "status": new.status, "version": new.version, "view": new.view,
            "updated_at": func.now(),
        }
        if new.request is not None:
            values["request"] = new.request
        if row is None:
            await conn.execute(insert(_T).values(checkout_id=new.checkout_id, created_at=created_at_of(new.view),
                                                 **values))
        else:
            await conn.execute(update(_T).where(_T.c.checkout_id == new.checkout_id).values(**values))
        events = events_for(row.view if row is not None else None, new.view)
        if events:
            _, arguments = append_arguments(events)
            await conn.execute(FORMER_APPEND, dict(zip(FORMER_APPEND_NAMES, arguments, strict=True)))
    return True
