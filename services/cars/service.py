"""The car-rental service: cars per (depot, car class, day). A rental of N days holds N rows, all or nothing.

The dated-inventory rules it shares with hotel nights (services/ledger/dated.py): a day not on sale is a line with
nothing available (the rental is refused as Unavailable), a depot without the car class is UnknownResource, and an
upsert never shrinks a row below its held + sold. This module declares the cars tables and reads and answers the
cars' own models.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel

from services.cars.models import Depot, Hold, HoldLine, Inventory
from services.cars.participant import DEMO_CARS, DEMO_CURRENCY, DEMO_DAYS, DEMO_DEPOTS, DEMO_RATES, CarsParticipant
from services.cars.schemas import CarAvailability, CarClassAvailability, CarRentalQuery, CarRequest, DepotInventory
from services.ledger.dated import DatedColumns, DatedService, Offered
from services.ledger.ledger import LedgerTables
from services.participant import CancelWindows, day_starts, expect


class CarsService(DatedService[CarRequest, CarAvailability]):
    participant = CarsParticipant()
    tables = LedgerTables(Inventory, Hold, HoldLine)
    columns = DatedColumns(Depot, Depot.depot_id, Depot.city, Inventory.depot_id, Inventory.car_class, Inventory.day)

    async def cancel_until(
        self, request: CarRequest, confirmed_at: datetime, windows: CancelWindows
    ) -> datetime | None:
        """Until the pick-up day starts (UTC), less CANCEL_CAR_HOURS_BEFORE_PICK_UP."""
        return day_starts(request.pick_up, windows.car_hours_before_pick_up)

    async def availability(self, resource_id: str, query: BaseModel) -> CarAvailability:
        """Per car class: the least available over the rental's days, and each day's counters. A day not on
        sale is missing from `days` and makes `available` 0."""
        rental = expect(query, CarRentalQuery)
        return await self.dated_availability(resource_id, rental.pick_up, rental.drop_off)

    async def upsert(self, resource_id: str, body: BaseModel) -> CarAvailability:
        """Create or change a depot and its capacity per day for each car class named, for every day from
        `days_from` to `days_to`, BOTH INCLUDED. Other classes and days are left as they are. Returns the
        availability over those days. InvalidRequest when a capacity is below held + sold."""
        wanted = expect(body, DepotInventory)
        return await self.dated_upsert(
            resource_id, wanted.city, wanted.cars, wanted.days_from, wanted.days_to, wanted.rates, wanted.currency
        )

    async def seed_demo(self, today: date) -> None:
        """The demo depots with every demo car class for the next DEMO_DAYS days."""
        for depot_id, city in DEMO_DEPOTS.items():
            body = DepotInventory(
                city=city, cars=DEMO_CARS, days_from=today, days_to=today + timedelta(days=DEMO_DAYS - 1),
                currency=DEMO_CURRENCY, rates=DEMO_RATES,
            )
            await self.upsert(depot_id, body)

    def answer(self, site_id: str, offered: dict[str, Offered]) -> CarAvailability:
        return CarAvailability(
            depot_id=site_id,
            car_classes={
                car_class: CarClassAvailability(available=offer.available, days=offer.dates)
                for car_class, offer in offered.items()
            },
        )
