"""What every ledger-backed participant shares: the ledger calls that need no natural keys, availability by row
name, and the operator upsert of one row."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.errors import Declined, InvalidRequest
from services.ledger.ledger import Ledger, LedgerTables
from services.participant import InventoryService, Participant, RequestT
from services.protocol import AvailabilitySink, RowState
from services.types import HoldResult, Price, Violation


class LedgerService(InventoryService[RequestT], Generic[RequestT]):
    """Base of every participant's service on this project's ledger. Subclasses set `name` and `tables` and
    implement what names their rows (hold, availability, upsert, alternatives, unknown, seed_demo)."""

    participant: Participant[RequestT]
    tables: LedgerTables
    # SQL on an inventory row (named by its qualified table) that a hold by name must find true: what the
    # participant's resolver refuses of a row that exists (services.ledger.statements `LedgerStatements.build`).
    holdable: ClassVar[str] = ""

    def __init__(self, engine: AsyncEngine, sink: AvailabilitySink | None = None) -> None:
        self.name = self.participant.name
        self.engine = engine
        self.ledger = Ledger(self.name, engine, self.tables, sink, self.holdable)

    async def confirm(self, hold_key: str) -> HoldResult:
        return await self.ledger.confirm(hold_key)

    async def release(self, hold_key: str) -> HoldResult:
        return await self.ledger.release(hold_key)

    async def decline(self, hold_key: str, refusal: Declined) -> HoldResult:
        return await self.ledger.decline(hold_key, refusal)

    async def return_sale(self, hold_key: str) -> HoldResult:
        return await self.ledger.return_sale(hold_key)

    async def extend(self, hold_key: str, expires_at: datetime) -> HoldResult:
        return await self.ledger.extend(hold_key, expires_at)

    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int:
        return await self.ledger.expire_overdue(now, grace_seconds)

    async def audit(self) -> list[Violation]:
        return await self.ledger.audit()

    async def available(self, resources: list[str]) -> dict[str, int]:
        return await self.ledger.available(resources)

    async def prices(self, resources: list[str]) -> dict[str, Price | None]:
        return await self.ledger.prices(resources)

    def hold_ledger(self) -> Ledger:
        return self.ledger

    async def _set_capacity(
        self, conn: AsyncConnection, natural_key: dict[str, Any], resource: str, capacity: int,
        price: tuple[int, str] | None = None,
    ) -> RowState:
        """Insert or re-size one inventory row, and set its unit price (amount, currency) when `price` is given
        (a row not priced here keeps the price it has). Refuses (InvalidRequest) a capacity below held + sold.
        A price change never reaches a hold already placed: each hold line recorded its own.

        Callers lock the entity's existing rows in id order first (`_lock_rows`), the ledger's lock order.
        """
        inv = self.tables.inventory
        priced: dict[str, Any] = {} if price is None else {"unit_price": price[0], "currency": price[1]}
        insert = pg_insert(inv).values(**natural_key, resource=resource, capacity=capacity, **priced)
        changes: dict[str, Any] = {"capacity": insert.excluded.capacity, "version": inv.version + 1}
        if price is not None:
            changes |= {"unit_price": insert.excluded.unit_price, "currency": insert.excluded.currency}
        upsert = insert.on_conflict_do_update(
            index_elements=list(natural_key),
            set_=changes,
            where=inv.held + inv.sold <= insert.excluded.capacity,
        ).returning(inv.resource, inv.capacity, inv.held, inv.sold, inv.version)
        row = (await conn.execute(upsert)).first()
        if row is None:
            in_use = await conn.scalar(select(inv.held + inv.sold).where(inv.resource == resource))
            raise InvalidRequest(f"{resource}: capacity {capacity} is below held + sold ({in_use})")
        return RowState(self.name, row.resource, row.capacity, row.held, row.sold, row.version)


    async def _lock_rows(self, conn: AsyncConnection, *where: Any) -> None:
        inv = self.tables.inventory
        await conn.execute(select(inv.id).where(*where).order_by(inv.id).with_for_update())

    async def _publish(self, rows: list[RowState]) -> None:
        await self.ledger.publish(rows)


def priced(prices: dict[str, int] | None, currency: str | None, kind: str) -> tuple[int, str] | None:
    """The (amount, currency) an upsert sets on the rows of `kind`, or None: that kind keeps its price."""
    if prices is None or currency is None or kind not in prices:
        return None
    return prices[kind], currency
