"""The flight service: seats per (flight, seat class), availability, alternatives on the same route."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.errors import Unavailable, UnknownResource
from services.flight.models import Flight, Hold, HoldLine, Inventory
from services.flight.participant import (
    DEMO_CURRENCY,
    DEMO_DAYS,
    DEMO_FARES,
    DEMO_ROUTES,
    DEMO_SEATS,
    FlightParticipant,
    demo_flight_id,
    resource_name,
)
from services.flight.schemas import FlightAvailability, FlightInventory, FlightRequest
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService, priced
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.participant import CancelWindows, NoQuery, expect
from services.types import Alternative, Counters, HoldResult, Shortage, price_of

MAX_ALTERNATIVES = 5
DEMO_DEPARTURES = (time(9, 30), time(7, 15))

# The hold's resolver, on the driver like the rest of the hold (services.ledger.statements).
# With whether the flight has departed (the transaction's clock): a departed flight is never held.
FIND_ROW = f"""SELECT i.id, f.departs_at <= now() AS departed FROM {qualified(Inventory.__table__)} i
    JOIN {qualified(Flight.__table__)} f ON f.flight_id = i.flight_id WHERE i.flight_id = $1 AND i.seat_class = $2"""
# The same rule in the hold by name (one statement, its clock): a departed flight's row takes nothing, and the
# transaction's resolver refuses it as departed.
NOT_DEPARTED = f"""EXISTS (SELECT FROM {qualified(Flight.__table__)} f
    WHERE f.flight_id = {qualified(Inventory.__table__)}.flight_id AND f.departs_at > now())"""


class FlightService(LedgerService[FlightRequest]):
    participant = FlightParticipant()
    tables = LedgerTables(Inventory, Hold, HoldLine)
    holdable = NOT_DEPARTED

    async def hold(self, hold_key: str, request: FlightRequest, expires_at: datetime) -> HoldResult:
        wanted = request

        async def resolve(db: Driver) -> list[LineRef]:
            row = await db.fetchrow(FIND_ROW, wanted.flight_id, wanted.seat_class)
            resource = resource_name(wanted.flight_id, wanted.seat_class)
            if row is None:
                raise UnknownResource(resource)
            if row["departed"]:
                raise Unavailable([Shortage(resource=resource, requested=wanted.seats, available=0,
                                            reason="departed")])
            return [LineRef(row["id"], resource, wanted.seats)]

        return await self.ledger.hold(hold_key, resolve, expires_at, self.participant.rows(request))

    async def cancel_until(
        self, request: FlightRequest, confirmed_at: datetime, windows: CancelWindows
    ) -> datetime | None:
        """Until CANCEL_FLIGHT_HOURS_BEFORE_DEPARTURE (24 h by default) before the flight departs."""
        async with read_transaction(self.engine) as conn:
            departs_at = await conn.scalar(select(Flight.departs_at).where(Flight.flight_id == request.flight_id))
        if departs_at is None:
            return None
        return departs_at - timedelta(hours=windows.flight_hours_before_departure)

    async def unknown(self, request: FlightRequest) -> str | None:
        resource = resource_name(request.flight_id, request.seat_class)
        return None if resource in await self.available([resource]) else resource

    async def availability(self, resource_id: str, query: BaseModel = NoQuery()) -> FlightAvailability:
        """Capacity, held, sold and available seats per seat class of flight `resource_id`."""
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, resource_id)

    async def upsert(self, resource_id: str, body: BaseModel) -> FlightAvailability:
        """Create or change a flight and the capacity of the classes named (others are left as they are).
        Returns the flight's availability. InvalidRequest when a capacity is below held + sold."""
        wanted = expect(body, FlightInventory)
        flight_id, origin, destination = resource_id, wanted.origin, wanted.destination
        departs_at, seats = wanted.departs_at, wanted.seats
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
                    resource_name(flight_id, seat_class), capacity, priced(wanted.fares, wanted.currency, seat_class),
                )
                for seat_class, capacity in sorted(seats.items())
            ]
            answer = await self._availability(conn, flight_id)
        await self._publish(changed)
        return answer

    async def seed_demo(self, today: date) -> None:
        """Flights on each demo route every day of the coming week, economy and business."""
        for number, (origin, destination) in enumerate(DEMO_ROUTES):
            for day in range(1, DEMO_DAYS + 1):
                when = datetime.combine(today + timedelta(days=day), DEMO_DEPARTURES[number], tzinfo=UTC)
                body = FlightInventory(
                    origin=origin, destination=destination, departs_at=when, seats=DEMO_SEATS,
                    currency=DEMO_CURRENCY, fares=DEMO_FARES,
                )
                await self.upsert(demo_flight_id(number, day), body)

    async def alternatives(self, request: FlightRequest) -> list[Alternative]:
        """Classes of flights on the same route with enough seats, nearest departure first (the same class
        before others at equal distance). Flights already departed are left out."""
        wanted = request
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
                self.participant.alternative(
                    FlightRequest(flight_id=row.flight_id, seat_class=row.seat_class, seats=wanted.seats),
                    (
                        f"{row.flight_id} {asked.origin}-{asked.destination} departing "
                        f"{row.departs_at.isoformat()}, {row.seat_class}: {row.available} seats"
                    ),
                    row.available,
                )
                for row in rows
            ]

    async def _availability(self, conn: AsyncConnection, flight_id: str) -> FlightAvailability:
        known = await conn.scalar(select(Flight.flight_id).where(Flight.flight_id == flight_id))
        if known is None:
            raise UnknownResource(flight_id)
        rows = await conn.execute(
            select(
                Inventory.seat_class, Inventory.capacity, Inventory.held, Inventory.sold, Inventory.unit_price,
                Inventory.currency,
            )
            .where(Inventory.flight_id == flight_id)
            .order_by(Inventory.seat_class)
        )
        return FlightAvailability(
            flight_id=flight_id,
            seat_classes={
                row.seat_class: Counters(
                    capacity=row.capacity, held=row.held, sold=row.sold, available=row.capacity - row.held - row.sold,
                    price=price_of(row.unit_price, row.currency),
                )
                for row in rows
            },
        )

