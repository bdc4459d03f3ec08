"""The hotel service: rooms per (hotel, room type, night). A stay of N nights holds N rows, all or nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services import validation
from services.errors import InvalidRequest, UnknownResource
from services.hotel.models import Hold, HoldLine, Hotel, Inventory
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.protocol import ServiceRequest
from services.types import MAX_NIGHTS, Alternative, HoldResult, HotelRequest, ServiceName

MAX_ALTERNATIVES = 6
MAX_UPSERT_NIGHTS = 366
# Shifted stays are offered up to this many days earlier or later.
SHIFT_DAYS = 3

# The hold's resolver, on the driver like the rest of the hold (services.ledger.statements).
FIND_NIGHTS = f"""SELECT night, id FROM {qualified(Inventory.__table__)}
    WHERE hotel_id = $1 AND room_type = $2 AND night = ANY($3::date[])"""
ROOM_TYPE_EXISTS = f"""SELECT EXISTS (SELECT 1 FROM {qualified(Inventory.__table__)}
    WHERE hotel_id = $1 AND room_type = $2)"""


def resource_name(hotel_id: str, room_type: str, night: date) -> str:
    return f"{hotel_id}/{room_type}/{night.isoformat()}"


def nights_between(first: date, end: date) -> list[date]:
    """The nights from `first` up to, not including, `end` (a check-out date)."""
    return [first + timedelta(days=i) for i in range((end - first).days)]


class HotelService(LedgerService):
    name: ServiceName = "hotel"
    tables = LedgerTables(Inventory, Hold, HoldLine)

    async def hold(self, hold_key: str, request: ServiceRequest, expires_at: datetime) -> HoldResult:
        wanted = self._expect(request, HotelRequest)

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

    async def availability(self, hotel_id: str, check_in: date, check_out: date) -> dict[str, Any]:
        """`{hotel_id, room_types: {type: {available, nights: {'YYYY-MM-DD': {capacity, held, sold, available}}}}}`.

        `available` is the least over the nights; a night not on sale is missing from `nights` and makes it 0.
        """
        if check_out <= check_in or (check_out - check_in).days > MAX_NIGHTS:
            raise InvalidRequest(f"check_out must be 1 to {MAX_NIGHTS} days after check_in")
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, hotel_id, check_in, check_out)

    async def upsert_hotel(
        self, hotel_id: str, city: str, rooms: dict[str, int], nights_from: date, nights_to: date
    ) -> dict[str, Any]:
        """Create or change a hotel and its capacity per night for each room type named, for every night from
        `nights_from` to `nights_to`, BOTH INCLUDED. Other room types and nights are left as they are.
        Returns the availability over those nights. InvalidRequest when a capacity is below held + sold."""
        validation.identifier("hotel_id", hotel_id)
        city = validation.label("city", city)
        rooms = validation.capacities("rooms", rooms)
        if nights_to < nights_from or (nights_to - nights_from).days >= MAX_UPSERT_NIGHTS:
            raise InvalidRequest(f"nights_to must be 0 to {MAX_UPSERT_NIGHTS - 1} days after nights_from")
        nights = nights_between(nights_from, nights_to + timedelta(days=1))
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

    async def alternatives(self, request: ServiceRequest) -> list[Alternative]:
        """In this order: the hotel's other room types for the same nights, other hotels in the city for the
        same nights, then the same room shifted by up to three days (nearest first, never into the past)."""
        wanted = self._expect(request, HotelRequest)
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
        self, conn: AsyncConnection, where: Any, stay: tuple[date, date], rooms: int
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
        return Alternative(
            service="hotel",
            description=f"{why}: {hotel_id} {room_type} {stay[0].isoformat()} to {stay[1].isoformat()}, "
            f"{available} available",
            available=available,
            request=request.model_dump(mode="json"),
        )

    async def _availability(
        self, conn: AsyncConnection, hotel_id: str, check_in: date, check_out: date
    ) -> dict[str, Any]:
        if await conn.scalar(select(Hotel.hotel_id).where(Hotel.hotel_id == hotel_id)) is None:
            raise UnknownResource(hotel_id)
        nights = nights_between(check_in, check_out)
        rows = await conn.execute(
            select(Inventory.room_type, Inventory.night, Inventory.capacity, Inventory.held, Inventory.sold)
            .where(Inventory.hotel_id == hotel_id, Inventory.night.in_(nights))
            .order_by(Inventory.room_type, Inventory.night)
        )
        room_types: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = room_types.setdefault(row.room_type, {"available": 0, "nights": {}})
            entry["nights"][row.night.isoformat()] = {
                "capacity": row.capacity,
                "held": row.held,
                "sold": row.sold,
                "available": row.capacity - row.held - row.sold,
            }
        for entry in room_types.values():
            on_sale = entry["nights"].values()
            entry["available"] = min(n["available"] for n in on_sale) if len(on_sale) == len(nights) else 0
        return {"hotel_id": hotel_id, "room_types": room_types}
