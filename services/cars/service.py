"""The car-rental service: cars per (depot, car class, day). A rental of N days holds N rows, all or nothing.

Mirrors services/hotel/service.py: a day not on sale is a line with nothing available (the rental is refused as
Unavailable), a depot without the car class is UnknownResource, and an upsert never shrinks a row below its
held + sold.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cars.models import Depot, Hold, HoldLine, Inventory
from services.cars.participant import DEMO_CARS, DEMO_DAYS, DEMO_DEPOTS, CarsParticipant, resource_name
from services.cars.schemas import (
    CarAvailability,
    CarClassAvailability,
    CarRentalQuery,
    CarRequest,
    DepotInventory,
    days_between,
)
from services.errors import UnknownResource
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.participant import expect
from services.types import Alternative, Counters, HoldResult

MAX_ALTERNATIVES = 6
# Shifted rentals are offered up to this many days earlier or later.
SHIFT_DAYS = 3

# The hold's resolver, on the driver like the rest of the hold (services.ledger.statements).
FIND_DAYS = f"""SELECT day, id FROM {qualified(Inventory.__table__)}
    WHERE depot_id = $1 AND car_class = $2 AND day = ANY($3::date[])"""
CAR_CLASS_EXISTS = f"""SELECT EXISTS (SELECT 1 FROM {qualified(Inventory.__table__)}
    WHERE depot_id = $1 AND car_class = $2)"""

Rental = tuple[date, date]


class CarsService(LedgerService[CarRequest]):
    participant = CarsParticipant()
    tables = LedgerTables(Inventory, Hold, HoldLine)

    async def hold(self, hold_key: str, request: CarRequest, expires_at: datetime) -> HoldResult:
        wanted = request

        async def resolve(db: Driver) -> list[LineRef]:
            days = wanted.days()
            ids = dict(await db.fetch(FIND_DAYS, wanted.depot_id, wanted.car_class, days))
            if not ids and not await db.fetchval(CAR_CLASS_EXISTS, wanted.depot_id, wanted.car_class):
                raise UnknownResource(f"{wanted.depot_id}/{wanted.car_class}")
            # A day not on sale is a line with nothing available: the rental is refused as Unavailable.
            return [
                LineRef(ids.get(day), resource_name(wanted.depot_id, wanted.car_class, day), wanted.cars)
                for day in days
            ]

        return await self.ledger.hold(hold_key, resolve, expires_at)

    async def unknown(self, request: CarRequest) -> str | None:
        """A depot without that car class is unknown; a day not on sale is the ledger's to refuse (409)."""
        async with read_transaction(self.engine) as conn:
            found = await conn.scalar(
                select(Inventory.id).where(Inventory.depot_id == request.depot_id,
                                           Inventory.car_class == request.car_class).limit(1)
            )
        return None if found is not None else f"{request.depot_id}/{request.car_class}"

    async def availability(self, resource_id: str, query: BaseModel) -> CarAvailability:
        """Per car class: the least available over the rental's days, and each day's counters. A day not on
        sale is missing from `days` and makes `available` 0."""
        rental = expect(query, CarRentalQuery)
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, resource_id, rental.pick_up, rental.drop_off)

    async def upsert(self, resource_id: str, body: BaseModel) -> CarAvailability:
        """Create or change a depot and its capacity per day for each car class named, for every day from
        `days_from` to `days_to`, BOTH INCLUDED. Other classes and days are left as they are. Returns the
        availability over those days. InvalidRequest when a capacity is below held + sold."""
        wanted = expect(body, DepotInventory)
        depot_id, city, cars = resource_id, wanted.city, wanted.cars
        days = days_between(wanted.days_from, wanted.days_to + timedelta(days=1))
        async with ledger_transaction(self.engine) as conn:
            catalogue = pg_insert(Depot).values(depot_id=depot_id, city=city)
            await conn.execute(
                catalogue.on_conflict_do_update(index_elements=[Depot.depot_id], set_={"city": city})
            )
            # The ledger's lock order (rows by id) before any row changes: an upsert cannot deadlock a hold.
            await self._lock_rows(
                conn, Inventory.depot_id == depot_id, Inventory.car_class.in_(list(cars)), Inventory.day.in_(days),
            )
            changed = [
                await self._set_capacity(
                    conn, {"depot_id": depot_id, "car_class": car_class, "day": day},
                    resource_name(depot_id, car_class, day), capacity,
                )
                for car_class, capacity in sorted(cars.items())
                for day in days
            ]
            answer = await self._availability(conn, depot_id, days[0], days[-1] + timedelta(days=1))
        await self._publish(changed)
        return answer

    async def seed_demo(self, today: date) -> None:
        """The demo depots with every demo car class for the next DEMO_DAYS days."""
        for depot_id, city in DEMO_DEPOTS.items():
            body = DepotInventory(
                city=city, cars=DEMO_CARS, days_from=today, days_to=today + timedelta(days=DEMO_DAYS - 1)
            )
            await self.upsert(depot_id, body)

    async def alternatives(self, request: CarRequest) -> list[Alternative]:
        """In this order: the depot's other car classes for the same days, other depots in the city for the same
        days, then the same class shifted by up to three days (nearest first, never into the past)."""
        wanted = request
        rental = (wanted.pick_up, wanted.drop_off)
        found: list[Alternative] = []
        async with read_transaction(self.engine) as conn:
            city = await conn.scalar(select(Depot.city).where(Depot.depot_id == wanted.depot_id))
            if city is None:
                return []
            for depot_id, car_class, available in await self._rentals(
                conn, Inventory.depot_id == wanted.depot_id, rental, wanted.cars
            ):
                if car_class != wanted.car_class:
                    found.append(self._offer(wanted, depot_id, car_class, rental, available, "another car class"))
            others = select(Depot.depot_id).where(Depot.city == city, Depot.depot_id != wanted.depot_id)
            for depot_id, car_class, available in await self._rentals(
                conn, Inventory.depot_id.in_(others), rental, wanted.cars
            ):
                found.append(self._offer(wanted, depot_id, car_class, rental, available, f"another depot in {city}"))
            today = datetime.now(UTC).date()
            for shift in sorted(range(-SHIFT_DAYS, SHIFT_DAYS + 1), key=lambda d: (abs(d), d)):
                shifted = (wanted.pick_up + timedelta(days=shift), wanted.drop_off + timedelta(days=shift))
                if shift == 0 or shifted[0] < today or len(found) >= MAX_ALTERNATIVES:
                    continue
                for depot_id, car_class, available in await self._rentals(
                    conn,
                    (Inventory.depot_id == wanted.depot_id) & (Inventory.car_class == wanted.car_class),
                    shifted,
                    wanted.cars,
                ):
                    found.append(self._offer(wanted, depot_id, car_class, shifted, available, "shifted rental"))
        return found[:MAX_ALTERNATIVES]

    async def _rentals(
        self, conn: AsyncConnection, where: ColumnElement[bool], rental: Rental, cars: int
    ) -> list[tuple[str, str, int]]:
        """(depot, car class, least available) for every class on sale every day of the rental with at least
        `cars` available each day."""
        days = days_between(*rental)
        least = func.min(Inventory.capacity - Inventory.held - Inventory.sold)
        rows = await conn.execute(
            select(Inventory.depot_id, Inventory.car_class, least.label("available"))
            .where(where, Inventory.day.in_(days))
            .group_by(Inventory.depot_id, Inventory.car_class)
            .having((func.count() == len(days)) & (least >= cars))
            .order_by(Inventory.depot_id, Inventory.car_class)
        )
        return [(row.depot_id, row.car_class, row.available) for row in rows]

    def _offer(
        self, wanted: CarRequest, depot_id: str, car_class: str, rental: Rental, available: int, why: str
    ) -> Alternative:
        request = CarRequest(
            depot_id=depot_id, car_class=car_class, pick_up=rental[0], drop_off=rental[1], cars=wanted.cars
        )
        description = (
            f"{why}: {depot_id} {car_class} {rental[0].isoformat()} to {rental[1].isoformat()}, {available} available"
        )
        return self.participant.alternative(request, description, available)

    async def _availability(
        self, conn: AsyncConnection, depot_id: str, pick_up: date, drop_off: date
    ) -> CarAvailability:
        if await conn.scalar(select(Depot.depot_id).where(Depot.depot_id == depot_id)) is None:
            raise UnknownResource(depot_id)
        days = days_between(pick_up, drop_off)
        rows = await conn.execute(
            select(Inventory.car_class, Inventory.day, Inventory.capacity, Inventory.held, Inventory.sold)
            .where(Inventory.depot_id == depot_id, Inventory.day.in_(days))
            .order_by(Inventory.car_class, Inventory.day)
        )
        per_class: dict[str, dict[date, Counters]] = {}
        for row in rows:
            per_class.setdefault(row.car_class, {})[row.day] = Counters(
                capacity=row.capacity, held=row.held, sold=row.sold, available=row.capacity - row.held - row.sold
            )
        return CarAvailability(
            depot_id=depot_id,
            car_classes={
                car_class: CarClassAvailability(
                    available=min(d.available for d in on_sale.values()) if len(on_sale) == len(days) else 0,
                    days=on_sale,
                )
                for car_class, on_sale in per_class.items()
            },
        )
