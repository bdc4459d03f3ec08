"""Per-customer hold limits: no customer holds more than `active_max` checkouts at once (PENDING or HELD), nor
more than `units_max` units of one inventory row across their checkouts.

Why here, in one PostgreSQL transaction per checkout, before its saga starts: the checkout-count limit spans
participants (no one ledger's transaction sees all of a customer's checkouts), a refused checkout must hold
nothing and leave no saga running, and the count must be exact under concurrency. So the API claims each new
checkout here: the customer's row is locked (`FOR UPDATE`), which serializes that customer's claims and no one
else's; the claim counts the customer's live claims and units per row, and either records the claim with its
rows or refuses with which limit, the current figure and the max. The same transaction records the checkout id
as started (services/started_checkouts.py), so a retried POST of a checkout that already has a saga, running or
settled, is never counted again.

The saga removes its claim when it settles (confirm, cancel, expiry, rejection, failure); a claim whose saga is
lost is removed by the sweeper once `expires_at` (the longest a checkout can hold, plus grace) has passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from sqlalchemy import DateTime, ForeignKey, Index, Integer, MetaData, Text, func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.errors import HOLD_LIMIT, HttpProblem
from services.ledger.statements import qualified
from services.ledger.transaction import driver_transaction, pooled_driver
from services.started_checkouts import record_on, recorded_on

SCHEMA = "checkout"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Customer(Base):
    """One row per customer: the lock that serializes that customer's claims."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(Text, primary_key=True)


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (Index("claims_by_customer", "customer_id"), Index("claims_by_expiry", "expires_at"))

    checkout_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text, ForeignKey(f"{SCHEMA}.customers.customer_id"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ClaimRow(Base):
    __tablename__ = "claim_rows"

    checkout_id: Mapped[str] = mapped_column(
        Text, ForeignKey(f"{SCHEMA}.claims.checkout_id", ondelete="CASCADE"), primary_key=True
    )
    service: Mapped[str] = mapped_column(Text, primary_key=True)
    resource: Mapped[str] = mapped_column(Text, primary_key=True)
    units: Mapped[int] = mapped_column(Integer)


_CUSTOMERS = qualified(Customer.__table__)
_CLAIMS = qualified(Claim.__table__)
_ROWS = qualified(ClaimRow.__table__)

ENSURE_CUSTOMER = f"INSERT INTO {_CUSTOMERS} (customer_id) VALUES ($1) ON CONFLICT DO NOTHING"
LOCK_CUSTOMER = f"SELECT 1 FROM {_CUSTOMERS} WHERE customer_id = $1 FOR UPDATE"
LIVE_CLAIMS = f"SELECT count(*) FROM {_CLAIMS} WHERE customer_id = $1 AND expires_at > now()"
UNITS_HELD = f"""SELECT r.service, r.resource, sum(r.units) AS units FROM {_ROWS} r JOIN {_CLAIMS} c USING (checkout_id)
    WHERE c.customer_id = $1 AND c.expires_at > now() AND (r.service, r.resource) IN (
        SELECT * FROM unnest($2::text[], $3::text[]))
    GROUP BY r.service, r.resource"""
INSERT_CLAIM = f"INSERT INTO {_CLAIMS} (checkout_id, customer_id, expires_at) VALUES ($1, $2, $3)"
INSERT_ROWS = f"""INSERT INTO {_ROWS} (checkout_id, service, resource, units)
    SELECT $1, unnest($2::text[]), unnest($3::text[]), unnest($4::integer[])"""
RELEASE = f"DELETE FROM {_CLAIMS} WHERE checkout_id = $1 RETURNING checkout_id"
EXPIRE = f"DELETE FROM {_CLAIMS} WHERE expires_at < $1"


@dataclass
class LimitExceeded(Exception):
    # Not frozen: raising sets __traceback__ on the instance.
    """A new checkout would pass a limit: nothing was claimed."""

    # Its HTTP answer, in the error table (services/errors.py): 429 hold-limit.
    problem: ClassVar[HttpProblem] = HOLD_LIMIT

    limit: str  # 'active_checkouts' or 'units_per_row'
    current: int
    max: int
    resource: str | None = None

    def __str__(self) -> str:
        if self.limit == "active_checkouts":
            return f"the customer already has {self.current} checkouts pending or held (at most {self.max})"
        return (f"the customer already holds {self.current} of {self.resource} in other checkouts; with this one "
                f"it would pass {self.max}")


def claim_lifetime(hold_lifetime_max_seconds: int, grace_seconds: int) -> timedelta:
    """A claim outlives the longest hold a checkout can have (plus the sweeper's grace and room for placing the
    holds), so only a lost saga's claim ever expires."""
    return timedelta(seconds=hold_lifetime_max_seconds + grace_seconds + 120)


class CustomerLimits:
    def __init__(self, engine: AsyncEngine, active_max: int, units_max: int, claim_for: timedelta) -> None:
        """`active_max` / `units_max` 0: no such limit. `claim_for`: how long a claim lives if its saga never
        removes it (the longest a checkout can hold, plus grace)."""
        self.engine = engine
        self.active_max = active_max
        self.units_max = units_max
        self.claim_for = claim_for

    async def claim(self, checkout_id: str, customer_id: str, rows: Mapping[tuple[str, str], int]) -> bool:
        """Count a new checkout against its customer's limits and record it as started, or raise LimitExceeded.

        `rows`: units per (participant, ledger row). A checkout id already started is not counted again (and
        answers False; a new one True)."""
        async with driver_transaction(self.engine) as db:
            await db.execute(ENSURE_CUSTOMER, customer_id)
            await db.execute(LOCK_CUSTOMER, customer_id)
            if await recorded_on(db, checkout_id):
                return False
            if self.active_max:
                live = int(await db.fetchval(LIVE_CLAIMS, customer_id))
                if live >= self.active_max:
                    raise LimitExceeded("active_checkouts", live, self.active_max)
            keys = sorted(rows)
            if self.units_max and keys:
                held = {
                    (row["service"], row["resource"]): int(row["units"])
                    for row in await db.fetch(UNITS_HELD, customer_id, [k[0] for k in keys], [k[1] for k in keys])
                }
                for key in keys:
                    if held.get(key, 0) + rows[key] > self.units_max:
                        raise LimitExceeded("units_per_row", held.get(key, 0), self.units_max, f"{key[0]}:{key[1]}")
            expires_at = await db.fetchval("SELECT now()") + self.claim_for
            await db.execute(INSERT_CLAIM, checkout_id, customer_id, expires_at)
            if keys:
                await db.execute(
                    INSERT_ROWS, checkout_id, [k[0] for k in keys], [k[1] for k in keys], [rows[k] for k in keys]
                )
            await record_on(db, checkout_id)  # the started record's one writer (services/started_checkouts.py)
        return True

    async def release(self, checkout_id: str) -> bool:
        """The checkout settled: it no longer counts. Idempotent; True when a claim was removed."""
        async with pooled_driver(self.engine) as db:
            return await db.fetchval(RELEASE, checkout_id) is not None

    name = "customer-limits"

    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int:
        """Remove claims whose saga never did (the sweeper's safety net; the grace is in `expires_at` already).
        Returns how many."""
        async with pooled_driver(self.engine) as db:
            status: str = await db.execute(EXPIRE, now)
        return int(status.split()[-1])
