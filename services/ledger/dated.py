"""Dated inventory, the database half: the service of a participant selling one row per (site, class, date)
(hotel rooms per night, cars per day). services/dated.py holds the declarations and the date rules.

The rules kept here once:
- the hold: one line per date, all or nothing; a date not on sale is a line with nothing available (the request
  is refused as Unavailable), a site without the class is UnknownResource;
- `unknown`: a site without that class is unknown; a date not on sale is the ledger's to refuse (409);
- availability per class (`dated_availability`): each date's counters, and the least available over the dates
  asked for; a date not on sale is missing from the dates and makes `available` 0. UnknownResource: no such site;
- the operator upsert (`dated_upsert`): the site's city, then the capacity of each class named for every date
  from `first` to `last`, BOTH INCLUDED, never below a row's held + sold (InvalidRequest); other classes and dates
  are left as they are. Answers the availability over those dates;
- alternatives, in this order: the site's other classes for the same dates, other sites in the city for the
  same dates, then the same class shifted by up to SHIFT_DAYS days (nearest first, never into the past); at most
  MAX_ALTERNATIVES.

A dated participant's service declares its tables (`tables`, `columns`) and builds its own availability model
(`answer`); its `availability` and `upsert` read its own query and body models and call the two methods above.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, inspect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute

from services.dated import DatedLine, DatedParticipant, dates_between, resource_name
from services.errors import UnknownResource
from services.ledger.ledger import LineRef
from services.ledger.service import LedgerService, priced
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, ledger_transaction, read_transaction
from services.participant import RequestT
from services.protocol import AvailabilitySink
from services.types import Alternative, Counters, HoldResult, price_of

AvailabilityT = TypeVar("AvailabilityT", bound=BaseModel)

MAX_ALTERNATIVES = 6
# Shifted requests are offered up to this many days earlier or later.
SHIFT_DAYS = 3


@dataclass(frozen=True)
class DatedColumns:
    """Where a dated participant keeps its sites and rows: the catalogue table (one row per site, with its city)
    and the inventory's natural key (site, class, date), in the order of its unique constraint."""

    catalogue: type[DeclarativeBase]  # Hotel
    site_id: InstrumentedAttribute[str]  # Hotel.hotel_id, the catalogue's key
    city: InstrumentedAttribute[str]  # Hotel.city
    site: InstrumentedAttribute[str]  # Inventory.hotel_id
    kind: InstrumentedAttribute[str]  # Inventory.room_type
    day: InstrumentedAttribute[date]  # Inventory.night


@dataclass(frozen=True)
class Offered:
    """One class at one site over the dates asked for: the least available (0 unless every date is on sale) and
    each date's counters (dates on sale only)."""

    available: int
    dates: dict[date, Counters]


