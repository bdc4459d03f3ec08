"""The flight participant's declaration: seats per (flight, seat class); the checkout field `flight`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from services.flight.schemas import FlightAvailability, FlightInventory, FlightRequest
from services.participant import InventoryService, NoQuery, Participant, ResourceRoutes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.protocol import AvailabilitySink

# The demo inventory (services/flight/service.py seeds it): a route per carrier, a flight a day for a week.
DEMO_ROUTES = {("LHR", "JFK"): "BA", ("CDG", "BCN"): "AF"}
DEMO_DAYS = 7
DEMO_SEATS = {"economy": 150, "business": 20}
# Demo fares per seat, in minor units of DEMO_CURRENCY.
DEMO_CURRENCY = "EUR"
DEMO_FARES = {"economy": 19900, "business": 89900}


def resource_name(flight_id: str, seat_class: str) -> str:
    return f"{flight_id}/{seat_class}"


def demo_flight_id(route_number: int, day: int) -> str:
    """BA101..BA107 (route 0), AF201..AF207 (route 1): one per day from tomorrow."""
    carrier = list(DEMO_ROUTES.values())[route_number]
    return f"{carrier}{100 * (route_number + 1) + day}"


class FlightParticipant(Participant[FlightRequest]):
    name = "flight"
    field = "flight"
    title = "Flights"
    request_model = FlightRequest
    quantity_field = "seats"
    routes = ResourceRoutes(
        collection="flights", id_name="flight_id", noun="flight", query=NoQuery,
        availability=FlightAvailability, upsert=FlightInventory,
        availability_summary="Seats left on a flight",
        upsert_summary="Create or change a flight",
        upsert_description="Sets the route, departure and the capacity of each seat class named (others stay as "
        "they are). A capacity below what is already held + sold is refused (422). Answers the flight's "
        "availability.",
    )

    def rows(self, request: FlightRequest) -> dict[str, int]:
        return {resource_name(request.flight_id, request.seat_class): request.seats}

    def describe(self, request: FlightRequest) -> str:
        return f"{request.flight_id}/{request.seat_class} x{request.seats}"

    def resources(self, request: FlightRequest) -> list[str]:
        return [resource_name(request.flight_id, request.seat_class)]

    def demo_offers(self, today: date) -> list[FlightRequest]:
        return [
            FlightRequest(flight_id=demo_flight_id(route, 1), seat_class=seat_class, seats=1)
            for route in range(len(DEMO_ROUTES))
            for seat_class in DEMO_SEATS
        ]

    def demo_upsert(self, today: date) -> tuple[str, FlightInventory]:
        from services.flight.service import DEMO_DEPARTURES  # the service's module: declarations stay light

        (origin, destination), day = next(iter(DEMO_ROUTES)), 1
        when = datetime.combine(today + timedelta(days=day), DEMO_DEPARTURES[0], tzinfo=UTC)
        return demo_flight_id(0, day), FlightInventory(origin=origin, destination=destination, departs_at=when,
                                                       seats=DEMO_SEATS, currency=DEMO_CURRENCY,
                                                       fares=DEMO_FARES)

    def build_service(
        self, engine: AsyncEngine, sink: AvailabilitySink | None = None
    ) -> InventoryService[FlightRequest]:
        from services.flight.service import FlightService

        return FlightService(engine, sink)

