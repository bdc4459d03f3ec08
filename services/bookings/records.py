"""Booking records: every checkout's last known state in PostgreSQL (`checkout.bookings`), kept after Temporal's
retention has deleted its workflow.

Contract:
- One row per checkout id: customer, status, the view (parts with their holds' statuses and lines, history) as
  JSON, the request, `version` (the view's number of history entries), created (the checkout's first status
  change) and updated times.
- Every write goes through `record_change(db, new)` inside the caller's transaction (asyncpg, through
  services.ledger.transaction.driver_transaction, as the ledger's operations: a record is written at each status
  change of every checkout, and SQLAlchemy's layer cost more than the write's own statements): the checkout is
  locked, and `write_record(db, previous, new)` runs only when `new.version` is greater than the stored one, so
  a replayed, retried or late write of an older (or the same) version changes nothing. `write_record` is the
  one place a record changes, with the previous record and the new one at hand: whatever must change in the
  same transaction as a record (an outbox of events) is written there, in the same statement.
- A writer's first write (`RecordInput.first_write`: the saga has recorded nothing yet) is first tried as one
  statement outside a transaction block (`insert_first`): under the same lock, the record inserted only if none is
  stored, with its events (`write_record`'s, for no previous record) in the same statement. When a record is
  stored (a retried first write), it writes nothing and the write goes the locked way above.
- `change_parts` is a cancellation's read-modify-write (lock, change some parts' holds, add a history entry,
  write), in one transaction, so two cancellations of different parts never lose one another's change.
- Reads: `load` (one record), `page` (a customer's or everyone's, newest first, keyset-paged on
  (created_at, checkout_id) with an index each way: no OFFSET, so a page costs the same however deep).
- Retention: `forget_settled_before` deletes settled records older than the business's setting
  (BOOKING_RECORDS_KEEP_DAYS, 0 = kept forever, the default).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    delete,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.bookings.models import BookingRecord, MarkParts, RecordInput
from services.errors import InvalidRequest
from services.events import append_if_changed, append_with, events_for
from services.ledger.statements import BOUNDED, qualified
from services.ledger.transaction import (
    Driver,
    driver_transaction,
    ledger_transaction,
    pooled_driver,
    read_transaction,
)

SCHEMA = "checkout"
# The statuses a checkout never leaves on its own (retention only deletes these).
SETTLED = ("CONFIRMED", "CANCELLED", "EXPIRED", "REJECTED", "FAILED")
PAGE_MAX = 100


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        Index("bookings_by_customer", "customer_id", "created_at", "checkout_id"),
        Index("bookings_by_created", "created_at", "checkout_id"),
    )

    checkout_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    view: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


_T: Table = Booking.__table__  # type: ignore[assignment]
_BOOKINGS = qualified(_T)
LOCK_SEED = 0x626F6F6B  # arbitrary, fixed: keeps these advisory locks apart from others on the same ids
LOCK = f"SELECT pg_advisory_xact_lock(hashtextextended($1, {LOCK_SEED}))"
# JSON is sent and read as text: the statements do not depend on the driver's json codec.
LOCKED_RECORD = f"""SELECT customer_id, status, version, view::text AS view, request::text AS request, created_at,
    updated_at FROM {_BOOKINGS} WHERE checkout_id = $1"""
_NEW = """(checkout_id, customer_id, status, version, view, request, created_at, updated_at)"""
# Typed: a SELECT's parameters take no type from the columns they go into, as VALUES' do.
_NEW_VALUES = "$1::text, $2::text, $3::text, $4::integer, $5::text::jsonb, $6::text::jsonb, $7::timestamptz, now()"
INSERT_RECORD = f"INSERT INTO {_BOOKINGS} {_NEW} VALUES ({_NEW_VALUES})"
# The first write in one statement (`insert_first`): the lock timeout and the checkout's lock as a transaction of
# `record_change` takes them, then the record, only if none is stored (ON CONFLICT sees a row committed after the
# statement began, so no snapshot of its start is trusted).
FIRST_LOCKED = f"""{BOUNDED},
    locked AS (SELECT pg_advisory_xact_lock(hashtextextended($1, {LOCK_SEED})) FROM bounded), """
FIRST_RECORD = f"""INSERT INTO {_BOOKINGS} {_NEW} SELECT {_NEW_VALUES} FROM locked
    ON CONFLICT (checkout_id) DO NOTHING RETURNING 1"""
# A write without the request keeps the one recorded.
UPDATE_RECORD = f"""UPDATE {_BOOKINGS} SET customer_id = $2, status = $3, version = $4, view = $5::text::jsonb,
    request = coalesce($6::text::jsonb, request), updated_at = now() WHERE checkout_id = $1"""


def _record(row: Any) -> BookingRecord:
    return BookingRecord(
        checkout_id=row.checkout_id, customer_id=row.customer_id, status=row.status, version=row.version,
        view=row.view, request=row.request, created_at=row.created_at, updated_at=row.updated_at,
    )


def created_at_of(view: dict[str, Any]) -> datetime:
    """The checkout's first status change: the same on every write, whoever writes first."""
    history = view.get("history") or []
    if history and history[0].get("at"):
        return datetime.fromisoformat(str(history[0]["at"]))
    return datetime.now(UTC)


