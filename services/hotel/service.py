"""The hotel service: rooms per (hotel, room type, night). A stay of N nights holds N rows, all or nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.errors import UnknownResource
from services.hotel.models import Hold, HoldLine, Hotel, Inventory
from services.hotel.participant import DEMO_HOTELS, DEMO_NIGHTS, DEMO_ROOMS, HotelParticipant, resource_name
from services.hotel.schemas import (
    HotelAvailability,
    HotelInventory,
    HotelRequest,
    RoomTypeAvailability,
    StayQuery,
    nights_between,
)
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.participant import expect
from services.types import Alternative, Counters, HoldResult

MAX_ALTERNATIVES = 6
# Shifted stays are offered up to this many days earlier or later.
SHIFT_DAYS = 3

# The hold's resolver, on the driver like the rest of the hold (services.ledger.statements).
FIND_NIGHTS = f"""SELECT night, id FROM {qualified(Inventory.__table__)}
    WHERE hotel_id = $1 AND room_type = $2 AND night = ANY($3::date[])"""
ROOM_TYPE_EXISTS = f"""SELECT EXISTS (SELECT 1 FROM {qualified(Inventory.__table__)}
    WHERE hotel_id = $1 AND room_type = $2)"""


class HotelService(LedgerService[HotelRequest]):
    participant = HotelParticipant()
    tables = LedgerTables(Inventory, Hold, HoldLine)

    async def hold(self, hold_key: str, request: HotelRequest, expires_at: datetime) -> HoldResult:
        wanted = request

        async def resolve(db: Driver) -> list[LineRef]:
            nights = wanted.nights()
            ids = dict(await db.fetch(FIND_NIGHTS, wanted.hotel_id, wanted.room_type, nights))
            if not ids and not await db.fetchval(ROOM_TYPE_EXISTS, wanted.hotel_id, wanted.room_type):
                raise UnknownResource(f"{wanted.hotel_id}/{wanted.room_type}")
            # A night not on sale is a line with nothing available: the stay is refused as Unavailable.
            return [
                LineRef(ids.get(night), resource_name(wanted.hotel_id, wanted.room_type, night), wanted.rooms)
                for night in nights
            ]

        return await self.ledger.hold(hold_key, resolve, expires_at)

    async def unknown(self, request: HotelRequest) -> str | None:
        """A hotel without that room type is unknown; a night not on sale is the ledger's to refuse (409)."""
        async with read_transaction(self.engine) as conn:
            found = await conn.scalar(
                select(Inventory.id).where(Inventory.hotel_id == request.hotel_id,
                                           Inventory.room_type == request.room_type).limit(1)
            )
        return None if found is not None else f"{request.hotel_id}/{request.room_type}"

    async def availability(self, resource_id: str, query: BaseModel) -> HotelAvailability:
        """Per room type: the least available over the stay's nights, and each night's counters. A night not
        on sale is missing from `nights` and makes `available` 0."""
        stay = expect(query, StayQuery)
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, resource_id, stay.check_in, stay.check_out)

    async def upsert(self, resource_id: str, body: BaseModel) -> HotelAvailability:
        """Create or change a hotel and its capacity per night for each room type named, for every night from
        `nights_from` to `nights_to`, BOTH INCLUDED. Other room types and nights are left as they are.
        Returns the availability over those nights. InvalidRequest when a capacity is below held + sold."""
        wanted = expect(body, HotelInventory)
        hotel_id, city, rooms = resource_id, wanted.city, wanted.rooms
        nights = nights_between(wanted.nights_from, wanted.nights_to + timedelta(days=1))
        async with ledger_transaction(self.engine) as conn:
            catalogue = pg_insert(Hotel).values(hotel_id=hotel_id, city=city)
            await conn.execute(
                catalogue.on_conflict_do_update(index_elements=[Hotel.hotel_id], set_={"city": city})
            )
            await self._lock_rows(
                conn, Inventory.hotel_id == hotel_id, Inventory.room_type.in_(list(rooms)),
                Inventory.night.in_(nights),
            )
            changed = [
                await self._set_capacity(
                    conn, {"hotel_id": hotel_id, "room_type": room_type, "night": night},
                    resource_name(hotel_id, room_type, night), capacity,
                )
                for room_type, capacity in sorted(rooms.items())
                for night in nights
            ]
            answer = await self._availability(conn, hotel_id, nights[0], nights[-1] + timedelta(days=1))
        await self._publish(changed)
        return answer

    async def seed_demo(self, today: date) -> None:
        """The demo hotels with every demo room type for the next DEMO_NIGHTS nights."""
        for hotel_id, city in DEMO_HOTELS.items():
            body = HotelInventory(
                city=city, rooms=DEMO_ROOMS, nights_from=today, nights_to=today + timedelta(days=DEMO_NIGHTS - 1)
            )
            await self.upsert(hotel_id, body)

    async def alternatives(self, request: HotelRequest) -> list[Alternative]:
        """In this order: the hotel's other room types for the same nights, other hotels in the city for the
        same nights, then the same room shifted by up to three days (nearest first, never into the past)."""
        wanted = request
        stay = (wanted.check_in, wanted.check_out)
        found: list[Alternative] = []
        async with read_transaction(self.engine) as conn:
            city = await conn.scalar(select(Hotel.city).where(Hotel.hotel_id == wanted.hotel_id))
            if city is None:
                return []
            for hotel_id, room_type, available in await self._stays(
                conn, Inventory.hotel_id == wanted.hotel_id, stay, wanted.rooms
            ):
                if room_type != wanted.room_type:
                    found.append(self._offer(wanted, hotel_id, room_type, stay, available, "another room type"))
            others = select(Hotel.hotel_id).where(Hotel.city == city, Hotel.hotel_id != wanted.hotel_id)
            for hotel_id, room_type, available in await self._stays(
                conn, Inventory.hotel_id.in_(others), stay, wanted.rooms
            ):
                found.append(self._offer(wanted, hotel_id, room_type, stay, available, f"another hotel in {city}"))
            today = datetime.now(UTC).date()
            for shift in sorted(range(-SHIFT_DAYS, SHIFT_DAYS + 1), key=lambda d: (abs(d), d)):
                shifted = (wanted.check_in + timedelta(days=shift), wanted.check_out + timedelta(days=shift))
                if shift == 0 or shifted[0] < today or len(found) >= MAX_ALTERNATIVES:
                    continue
                for hotel_id, room_type, available in await self._stays(
                    conn,
                    (Inventory.hotel_id == wanted.hotel_id) & (Inventory.room_type == wanted.room_type),
                    shifted,
                    wanted.rooms,
                ):
                    found.append(self._offer(wanted, hotel_id, room_type, shifted, available, "shifted stay"))
        return found[:MAX_ALTERNATIVES]

    async def _stays(
        self, conn: AsyncConnection, where: ColumnElement[bool], stay: tuple[date, date], rooms: int
    ) -> list[tuple[str, str, int]]:
        """(hotel, room type, least available) for every room type on sale every night of the stay with at
        least `rooms` available each night."""
        nights = nights_between(*stay)
        least = func.min(Inventory.capacity - Inventory.held - Inventory.sold)
        rows = await conn.execute(
            select(Inventory.hotel_id, Inventory.room_type, least.label("available"))
            .where(where, Inventory.night.in_(nights))
            .group_by(Inventory.hotel_id, Inventory.room_type)
            .having((func.count() == len(nights)) & (least >= rooms))
            .order_by(Inventory.hotel_id, Inventory.room_type)
        )
        return [(row.hotel_id, row.room_type, row.available) for row in rows]

    def _offer(
        self, wanted: HotelRequest, hotel_id: str, room_type: str, stay: tuple[date, date], available: int,
        why: str,
    ) -> Alternative:
        request = HotelRequest(
            hotel_id=hotel_id, room_type=room_type, check_in=stay[0], check_out=stay[1], rooms=wanted.rooms
        )
        description = (
            f"{why}: {hotel_id} {room_type} {stay[0].isoformat()} to {stay[1].isoformat()}, {available} available"
        )
        return self.participant.alternative(request, description, available)

    async def _availability(
        self, conn: AsyncConnection, hotel_id: str, check_in: date, check_out: date
    ) -> HotelAvailability:
        if await conn.scalar(select(Hotel.hotel_id).where(Hotel.hotel_id == hotel_id)) is None:
            raise UnknownResource(hotel_id)
        nights = nights_between(check_in, check_out)
        rows = await conn.execute(
            select(Inventory.room_type, Inventory.night, Inventory.capacity, Inventory.held, Inventory.sold)
            .where(Inventory.hotel_id == hotel_id, Inventory.night.in_(nights))
            .order_by(Inventory.room_type, Inventory.night)
        )
        per_type: dict[str, dict[date, Counters]] = {}
        for row in rows:
            per_type.setdefault(row.room_type, {})[row.night] = Counters(
                capacity=row.capacity, held=row.held, sold=row.sold, available=row.capacity - row.held - row.sold
            )
        return HotelAvailability(
            hotel_id=hotel_id,
            room_types={
                room_type: RoomTypeAvailability(
                    available=min(n.available for n in on_sale.values()) if len(on_sale) == len(nights) else 0,
                    nights=on_sale,
                )
                for room_type, on_sale in per_type.items()
            },
        )
