"""The flight service: seats per (flight, seat class), availability, alternatives on the same route."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services import validation
from services.errors import InvalidRequest, UnknownResource
from services.flight.models import Flight, Hold, HoldLine, Inventory
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.protocol import ServiceRequest
from services.types import Alternative, FlightRequest, HoldResult, ServiceName

MAX_ALTERNATIVES = 5

# The hold's resolver, on the driver like the rest of the hold (services.ledger.statements).
FIND_ROW = f"SELECT id FROM {qualified(Inventory.__table__)} WHERE flight_id = $1 AND seat_class = $2"


def resource_name(flight_id: str, seat_class: str) -> str:
    return f"{flight_id}/{seat_class}"


class FlightService(LedgerService):
    name: ServiceName = "flight"
    tables = LedgerTables(Inventory, Hold, HoldLine)

    async def hold(self, hold_key: str, request: ServiceRequest, expires_at: datetime) -> HoldResult:
        wanted = self._expect(request, FlightRequest)

        async def resolve(db: Driver) -> list[LineRef]:
            row_id = await db.fetchval(FIND_ROW, wanted.flight_id, wanted.seat_class)
            resource = resource_name(wanted.flight_id, wanted.seat_class)
            if row_id is None:
                raise UnknownResource(resource)
            return [LineRef(row_id, resource, wanted.seats)]

        return await self.ledger.hold(hold_key, resolve, expires_at)

    async def availability(self, flight_id: str) -> dict[str, Any]:
        """`{flight_id, seat_classes: {class: {capacity, held, sold, available}}}` (the HTTP contract)."""
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, flight_id)

    async def upsert_flight(
        self, flight_id: str, origin: str, destination: str, departs_at: datetime, seats: dict[str, int]
    ) -> dict[str, Any]:
        """Create or change a flight and the capacity of the classes named (others are left as they are).
        Returns the flight's availability. InvalidRequest when a capacity is below held + sold."""
        validation.identifier("flight_id", flight_id)
        origin, destination = validation.label("origin", origin), validation.label("destination", destination)
        seats = validation.capacities("seats", seats)
        if departs_at.tzinfo is None:
            raise InvalidRequest("departs_at needs a time zone")
        async with ledger_transaction(self.engine) as conn:
            catalogue = pg_insert(Flight).values(
                flight_id=flight_id, origin=origin, destination=destination, departs_at=departs_at
            )
            await conn.execute(
                catalogue.on_conflict_do_update(
                    index_elements=[Flight.flight_id],
                    set_={"origin": origin, "destination": destination, "departs_at": departs_at},
                )
            )
            await self._lock_rows(conn, Inventory.flight_id == flight_id)
            changed = [
                await self._set_capacity(
                    conn, {"flight_id": flight_id, "seat_class": seat_class},
                    resource_name(flight_id, seat_class), capacity,
                )
                for seat_class, capacity in sorted(seats.items())
            ]
            answer = await self._availability(conn, flight_id)
        await self._publish(changed)
        return answer

    async def alternatives(self, request: ServiceRequest) -> list[Alternative]:
        """Classes of flights on the same route with enough seats, nearest departure first (the same class
        before others at equal distance). Flights already departed are left out."""
        wanted = self._expect(request, FlightRequest)
        async with read_transaction(self.engine) as conn:
            asked = (
                await conn.execute(
                    select(Flight.origin, Flight.destination, Flight.departs_at).where(
                        Flight.flight_id == wanted.flight_id
                    )
                )
            ).first()
            if asked is None:
                return []
            available = Inventory.capacity - Inventory.held - Inventory.sold
            distance = func.abs(func.extract("epoch", Flight.departs_at - asked.departs_at))
            rows = await conn.execute(
                select(Flight.flight_id, Flight.departs_at, Inventory.seat_class, available.label("available"))
                .join(Inventory, Inventory.flight_id == Flight.flight_id)
                .where(
                    Flight.origin == asked.origin,
                    Flight.destination == asked.destination,
                    Flight.departs_at > datetime.now(UTC),
                    available >= wanted.seats,
                    (Flight.flight_id != wanted.flight_id) | (Inventory.seat_class != wanted.seat_class),
                )
                .order_by(distance, Inventory.seat_class != wanted.seat_class, Flight.flight_id, Inventory.seat_class)
                .limit(MAX_ALTERNATIVES)
            )
            return [
                Alternative(
                    service="flight",
                    description=(
                        f"{row.flight_id} {asked.origin}-{asked.destination} departing "
                        f"{row.departs_at.isoformat()}, {row.seat_class}: {row.available} seats"
                    ),
                    available=row.available,
                    request=FlightRequest(
                        flight_id=row.flight_id, seat_class=row.seat_class, seats=wanted.seats
                    ).model_dump(mode="json"),
                )
                for row in rows
            ]

    async def _availability(self, conn: AsyncConnection, flight_id: str) -> dict[str, Any]:
        known = await conn.scalar(select(Flight.flight_id).where(Flight.flight_id == flight_id))
        if known is None:
            raise UnknownResource(flight_id)
        rows = await conn.execute(
            select(Inventory.seat_class, Inventory.capacity, Inventory.held, Inventory.sold)
            .where(Inventory.flight_id == flight_id)
            .order_by(Inventory.seat_class)
        )
        return {
            "flight_id": flight_id,
            "seat_classes": {
                row.seat_class: {
                    "capacity": row.capacity,
                    "held": row.held,
                    "sold": row.sold,
                    "available": row.capacity - row.held - row.sold,
                }
                for row in rows
            },
        }