async def _locked(db: Driver, checkout_id: str) -> BookingRecord | None:
    """The record, with every other writer of this checkout kept out until the transaction ends. A transaction
    advisory lock on the id, not a row lock: it serializes the first two writes too, when no row exists yet. The
    read is a statement of its own, after the lock is granted: a statement's snapshot is taken when it starts,
    so one that also waited for the lock could read the record as it was before the writer it waited for."""
    await db.fetchval(LOCK, checkout_id)
    row = await db.fetchrow(LOCKED_RECORD, checkout_id)
    if row is None:
        return None
    return BookingRecord(
        checkout_id=checkout_id, customer_id=row["customer_id"], status=row["status"], version=row["version"],
        view=json.loads(row["view"]), request=json.loads(row["request"]) if row["request"] is not None else None,
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _written(new: RecordInput) -> list[object]:
    """The parameters $1-$6 every write of a record sends (UPDATE_RECORD's all)."""
    return [new.checkout_id, new.customer_id, new.status, new.version, json.dumps(new.view),
            json.dumps(new.request) if new.request is not None else None]


def _inserted(new: RecordInput) -> list[object]:
    """INSERT_RECORD's and FIRST_RECORD's parameters: a write's, and $7 the checkout's first status change."""
    return [*_written(new), created_at_of(new.view)]


async def write_record(db: Driver, previous: BookingRecord | None, new: RecordInput) -> None:
    """THE write of a record, in the caller's transaction, the previous record (None: the first) at hand.

    Callers hold the checkout's lock and have checked that `new` is newer (`record_change`, `change_parts`).
    Anything that must commit or roll back with a record's change (the events outbox) is written here, in the
    record's own statement (the transaction's last: the outbox's counter lock is held from there to the commit).
    Its first write has a twin that needs no transaction, `insert_first`."""
    if previous is None:
        change, arguments = INSERT_RECORD, _inserted(new)
    else:
        change, arguments = UPDATE_RECORD, _written(new)
    await append_with(db, change, arguments, events_for(previous.view if previous is not None else None, new.view))


async def insert_first(db: Driver, new: RecordInput) -> bool:
    """`write_record` of a checkout with no record, as ONE statement on `db` outside a transaction block (a round
    trip where the locked transaction takes five): the record and its events, under the checkout's lock. False
    when a record is stored: nothing was written, and `record_change` decides."""
    return await append_if_changed(db, FIRST_LOCKED, FIRST_RECORD, _inserted(new), events_for(None, new.view))


async def record_change(db: Driver, new: RecordInput) -> bool:
    """Write `new` if it is newer than the stored record, in the caller's transaction. True when written."""
    previous = await _locked(db, new.checkout_id)
    if previous is not None and previous.version >= new.version:
        return False
    await write_record(db, previous, new)
    return True


def changed_parts(previous: BookingRecord, change: MarkParts) -> RecordInput | None:
    """The record after `change`; None when it changes nothing (a repeated cancellation)."""
    view: dict[str, Any] = json.loads(json.dumps(previous.view))
    holds: list[dict[str, Any]] = list(view.get("holds") or [])
    history: list[dict[str, Any]] = list(view.get("history") or [])
    moved = False
    for i, hold in enumerate(holds):
        new = change.holds.get(str(hold.get("service", "")))
        if new is not None and new.get("status") != hold.get("status"):
            holds[i] = new
            moved = True
    if change.status is not None:
        status = change.status
    elif any(h.get("status") in LIVE_HOLDS for h in holds):
        # Parts remain: the status the checkout had before any NEEDS_ATTENTION of this cancellation.
        status = next((h["status"] for h in reversed(history) if h.get("status") != "NEEDS_ATTENTION"),
                      previous.status)
    else:
        status = change.status_when_none_left
    if not moved and status == previous.status:
        return None
    view.update(holds=holds, status=status, error=change.error)
    history.append({"status": status, "at": change.at.isoformat(), "reason": change.reason})
    view["history"] = history
    return RecordInput(
        checkout_id=previous.checkout_id, customer_id=previous.customer_id, status=status, version=len(history),
        view=view,
    )


# A part still booked: what a cancellation can still release (ACTIVE) or return (CONFIRMED).
LIVE_HOLDS = ("ACTIVE", "CONFIRMED")


async def change_parts(db: Driver, change: MarkParts) -> BookingRecord | None:
    """A cancellation's change, read-modify-write under the checkout's lock, in the caller's transaction.
    Answers the record as it is afterwards (None: there is no record)."""
    previous = await _locked(db, change.checkout_id)
    if previous is None:
        return None
    new = changed_parts(previous, change)
    if new is None:
        return previous
    await write_record(db, previous, new)
    return BookingRecord(
        checkout_id=new.checkout_id, customer_id=new.customer_id, status=new.status, version=new.version,
        view=new.view, request=previous.request, created_at=previous.created_at, updated_at=previous.updated_at,
    )


@dataclass(frozen=True)
class Page:
    records: list[BookingRecord]
    next_cursor: str | None


def encode_cursor(record: BookingRecord) -> str:
    assert record.created_at is not None
    raw = json.dumps([record.created_at.isoformat(), record.checkout_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at, checkout_id) of the last record of a page; InvalidRequest when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, checkout_id = json.loads(raw)
        at = datetime.fromisoformat(created)
        if not isinstance(checkout_id, str) or at.tzinfo is None:
            raise ValueError("not a cursor")
        return at, checkout_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError) as error:
        raise InvalidRequest("cursor is not one this API gave (use next_cursor as it was answered)") from error


class BookingRecords:
    """The records on one engine (the API's database)."""

    name = "booking-records"

    def __init__(self, engine: AsyncEngine, keep_days: int = 0) -> None:
        self.engine = engine
        self.keep_days = keep_days

    async def record(self, new: RecordInput) -> bool:
        """One write, in a transaction of its own (the saga's activity); a first write is tried as one statement
        first (the module's docstring). True when it changed the record."""
        if new.first_write:
            async with pooled_driver(self.engine) as db:
                if await insert_first(db, new):
                    return True
        async with driver_transaction(self.engine) as db:
            return await record_change(db, new)

    async def change_parts(self, change: MarkParts) -> BookingRecord | None:
        async with driver_transaction(self.engine) as db:
            return await change_parts(db, change)

    async def load(self, checkout_id: str) -> BookingRecord | None:
        async with read_transaction(self.engine) as conn:
            row = (await conn.execute(select(_T).where(_T.c.checkout_id == checkout_id))).first()
        return _record(row) if row is not None else None

    async def page(
        self, customer_id: str | None, statuses: Sequence[str], limit: int, cursor: str | None
    ) -> Page:
        """Newest first; `cursor` is the previous page's `next_cursor`."""
        query = select(_T)
        if customer_id is not None:
            query = query.where(_T.c.customer_id == customer_id)
        if statuses:
            query = query.where(_T.c.status.in_(list(statuses)))
        if cursor:
            at, checkout_id = decode_cursor(cursor)
            query = query.where(tuple_(_T.c.created_at, _T.c.checkout_id) < tuple_(at, checkout_id))
        query = query.order_by(_T.c.created_at.desc(), _T.c.checkout_id.desc()).limit(limit + 1)
        async with read_transaction(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        records = [_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(records, encode_cursor(records[-1]) if more and records else None)

    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int:
        """The sweeper's pass: forget settled records older than the retention (none when it is 0)."""
        if self.keep_days <= 0:
            return 0
        return await self.forget_settled_before(now - timedelta(days=self.keep_days))

    async def forget_settled_before(self, cutoff: datetime) -> int:
        async with ledger_transaction(self.engine) as conn:
            result = await conn.execute(
                delete(_T).where(and_(_T.c.updated_at < cutoff, _T.c.status.in_(SETTLED)))
            )
        return int(result.rowcount or 0)