class DatedService(LedgerService[RequestT], Generic[RequestT, AvailabilityT]):
    """Base of a dated participant's service. Subclasses set `participant`, `tables` and `columns`, implement
    `answer`, `availability`, `upsert` and `seed_demo`."""

    participant: DatedParticipant[RequestT]
    columns: DatedColumns

    def __init__(self, engine: AsyncEngine, sink: AvailabilitySink | None = None) -> None:
        super().__init__(engine, sink)
        c, inventory = self.columns, qualified(inspect(self.tables.inventory).local_table)
        # The hold's resolver, on the driver like the rest of the hold (services.ledger.statements).
        self._find_dates = f"""SELECT {c.day.key}, id FROM {inventory}
            WHERE {c.site.key} = $1 AND {c.kind.key} = $2 AND {c.day.key} = ANY($3::date[])"""
        self._kind_exists = f"""SELECT EXISTS (SELECT 1 FROM {inventory}
            WHERE {c.site.key} = $1 AND {c.kind.key} = $2)"""

    @abstractmethod
    def answer(self, site_id: str, offered: dict[str, Offered]) -> AvailabilityT:
        """The participant's availability model (`routes.availability`) from the offer per class."""

    async def hold(self, hold_key: str, request: RequestT, expires_at: datetime) -> HoldResult:
        wanted = self.participant.line(request)

        async def resolve(db: Driver) -> list[LineRef]:
            dates = wanted.dates()
            ids = dict(await db.fetch(self._find_dates, wanted.site, wanted.kind, dates))
            if not ids and not await db.fetchval(self._kind_exists, wanted.site, wanted.kind):
                raise UnknownResource(f"{wanted.site}/{wanted.kind}")
            # A date not on sale is a line with nothing available: the request is refused as Unavailable.
            return [
                LineRef(ids.get(day), resource_name(wanted.site, wanted.kind, day), wanted.quantity) for day in dates
            ]

        return await self.ledger.hold(hold_key, resolve, expires_at, self.participant.rows(request))

    async def unknown(self, request: RequestT) -> str | None:
        """A site without that class is unknown; a date not on sale is the ledger's to refuse (409)."""
        wanted, c = self.participant.line(request), self.columns
        async with read_transaction(self.engine) as conn:
            found = await conn.scalar(
                select(self.tables.inventory.id).where(c.site == wanted.site, c.kind == wanted.kind).limit(1)
            )
        return None if found is not None else f"{wanted.site}/{wanted.kind}"

    async def dated_availability(self, site_id: str, first: date, end: date) -> AvailabilityT:
        """Per class: the least available over the dates from `first` up to, not including, `end`, and each
        date's counters."""
        async with read_transaction(self.engine) as conn:
            return await self._availability(conn, site_id, first, end)

    async def dated_upsert(
        self, site_id: str, city: str, capacities: dict[str, int], first: date, last: date,
        prices: dict[str, int] | None = None, currency: str | None = None,
    ) -> AvailabilityT:
        """Create or change a site: its city and, for every date from `first` to `last` (both included), the
        capacity of each class named and its price per date (`prices` in `currency`; a class not priced keeps
        its price). Answers the availability over those dates."""
        c = self.columns
        dates = dates_between(first, last + timedelta(days=1))
        async with ledger_transaction(self.engine) as conn:
            catalogue = pg_insert(c.catalogue).values({c.site_id.key: site_id, c.city.key: city})
            await conn.execute(catalogue.on_conflict_do_update(index_elements=[c.site_id], set_={c.city.key: city}))
            # The ledger's lock order (rows by id) before any row changes: an upsert cannot deadlock a hold.
            await self._lock_rows(conn, c.site == site_id, c.kind.in_(list(capacities)), c.day.in_(dates))
            changed = [
                await self._set_capacity(
                    conn, {c.site.key: site_id, c.kind.key: kind, c.day.key: day},
                    resource_name(site_id, kind, day), capacity, priced(prices, currency, kind),
                )
                for kind, capacity in sorted(capacities.items())
                for day in dates
            ]
            answer = await self._availability(conn, site_id, dates[0], dates[-1] + timedelta(days=1))
        await self._publish(changed)
        return answer

    async def alternatives(self, request: RequestT) -> list[Alternative]:
        """In this order: the site's other classes for the same dates, other sites in the city for the same
        dates, then the same class shifted by up to SHIFT_DAYS days (nearest first, never into the past)."""
        wanted, c, rules = self.participant.line(request), self.columns, self.participant.rules
        found: list[Alternative] = []
        async with read_transaction(self.engine) as conn:
            city = await conn.scalar(select(c.city).where(c.site_id == wanted.site))
            if city is None:
                return []
            for offer, available in await self._offers(conn, c.site == wanted.site, wanted):
                if offer.kind != wanted.kind:
                    found.append(self._alternative(offer, available, f"another {rules.kind}"))
            others = select(c.site_id).where(c.city == city, c.site_id != wanted.site)
            for offer, available in await self._offers(conn, c.site.in_(others), wanted):
                found.append(self._alternative(offer, available, f"another {self.participant.noun} in {city}"))
            today = datetime.now(UTC).date()
            for shift in sorted(range(-SHIFT_DAYS, SHIFT_DAYS + 1), key=lambda d: (abs(d), d)):
                shifted = wanted.shifted(shift)
                if shift == 0 or shifted.first < today or len(found) >= MAX_ALTERNATIVES:
                    continue
                for offer, available in await self._offers(conn, (c.site == wanted.site) & (c.kind == wanted.kind),
                                                           shifted):
                    found.append(self._alternative(offer, available, f"shifted {rules.span}"))
        return found[:MAX_ALTERNATIVES]

    async def _offers(
        self, conn: AsyncConnection, where: ColumnElement[bool], wanted: DatedLine
    ) -> list[tuple[DatedLine, int]]:
        """`wanted` at every (site, class) matching `where` that is on sale every date of `wanted` with at least
        its quantity available each date, with the least available."""
        c, inv = self.columns, self.tables.inventory
        dates = wanted.dates()
        least = func.min(inv.capacity - inv.held - inv.sold)
        rows = await conn.execute(
            select(c.site, c.kind, least.label("available"))
            .where(where, c.day.in_(dates))
            .group_by(c.site, c.kind)
            .having((func.count() == len(dates)) & (least >= wanted.quantity))
            .order_by(c.site, c.kind)
        )
        return [
            (DatedLine(site, kind, wanted.first, wanted.end, wanted.quantity), available)
            for site, kind, available in rows
        ]

    def _alternative(self, offer: DatedLine, available: int, why: str) -> Alternative:
        description = (
            f"{why}: {offer.site} {offer.kind} {offer.first.isoformat()} to {offer.end.isoformat()}, "
            f"{available} available"
        )
        return self.participant.alternative(self.participant.request(offer), description, available)

    async def _availability(self, conn: AsyncConnection, site_id: str, first: date, end: date) -> AvailabilityT:
        c, inv = self.columns, self.tables.inventory
        if await conn.scalar(select(c.site_id).where(c.site_id == site_id)) is None:
            raise UnknownResource(site_id)
        dates = dates_between(first, end)
        rows = await conn.execute(
            select(c.kind, c.day, inv.capacity, inv.held, inv.sold, inv.unit_price, inv.currency)
            .where(c.site == site_id, c.day.in_(dates))
            .order_by(c.kind, c.day)
        )
        per_kind: dict[str, dict[date, Counters]] = {}
        for kind, day, capacity, held, sold, unit_price, currency in rows:
            per_kind.setdefault(kind, {})[day] = Counters(
                capacity=capacity, held=held, sold=sold, available=capacity - held - sold,
                price=price_of(unit_price, currency),
            )
        return self.answer(site_id, {
            kind: Offered(min(d.available for d in on_sale.values()) if len(on_sale) == len(dates) else 0, on_sale)
            for kind, on_sale in per_kind.items()
        })
