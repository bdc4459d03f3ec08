"""The hotel participant's declaration: rooms per (hotel, room type, night); the checkout field `hotel`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from services.dated import DatedLine, DatedParticipant
from services.hotel.schemas import RULES, HotelAvailability, HotelInventory, HotelRequest, StayQuery
from services.participant import InventoryService, ResourceRoutes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.protocol import AvailabilitySink

# The demo inventory (services/hotel/service.py seeds it).
DEMO_HOTELS = {"H-LON-1": "London", "H-PAR-1": "Paris"}
DEMO_ROOMS = {"standard": 20, "deluxe": 8, "suite": 2}
DEMO_NIGHTS = 30
# Demo rates per room and night, in minor units of DEMO_CURRENCY.
DEMO_CURRENCY = "EUR"
DEMO_RATES = {"standard": 12000, "deluxe": 21000, "suite": 45000}


class HotelParticipant(DatedParticipant[HotelRequest]):
    name = "hotel"
    field = "hotel"
    title = "Hotels"
    request_model = HotelRequest
    quantity_field = "rooms"
    rules = RULES
    routes = ResourceRoutes(
        collection="hotels", id_name="hotel_id", noun="hotel", query=StayQuery,
        availability=HotelAvailability, upsert=HotelInventory,
        availability_summary="Rooms left in a hotel for a stay",
        upsert_summary="Create or change a hotel",
        upsert_description="Sets the city and, for every night from `nights_from` to `nights_to` (both included), "
        "the capacity of each room type named. Answers the availability over those nights.",
    )

    def line(self, request: HotelRequest) -> DatedLine:
        return DatedLine(request.hotel_id, request.room_type, request.check_in, request.check_out, request.rooms)

    def request(self, line: DatedLine) -> HotelRequest:
        return HotelRequest(hotel_id=line.site, room_type=line.kind, check_in=line.first, check_out=line.end,
                            rooms=line.quantity)

    def demo_offers(self, today: date) -> list[HotelRequest]:
        check_in = today + timedelta(days=1)
        return [
            HotelRequest(hotel_id=hotel_id, room_type=room_type, check_in=check_in,
                         check_out=check_in + timedelta(days=2), rooms=1)
            for hotel_id in DEMO_HOTELS
            for room_type in ("standard", "deluxe")
        ]

    def demo_upsert(self, today: date) -> tuple[str, HotelInventory]:
        hotel_id, city = next(iter(DEMO_HOTELS.items()))
        return hotel_id, HotelInventory(city=city, rooms=DEMO_ROOMS, currency=DEMO_CURRENCY, rates=DEMO_RATES,
                                        nights_from=today,
                                        nights_to=today + timedelta(days=DEMO_NIGHTS - 1))

    def build_service(
        self, engine: AsyncEngine, sink: AvailabilitySink | None = None
    ) -> InventoryService[HotelRequest]:
        from services.hotel.service import HotelService

        return HotelService(engine, sink)
