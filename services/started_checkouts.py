"""Which checkout ids have a saga: the durable record the API's sold-out fast path trusts.

The API records a checkout id here BEFORE it starts (or joins) that checkout's saga. The fast path answers a 409
from the availability cache alone only for an id with no record: such an id never had a saga, so nothing was
ever held under it and REJECTED is what a saga would answer now. An id with a record goes to its saga, so a
key that got a 201 keeps getting its saga's answer even once the cache shows sold out.

A lookup is one primary-key read on PostgreSQL. It replaced a Temporal describe per fast 409, which cost the
dev server more than the whole rest of the answer. Rows are kept like the ledger's hold lines: one small row per
checkout.

Concurrent lookups share reads (`has`): while one read is on its way, the ids asked meanwhile wait and go
together in the next one. A flash sale's late buyers all ask at once, and a read each would spend the API's CPU
and the pool's connections on round trips that one `= ANY(...)` read answers. An id is never answered by a
read that started before it was asked: a record made just before its lookup is always seen.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import DateTime, MetaData, Text, func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.ledger.statements import qualified
from services.ledger.transaction import Driver, pooled_driver

SCHEMA = "checkout"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class StartedCheckout(Base):
    __tablename__ = "started"

    checkout_id: Mapped[str] = mapped_column(Text, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


_TABLE = qualified(StartedCheckout.__table__)
# Plain SQL on the asyncpg connection: prepared once per connection, no statement building per request.
RECORD = f"INSERT INTO {_TABLE} (checkout_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING checkout_id"
FOUND = f"SELECT checkout_id FROM {_TABLE} WHERE checkout_id = ANY($1::text[])"
EXISTS = f"SELECT EXISTS (SELECT 1 FROM {_TABLE} WHERE checkout_id = $1)"


# The record's one writer is `record_on` (through StartedCheckouts.record, or inside the customer limits' claim
# transaction: services/customer_limits.py); api/admission.py `claim` decides which, once per checkout.
async def record_on(db: Driver, checkout_id: str) -> bool:
    """Record `checkout_id` on `db` (a connection, in its caller's transaction if any). True when the id is new."""
    return await db.fetchval(RECORD, checkout_id) is not None


async def recorded_on(db: Driver, checkout_id: str) -> bool:
    """Whether `checkout_id` was recorded, read on `db` (in its caller's transaction if any)."""
    return bool(await db.fetchval(EXISTS, checkout_id))


class StartedCheckouts:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Ids asked since the read on its way started, each with its askers' answers to come.
        self._asked: dict[str, list[asyncio.Future[bool]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def record(self, checkout_id: str) -> bool:
        """Note that `checkout_id` has (or is about to have) a saga. Idempotent; committed when it returns. True
        when the id is new (False: it was started before)."""
        async with pooled_driver(self.engine) as db:
            return await record_on(db, checkout_id)

    async def has(self, checkout_id: str) -> bool:
        """Whether `checkout_id` was recorded. Raises the read's LedgerError (services.errors) when it fails."""
        answer = asyncio.get_running_loop().create_future()
        self._asked.setdefault(checkout_id, []).append(answer)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_while_asked())
        # An asker that gives up (its request cancelled) leaves the read to the others.
        return await answer

    async def _read_while_asked(self) -> None:
        while self._asked:
            batch, self._asked = self._asked, {}
            try:
                async with pooled_driver(self.engine) as db:
                    found = {row[0] for row in await db.fetch(FOUND, list(batch))}
            except Exception as error:  # every asker of this read gets its error; the next read is tried anew
                _settle(batch, error=error)
            except BaseException:  # the reader itself is cancelled (shutdown): nobody may wait forever
                _settle(batch, error=None, cancel=True)
                _settle(self._asked, error=None, cancel=True)
                self._asked = {}
                raise
            else:
                _settle(batch, found=found)


def _settle(
    batch: dict[str, list[asyncio.Future[bool]]], found: set[str] | None = None, error: Exception | None = None,
    cancel: bool = False,
) -> None:
    for checkout_id, answers in batch.items():
        for answer in answers:
            if answer.done():  # cancelled by its asker
                continue
            if cancel:
                answer.cancel()
            elif error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(found is not None and checkout_id in found)
