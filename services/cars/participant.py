"""The car-rental participant's declaration: cars per (depot, car class, day); the checkout field `car`.

A rental holds one row per day from pick-up up to, not including, drop-off, all or nothing (like hotel nights).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from services.cars.schemas import RULES, CarAvailability, CarRentalQuery, CarRequest, DepotInventory
from services.dated import DatedLine, DatedParticipant
from services.participant import InventoryService, ResourceRoutes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.protocol import AvailabilitySink

# The demo inventory (services/cars/service.py seeds it): two depots in London, so that "another depot in the
# city" has something to offer, and one in Paris.
DEMO_DEPOTS = {"D-LON-1": "London", "D-LON-2": "London", "D-PAR-1": "Paris"}
DEMO_CARS = {"economy": 12, "compact": 6, "suv": 2}
DEMO_DAYS = 30
# Demo rates per car and day, in minor units of DEMO_CURRENCY.
DEMO_CURRENCY = "EUR"
DEMO_RATES = {"economy": 3500, "compact": 4500, "suv": 8000}


class CarsParticipant(DatedParticipant[CarRequest]):
    name = "cars"
    field = "car"
    title = "Car rental"
    request_model = CarRequest
    quantity_field = "cars"
    rules = RULES
    routes = ResourceRoutes(
        collection="cars", id_name="depot_id", noun="depot", query=CarRentalQuery,
        availability=CarAvailability, upsert=DepotInventory,
        availability_summary="Cars left at a depot for a rental",
        upsert_summary="Create or change a car-rental depot",
        upsert_description="Sets the city and, for every day from `days_from` to `days_to` (both included), the "
        "capacity of each car class named. Answers the availability over those days.",
    )

    def line(self, request: CarRequest) -> DatedLine:
        return DatedLine(request.depot_id, request.car_class, request.pick_up, request.drop_off, request.cars)

    def request(self, line: DatedLine) -> CarRequest:
        return CarRequest(depot_id=line.site, car_class=line.kind, pick_up=line.first, drop_off=line.end,
                          cars=line.quantity)

    def demo_offers(self, today: date) -> list[CarRequest]:
        pick_up = today + timedelta(days=1)
        return [
            CarRequest(depot_id=depot_id, car_class=car_class, pick_up=pick_up,
                       drop_off=pick_up + timedelta(days=3), cars=1)
            for depot_id in DEMO_DEPOTS
            for car_class in ("economy", "compact")
        ]

    def demo_upsert(self, today: date) -> tuple[str, DepotInventory]:
        depot_id, city = next(iter(DEMO_DEPOTS.items()))
        return depot_id, DepotInventory(city=city, cars=DEMO_CARS, currency=DEMO_CURRENCY, rates=DEMO_RATES,
                                        days_from=today,
                                        days_to=today + timedelta(days=DEMO_DAYS - 1))

    def build_service(self, engine: AsyncEngine, sink: AvailabilitySink | None = None) -> InventoryService[CarRequest]:
        from services.cars.service import CarsService

        return CarsService(engine, sink)
