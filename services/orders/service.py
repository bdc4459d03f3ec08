"""The orders service: stock per sku; one hold may take several skus, all or nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.errors import UnknownResource
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.orders.models import Hold, HoldLine, Inventory
from services.orders.participant import DEMO_CURRENCY, DEMO_ITEMS, DEMO_PRICES, OrdersParticipant
from services.orders.schemas import ItemAvailability, ItemInventory, ItemLine, ItemsRequest
from services.participant import CancelWindows, NoQuery, expect
from services.types import Alternative, HoldResult, price_of

# The hold's resolver, on the driver like the rest of the hold (services.ledger.statements). One sku (the common
# request): a scalar binds cheaper than a one-element array.
FIND_SKU = f"SELECT id FROM {qualified(Inventory.__table__)} WHERE sku = $1"
FIND_SKUS = f"SELECT sku, id FROM {qualified(Inventory.__table__)} WHERE sku = ANY($1::text[])"


class OrdersService(LedgerService[ItemsRequest]):
    participant = OrdersParticipant()
    tables = LedgerTables(Inventory, Hold, HoldLine)

    async def cancel_until(
        self, request: ItemsRequest, confirmed_at: datetime, windows: CancelWindows
    ) -> datetime | None:
        """CANCEL_ITEMS_DAYS_AFTER_CONFIRMATION (30 by default) after the sale was confirmed."""
        return confirmed_at + timedelta(days=windows.items_days_after_confirmation)

    async def hold(self, hold_key: str, request: ItemsRequest, expires_at: datetime) -> HoldResult:
        wanted = request

        async def resolve(db: Driver) -> list[LineRef]:
            if len(wanted.items) == 1:
                line = wanted.items[0]
                found: int | None = await db.fetchval(FIND_SKU, line.sku)
                if found is None:
                    raise UnknownResource(line.sku)
                return [LineRef(found, line.sku, line.quantity)]
            ids = dict(await db.fetch(FIND_SKUS, [line.sku for line in wanted.items]))
            for line in wanted.items:
                if line.sku not in ids:
                    raise UnknownResource(line.sku)
            return [LineRef(ids[line.sku], line.sku, line.quantity) for line in wanted.items]

        return await self.ledger.hold(hold_key, resolve, expires_at, self.participant.rows(request))

    async def unknown(self, request: ItemsRequest) -> str | None:
        found = await self.available([line.sku for line in request.items])
        return next((line.sku for line in request.items if line.sku not in found), None)

    async def availability(self, resource_id: str, query: BaseModel = NoQuery()) -> ItemAvailability:
        """Capacity, held, sold and available units of sku `resource_id`."""
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, resource_id)

    async def upsert(self, resource_id: str, body: BaseModel) -> ItemAvailability:
        """Create a sku or change its stock. InvalidRequest when stock is below held + sold."""
        stock = expect(body, ItemInventory).stock
        async with ledger_transaction(self.engine) as conn:
            wanted = expect(body, ItemInventory)
            price = (wanted.price, wanted.currency) if wanted.price is not None and wanted.currency else None
            changed = await self._set_capacity(conn, {"sku": resource_id}, resource_id, stock, price)
            answer = await self._availability(conn, resource_id)
        await self._publish([changed])
        return answer

    async def seed_demo(self, today: date) -> None:
        for sku, stock in DEMO_ITEMS.items():
            await self.upsert(sku, ItemInventory(stock=stock, currency=DEMO_CURRENCY, price=DEMO_PRICES[sku]))

    async def alternatives(self, request: ItemsRequest) -> list[Alternative]:
        """For every requested sku that is short: how many are available (and a request for that many)."""
        wanted = request
        skus = [line.sku for line in wanted.items]
        async with read_transaction(self.engine) as conn:
            rows = await conn.execute(
                select(Inventory.sku, (Inventory.capacity - Inventory.held - Inventory.sold).label("available"))
                .where(Inventory.sku.in_(skus))
            )
            available = {row.sku: max(0, row.available) for row in rows}
        answers = []
        for line in wanted.items:
            count = available.get(line.sku, 0)
            if count >= line.quantity:
                continue
            description = f"{line.sku}: {count} available"
            if count:
                what_is_left = ItemsRequest(items=[ItemLine(sku=line.sku, quantity=count)])
                answers.append(self.participant.alternative(what_is_left, description, count))
            else:
                answers.append(Alternative(service=self.name, description=description, available=0))
        return answers

    async def _availability(self, conn: AsyncConnection, sku: str) -> ItemAvailability:
        row = (
            await conn.execute(
                select(
                    Inventory.capacity, Inventory.held, Inventory.sold, Inventory.unit_price, Inventory.currency
                ).where(Inventory.sku == sku)
            )
        ).first()
        if row is None:
            raise UnknownResource(sku)
        return ItemAvailability(
            sku=sku, capacity=row.capacity, held=row.held, sold=row.sold, available=row.capacity - row.held - row.sold,
            price=price_of(row.unit_price, row.currency),
        )
