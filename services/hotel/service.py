"""The hotel service: rooms per (hotel, room type, night). A stay of N nights holds N rows, all or nothing.

The dated-inventory rules (hold, availability, alternatives, operator upsert) are services/ledger/dated.py's; this
module declares the hotel's tables and reads and answers the hotel's own models.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel

from services.hotel.models import Hold, HoldLine, Hotel, Inventory
from services.hotel.participant import (
    DEMO_CURRENCY,
    DEMO_HOTELS,
    DEMO_NIGHTS,
    DEMO_RATES,
    DEMO_ROOMS,
    HotelParticipant,
)
from services.hotel.schemas import HotelAvailability, HotelInventory, HotelRequest, RoomTypeAvailability, StayQuery
from services.ledger.dated import DatedColumns, DatedService, Offered
from services.ledger.ledger import LedgerTables
from services.participant import CancelWindows, day_starts, expect


class HotelService(DatedService[HotelRequest, HotelAvailability]):
    participant = HotelParticipant()
    tables = LedgerTables(Inventory, Hold, HoldLine)
    columns = DatedColumns(Hotel, Hotel.hotel_id, Hotel.city, Inventory.hotel_id, Inventory.room_type, Inventory.night)

    async def cancel_until(
        self, request: HotelRequest, confirmed_at: datetime, windows: CancelWindows
    ) -> datetime | None:
        """Until the check-in day starts (UTC), less CANCEL_HOTEL_HOURS_BEFORE_CHECK_IN."""
        return day_starts(request.check_in, windows.hotel_hours_before_check_in)

    async def availability(self, resource_id: str, query: BaseModel) -> HotelAvailability:
        """Per room type: the least available over the stay's nights, and each night's counters. A night not
        on sale is missing from `nights` and makes `available` 0."""
        stay = expect(query, StayQuery)
        return await self.dated_availability(resource_id, stay.check_in, stay.check_out)

    async def upsert(self, resource_id: str, body: BaseModel) -> HotelAvailability:
        """Create or change a hotel and its capacity per night for each room type named, for every night from
        `nights_from` to `nights_to`, BOTH INCLUDED. Other room types and nights are left as they are.
        Returns the availability over those nights. InvalidRequest when a capacity is below held + sold."""
        wanted = expect(body, HotelInventory)
        return await self.dated_upsert(
            resource_id, wanted.city, wanted.rooms, wanted.nights_from, wanted.nights_to, wanted.rates, wanted.currency
        )

    async def seed_demo(self, today: date) -> None:
        """The demo hotels with every demo room type for the next DEMO_NIGHTS nights."""
        for hotel_id, city in DEMO_HOTELS.items():
            body = HotelInventory(
                city=city, rooms=DEMO_ROOMS, nights_from=today, nights_to=today + timedelta(days=DEMO_NIGHTS - 1),
                currency=DEMO_CURRENCY, rates=DEMO_RATES,
            )
            await self.upsert(hotel_id, body)

    def answer(self, site_id: str, offered: dict[str, Offered]) -> HotelAvailability:
        return HotelAvailability(
            hotel_id=site_id,
            room_types={
                room_type: RoomTypeAvailability(available=offer.available, nights=offer.dates)
                for room_type, offer in offered.items()
            },
        )
