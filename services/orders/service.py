"""The orders service: stock per sku; one hold may take several skus, all or nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services import validation
from services.errors import UnknownResource
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.orders.models import Hold, HoldLine, Inventory
from services.protocol import ServiceRequest
from services.types import Alternative, HoldResult, ItemLine, ItemsRequest, ServiceName

# The hold's resolver, on the driver like the rest of the hold (services.ledger.statements).
FIND_SKUS = f"SELECT sku, id FROM {qualified(Inventory.__table__)} WHERE sku = ANY($1::text[])"


class OrdersService(LedgerService):
    name: ServiceName = "orders"
    tables = LedgerTables(Inventory, Hold, HoldLine)

    async def hold(self, hold_key: str, request: ServiceRequest, expires_at: datetime) -> HoldResult:
        wanted = self._expect(request, ItemsRequest)

        async def resolve(db: Driver) -> list[LineRef]:
            ids = dict(await db.fetch(FIND_SKUS, [line.sku for line in wanted.items]))
            for line in wanted.items:
                if line.sku not in ids:
                    raise UnknownResource(line.sku)
            return [LineRef(ids[line.sku], line.sku, line.quantity) for line in wanted.items]

        return await self.ledger.hold(hold_key, resolve, expires_at)

    async def availability(self, sku: str) -> dict[str, Any]:
        """`{sku, capacity, held, sold, available}` (the HTTP contract)."""
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, sku)

    async def upsert_item(self, sku: str, stock: int) -> dict[str, Any]:
        """Create a sku or change its stock. InvalidRequest when stock is below held + sold."""
        validation.identifier("sku", sku)
        validation.capacity("stock", stock)
        async with ledger_transaction(self.engine) as conn:
            changed = await self._set_capacity(conn, {"sku": sku}, sku, stock)
            answer = await self._availability(conn, sku)
        await self._publish([changed])
        return answer

    async def alternatives(self, request: ServiceRequest) -> list[Alternative]:
        """For every requested sku that is short: how many are available (and a request for that many)."""
        wanted = self._expect(request, ItemsRequest)
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
            request_for_what_is_left = (
                ItemsRequest(items=[ItemLine(sku=line.sku, quantity=count)]).model_dump(mode="json") if count else {}
            )
            answers.append(
                Alternative(
                    service="orders",
                    description=f"{line.sku}: {count} available",
                    available=count,
                    request=request_for_what_is_left,
                )
            )
        return answers

    async def _availability(self, conn: AsyncConnection, sku: str) -> dict[str, Any]:
        row = (
            await conn.execute(
                select(Inventory.capacity, Inventory.held, Inventory.sold).where(Inventory.sku == sku)
            )
        ).first()
        if row is None:
            raise UnknownResource(sku)
        return {
            "sku": sku,
            "capacity": row.capacity,
            "held": row.held,
            "sold": row.sold,
            "available": row.capacity - row.held - row.sold,
        }
