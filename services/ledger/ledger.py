"""The hold ledger: hold, confirm, release, decline, extend, expire and audit on one service's three tables.

Statements are SQL text (services.ledger.statements) sent on a pooled asyncpg connection: the transaction, its
lock_timeout and error translation stay in services.ledger.transaction.

Every operation is one transaction, idempotent by hold key, and never reads in one transaction what it
writes in another. Row locks are always taken in the same order, so two ledger calls cannot deadlock:
first the one `holds` row of the key, then inventory rows by ascending id. One exception: `hold` first tries the
whole hold as one statement (a new key with room on every line: the commonest hold, in 1 round trip when the
participant names the rows by resource, 2 when they are resolved first, instead of the transaction's 5), which
locks the rows first and claims the key last. Only a call on the same key can wait on
that key, i.e. a duplicate delivery of the same hold running at the same moment; PostgreSQL then fails one of the
two (deadlock detected: Busy, retried) and the other's outcome stands.

Outcomes of a duplicate delivery of `hold` (same key again, whatever the request):
  ACTIVE or CONFIRMED -> the recorded HoldResult (status says which);
  REJECTED            -> the recorded error again (Unavailable with the same shortages, UnknownResource, or the
                         Declined a `decline` recorded);
  RELEASED or EXPIRED -> HoldNotActive with that status; a RELEASED tombstone (release arrived first) is refused
                         this way, so a hold that arrives after its compensation never takes inventory.

`decline` is a release that records why (the saga's refusal, a Declined): the key ends REJECTED with it, so a
hold under that key again is refused for the same reason.

`return_sale` gives a sale back (a cancelled sale): CONFIRMED -> RETURNED and its lines off `sold`, once per
hold key (a duplicate answers RETURNED again and moves nothing). The invariant the audit checks is then: `held` =
ACTIVE lines, `sold` = CONFIRMED lines (a RETURNED line counts in neither).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asyncpg import Record, UniqueViolationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.errors import (
    Busy,
    DatabaseUnavailable,
    Declined,
    HoldNotActive,
    InvalidRequest,
    LedgerError,
    StorageError,
    Unavailable,
    UnknownResource,
)
from services.ledger.statements import LedgerStatements
from services.ledger.tables import HoldLineRow, HoldRow, InventoryRow
from services.ledger.transaction import Driver, driver_transaction, pooled_driver
from services.protocol import AvailabilitySink, RowState
from services.types import HoldLine, HoldResult, HoldStatus, Price, Shortage, Violation, price_of

log = logging.getLogger(__name__)

MAX_HOLD_KEY_LENGTH = 256


@dataclass(frozen=True)
class LedgerTables:
    """A service's three ORM classes (see services.ledger.tables)."""

    inventory: type[InventoryRow]
    holds: type[HoldRow]
    hold_lines: type[HoldLineRow]


@dataclass(frozen=True)
class LineRef:
    """One line a hold asks for. `inventory_id` None means the row does not exist (e.g. a night that is
    not on sale): the line is short by its whole quantity."""

    inventory_id: int | None
    resource: str
    quantity: int


# Maps a request to its lines; raises UnknownResource for unknown ids. Reads only: it runs in the hold's transaction,
# and before the statement that takes the lines (`Ledger._hold_at_once`) when the participant did not name them.
Resolver = Callable[[Driver], Awaitable[list[LineRef]]]


def _line(resource: str, quantity: int, unit_price: int | None, currency: str | None) -> HoldLine:
    """A hold line; priced (unit price, amount, currency) when its row had a price as the hold was placed."""
    if unit_price is None or currency is None:
        return HoldLine(resource=resource, quantity=quantity)
    return HoldLine(
        resource=resource, quantity=quantity, unit_price=unit_price, amount=unit_price * quantity, currency=currency
    )


def _in_lock_order(lines: Sequence[LineRef]) -> list[LineRef]:
    """Ascending inventory id (the ledger's one lock order), lines whose row does not exist first."""
    return sorted(lines, key=lambda ln: ln.inventory_id or 0)


def _check_key(hold_key: str) -> None:
    if not hold_key or len(hold_key) > MAX_HOLD_KEY_LENGTH:
        raise InvalidRequest(f"a hold key must have 1 to {MAX_HOLD_KEY_LENGTH} characters")


def _refusal_reason(error: Unavailable | UnknownResource | Declined) -> dict[str, Any]:
    if isinstance(error, Unavailable):
        return {"error": "unavailable", "shortages": [s.model_dump() for s in error.shortages]}
    if isinstance(error, Declined):
        return {"error": "declined", "shortage": error.shortage.model_dump()}
    return {"error": "unknown_resource", "resource": error.resource}


def _refusal_error(recorded: str | None) -> LedgerError:
    reason: dict[str, Any] = json.loads(recorded) if recorded else {}
    if reason.get("error") == "unknown_resource":
        return UnknownResource(str(reason.get("resource")))
    if reason.get("error") == "declined":
        return Declined(Shortage.model_validate(reason["shortage"]))
    shortages = [Shortage.model_validate(s) for s in reason.get("shortages", [])]
    return Unavailable(shortages)


@dataclass(frozen=True)
class HoldRecord:
    """One hold as the ledger records it (for audits; operations answer HoldResult)."""

    hold_key: str
    status: HoldStatus
    expires_at: datetime | None
    updated_at: datetime | None = None


def _hold_record(row: Record) -> HoldRecord:
    return HoldRecord(
        hold_key=row["hold_key"], status=HoldStatus(row["status"]), expires_at=row["expires_at"],
        updated_at=row["updated_at"],
    )


class Ledger:
    def __init__(
        self, service: str, engine: AsyncEngine, tables: LedgerTables, sink: AvailabilitySink | None = None,
        holdable: str = "",
    ) -> None:
        self.service = service
        self.engine = engine
        self.sink = sink
        self._sql = LedgerStatements.build(
            tables.inventory.__table__, tables.holds.__table__, tables.hold_lines.__table__,  # type: ignore[attr-defined]
            holdable,
        )

    # ---- operations -------------------------------------------------------------------------------------

    async def hold(
        self, hold_key: str, resolve: Resolver, expires_at: datetime, named: Mapping[str, int] | None = None
    ) -> HoldResult:
        """Hold the request's lines under `hold_key`. `named`: the same lines as units per row's resource name
        (`Participant.rows`), when the participant can say them without reading (then a new key's hold is one
        round trip); `resolve` is still what the transaction asks, and what refuses."""
        _check_key(hold_key)
        if named is None:
            taken = await self._hold_at_once(hold_key, resolve, expires_at)
        else:
            taken = await self._hold_named(hold_key, named, expires_at)
        if taken is None:
            return await self._hold_in_transaction(hold_key, resolve, expires_at)
        self.publish_soon([state for state, _ in taken])
        return self._result(hold_key, HoldStatus.ACTIVE, expires_at, [line for _, line in taken])

    async def _hold_named(
        self, hold_key: str, named: Mapping[str, int], expires_at: datetime
    ) -> list[tuple[RowState, HoldLine]] | None:
        """The commonest hold (a new key, room on every line) in one statement outside a transaction block, its
        rows named by resource (`hold_named_line` or `hold_named_lines`): 1 round trip where the transaction takes
        5. None when it wrote nothing, as `_hold_at_once`; a row missing or not holdable (a date not on sale, a
        departed flight) is one of those, and the transaction's resolver says why."""
        if not named or any(quantity < 1 for quantity in named.values()):
            return None
        async with pooled_driver(self.engine) as db:
            rows = await self._take_at_once(
                db, (self._sql.hold_named_line, self._sql.hold_named_lines), hold_key, list(named),
                list(named.values()), expires_at,
            )
        if not rows:
            return None
        # Ascending inventory id, the order the transaction and a duplicate's recorded lines answer in.
        return [self._taken(row, named[row["resource"]]) for row in sorted(rows, key=lambda row: row["id"])]

    async def _hold_at_once(
        self, hold_key: str, resolve: Resolver, expires_at: datetime
    ) -> list[tuple[RowState, HoldLine]] | None:
        """The commonest hold (a new key, room on every line) in one statement outside a transaction block, for a
        participant that does not name its rows: 2 round trips (the request's rows, then `hold_line` or
        `hold_lines`) where the transaction takes 5. None when it wrote nothing: a known key, a short or missing
        row, an unknown resource, a concurrent claim of the key. The transaction then decides and records the
        outcome (REJECTED, the recorded answer), as it always did: this path only ever commits a hold whose every
        line was taken."""
        async with pooled_driver(self.engine) as db:
            try:
                lines = await resolve(db)  # reads only
            except LedgerError:
                # A refusal (an unknown or departed row), or a request only a known key may make (a saga's task
                # run again): the transaction asks again only for a new key, and records a refusal.
                return None
            if not lines or any(line.inventory_id is None or line.quantity < 1 for line in lines):
                return None
            ordered = _in_lock_order(lines)
            rows = await self._take_at_once(
                db, (self._sql.hold_line, self._sql.hold_lines), hold_key,
                [line.inventory_id for line in ordered], [line.quantity for line in ordered], expires_at,
            )
        if not rows:
            return None
        found = {row["id"]: row for row in rows}
        return [self._taken(found[line.inventory_id], line.quantity) for line in ordered]

    @staticmethod
    async def _take_at_once(
        db: Driver, statements: tuple[str, str], hold_key: str, rows: Sequence[int | str | None],
        quantities: list[int], expires_at: datetime,
    ) -> list[Record]:
        """A hold's one statement (the first of `statements` for one line, the second for several): the rows taken,
        or none when it wrote nothing. A key claimed meanwhile (or a row named twice) fails it whole: none."""
        one, several = statements
        try:
            if len(rows) == 1:
                return await db.fetch(one, hold_key, rows[0], quantities[0], expires_at)
            return await db.fetch(several, hold_key, list(rows), quantities, expires_at)
        except UniqueViolationError:
            return []

    async def _hold_in_transaction(self, hold_key: str, resolve: Resolver, expires_at: datetime) -> HoldResult:
        """Every hold the one statement did not place: the key claimed first, then the lines, or the refusal
        recorded under the key (REJECTED), or a known key's recorded answer."""
        sql = self._sql
        refusal: Unavailable | UnknownResource | None = None
        taken: list[tuple[RowState, HoldLine]] = []
        short_rows: list[RowState] = []
        async with driver_transaction(self.engine) as db:
            if await db.fetchval(sql.claim_key, hold_key, expires_at) is None:
                return await self._recorded_hold(db, hold_key)
            try:
                lines = await resolve(db)  # reads only
                # A refusal has changed nothing but the key, which then records REJECTED in the same transaction:
                # the key never disappears, so no duplicate can slip in between.
                taken = await self._take(db, hold_key, lines, short_rows)
            except (Unavailable, UnknownResource) as error:
                refusal = error
                await db.execute(sql.reject, hold_key, json.dumps(_refusal_reason(error)))
        # Published without waiting (AvailabilitySink.publish_soon): a hold only lowers availability, and a
        # cache that shows it a moment late sends a checkout or two to the saga, while waiting for Redis would
        # lengthen every hold.
        if refusal is not None:
            # A sold-out row stops changing; republishing it keeps its cache entry alive (same version only
            # refreshes the TTL), so the API's sold-out fast path keeps answering for it.
            self.publish_soon(short_rows)
            raise refusal
        self.publish_soon([state for state, _ in taken])
        return self._result(hold_key, HoldStatus.ACTIVE, expires_at, [line for _, line in taken])

    async def confirm(self, hold_key: str) -> HoldResult:
        _check_key(hold_key)
        async with driver_transaction(self.engine) as db:
            moved = await db.fetchrow(self._sql.end_active, hold_key, HoldStatus.CONFIRMED.value)
            if moved is None:
                status, expires_at = await self._status(db, hold_key)
                if status is not HoldStatus.CONFIRMED:
                    raise HoldNotActive(hold_key, status)
                return self._result(hold_key, status, expires_at, await self._recorded_lines(db, hold_key))
            touched, lines = await self._move_counters(db, hold_key, sell=True)
        await self.publish(touched)
        return self._result(hold_key, HoldStatus.CONFIRMED, moved["expires_at"], lines)

    async def release(self, hold_key: str) -> HoldResult:
        """ACTIVE -> RELEASED with counters back; unknown key -> RELEASED tombstone; RELEASED, EXPIRED,
        REJECTED -> no-op answering the recorded status. CONFIRMED -> HoldNotActive: a sale is never undone."""
        return await self._end(hold_key, None)

    async def decline(self, hold_key: str, refusal: Declined) -> HoldResult:
        """A release that records why: ACTIVE -> REJECTED with counters back and `refusal` as the key's reason;
        unknown key -> REJECTED with it. Otherwise as `release`. The saga refuses this way what it held and then
        found it must not keep (a payment authorized for a quote the held lines do not match): a run of its task
        again, whose results were lost, asks to hold under the key and is refused for the same reason, where a
        released key would say nothing of why."""
        return await self._end(hold_key, refusal)

    async def _end(self, hold_key: str, refusal: Declined | None) -> HoldResult:
        _check_key(hold_key)
        sql = self._sql
        status = HoldStatus.RELEASED if refusal is None else HoldStatus.REJECTED
        reason = None if refusal is None else json.dumps(_refusal_reason(refusal))
        async with driver_transaction(self.engine) as db:
            claimed = (await db.fetchval(sql.tombstone, hold_key) if reason is None
                       else await db.fetchval(sql.refusal_tombstone, hold_key, reason))
            if claimed is not None:
                return self._result(hold_key, status, None, [])
            moved = (await db.fetchrow(sql.end_active, hold_key, HoldStatus.RELEASED.value) if reason is None
                     else await db.fetchrow(sql.end_refused, hold_key, reason))
            if moved is None:
                recorded, expires_at = await self._status(db, hold_key)
                if recorded is HoldStatus.CONFIRMED:
                    raise HoldNotActive(hold_key, recorded)
                assert recorded is not None  # the tombstone insert just found the key
                return self._result(hold_key, recorded, expires_at, await self._recorded_lines(db, hold_key))
            touched, lines = await self._move_counters(db, hold_key, sell=False)
        await self.publish(touched)
        return self._result(hold_key, status, moved["expires_at"], lines)

    async def return_sale(self, hold_key: str) -> HoldResult:
        """CONFIRMED -> RETURNED with `sold` down by the hold's lines, in one transaction. RETURNED again -> the
        recorded result (idempotent); anything else -> HoldNotActive (nothing was sold under this key)."""
        _check_key(hold_key)
        async with driver_transaction(self.engine) as db:
            moved = await db.fetchrow(self._sql.end_confirmed, hold_key)
            if moved is None:
                status, expires_at = await self._status(db, hold_key)
                if status is not HoldStatus.RETURNED:
                    raise HoldNotActive(hold_key, status)
                return self._result(hold_key, status, expires_at, await self._recorded_lines(db, hold_key))
            touched: list[RowState] = []
            for inventory_id, quantity, _price, _currency in await db.fetch(self._sql.lines, hold_key):
                row = await db.fetchrow(self._sql.unsell, inventory_id, quantity)
                if row is None:  # the ledger disagrees with itself: roll back, the audit names the row
                    raise StorageError(f"{hold_key}: returning {quantity} would take sold below zero")
                touched.append(self._state(row))
            lines = await self._recorded_lines(db, hold_key)  # as sold, with the prices they were sold at
        await self.publish(touched)
        return self._result(hold_key, HoldStatus.RETURNED, moved["expires_at"], lines)

    async def extend(self, hold_key: str, expires_at: datetime) -> HoldResult:
        _check_key(hold_key)
        async with driver_transaction(self.engine) as db:
            if await db.fetchval(self._sql.extend, hold_key, expires_at) is None:
                status, _ = await self._status(db, hold_key)
                raise HoldNotActive(hold_key, status)
            lines = await self._recorded_lines(db, hold_key)
        return self._result(hold_key, HoldStatus.ACTIVE, expires_at, lines)

    async def expire_overdue(self, now: datetime, grace_seconds: int, limit: int = 1000) -> int:
        """ACTIVE holds with expires_at + grace < now become EXPIRED, counters back. One transaction per hold
        (each re-checks the condition under its row lock), so a busy hold is skipped, not fatal."""
        cutoff = now - timedelta(seconds=grace_seconds)
        async with pooled_driver(self.engine) as db:
            keys = [row["hold_key"] for row in await db.fetch(self._sql.overdue, cutoff, limit)]
        expired = 0
        for hold_key in keys:
            try:
                expired += await self._expire_one(hold_key, cutoff)
            except DatabaseUnavailable:  # not this hold's fault: the pass ends, the sweeper reports the outage
                raise
            except LedgerError as error:
                log.warning("sweeper skipped %s hold %s: %s", self.service, hold_key, error)
        return expired

    async def available(self, resources: list[str]) -> dict[str, int]:
        """Units available now per row name; rows that do not exist are left out."""
        async with pooled_driver(self.engine) as db:
            return {row["resource"]: row["available"] for row in await db.fetch(self._sql.available, resources)}

    async def prices(self, resources: list[str]) -> dict[str, Price | None]:
        """The unit price of each row now (None: the row has none); rows that do not exist are left out."""
        async with pooled_driver(self.engine) as db:
            rows = await db.fetch(self._sql.prices, resources)
        return {row["resource"]: price_of(row["unit_price"], row["currency"]) for row in rows}

    async def audit(self) -> list[Violation]:
        """Rows where held != sum of ACTIVE lines, sold != sum of CONFIRMED lines, or the CHECK fails."""
        async with pooled_driver(self.engine) as db:
            rows = await db.fetch(self._sql.audit)
        return [self._violation(row) for row in rows]

    async def holds_page(self, after_key: str, limit: int) -> list[HoldRecord]:
        """Up to `limit` ACTIVE holds with a key after `after_key`, in key order (the saga audit's reading).
        Pass the last key of a page as the next `after_key`; "" starts at the beginning."""
        async with pooled_driver(self.engine) as db:
            rows = await db.fetch(self._sql.holds_page, after_key, limit)
        return [_hold_record(row) for row in rows]

    async def hold_record(self, hold_key: str) -> HoldRecord | None:
        """One hold's recorded status and expiry, or None when the ledger has never seen the key."""
        async with pooled_driver(self.engine) as db:
            row = await db.fetchrow(self._sql.recorded, hold_key)
        if row is None:
            return None
        return HoldRecord(hold_key=hold_key, status=HoldStatus(row["status"]), expires_at=row["expires_at"])

    async def hold_view(self, hold_key: str) -> HoldResult | None:
        """One hold as the ledger records it, its lines included, whatever its status (`booking-saga checkouts
        show`); None when the ledger has never seen the key."""
        async with pooled_driver(self.engine) as db:
            row = await db.fetchrow(self._sql.recorded, hold_key)
            if row is None:
                return None
            lines = await self._recorded_lines(db, hold_key)
        return self._result(hold_key, HoldStatus(row["status"]), row["expires_at"], lines)

    # ---- helpers ----------------------------------------------------------------------------------------

    async def _take(
        self, db: Driver, hold_key: str, lines: Sequence[LineRef], short_rows: list[RowState]
    ) -> list[tuple[RowState, HoldLine]]:
        """Add every line to `held` and write the hold's lines in one statement (`take_line`, or `take_lines` for
        more than one: all or nothing), or raise Unavailable naming each short line (their rows go to
        `short_rows`), having changed nothing.
        Returns (row, the hold line with the row's price as it is now, which the recorded line copies)."""
        if not lines:
            raise InvalidRequest("a hold needs at least one line")
        if any(line.quantity < 1 for line in lines):
            raise InvalidRequest("a hold line needs a positive quantity")
        ordered = _in_lock_order(lines)  # rows that do not exist first: the order shortages are named in
        if ordered[0].inventory_id is None:
            # Part of the request is not on sale: refused without locking anything; the other lines are only
            # reported, from their rows as they are.
            shortages: list[Shortage] = []
            for line in ordered:
                if line.inventory_id is None:
                    shortages.append(Shortage(resource=line.resource, requested=line.quantity, available=0))
                else:
                    self._note_short(await self._row(db, line.inventory_id), line, shortages, short_rows)
            raise Unavailable(shortages)
        if len(ordered) == 1:
            line, inventory_id = ordered[0], ordered[0].inventory_id
            row = await db.fetchrow(self._sql.take_line, hold_key, inventory_id, line.quantity)
            if row is None:
                shortages = []
                self._note_short(await self._row(db, inventory_id), line, shortages, short_rows)
                if not shortages:  # room again since the take found none (a release committed in between)
                    raise Busy(f"{line.resource} changed while it was being held: try again")
                raise Unavailable(shortages)
            return [self._taken(row, line.quantity)]
        rows = await db.fetch(
            self._sql.take_lines, hold_key, [ln.inventory_id for ln in ordered], [ln.quantity for ln in ordered]
        )
        found = {row["id"]: row for row in rows}
        if rows and rows[0]["taken"]:
            return [self._taken(found[line.inventory_id], line.quantity) for line in ordered]
        shortages = []
        for line in ordered:
            row = found.get(line.inventory_id)
            if row is None:  # gone since the request was resolved
                shortages.append(Shortage(resource=line.resource, requested=line.quantity, available=0))
            else:
                self._note_short(self._state(row), line, shortages, short_rows)
        raise Unavailable(shortages)

    def _taken(self, row: Record, quantity: int) -> tuple[RowState, HoldLine]:
        """A taken line: its row's counters after the take, and the hold line with the row's price."""
        return self._state(row), _line(row["resource"], quantity, row["unit_price"], row["currency"])

    async def _row(self, db: Driver, inventory_id: int) -> RowState:
        return self._state(await db.fetchrow(self._sql.row, inventory_id))

    @staticmethod
    def _note_short(
        state: RowState, line: LineRef, shortages: list[Shortage], short_rows: list[RowState]
    ) -> None:
        if state.available < line.quantity:
            shortages.append(Shortage(resource=line.resource, requested=line.quantity, available=state.available))
            short_rows.append(state)

    async def _move_counters(
        self, db: Driver, hold_key: str, *, sell: bool
    ) -> tuple[list[RowState], list[HoldLine]]:
        """Take a hold's lines off `held`; onto `sold` when selling. Inventory rows in ascending id order."""
        move = self._sql.sell if sell else self._sql.unhold
        touched: list[RowState] = []
        lines: list[HoldLine] = []
        for inventory_id, quantity, unit_price, currency in await db.fetch(self._sql.lines, hold_key):
            state = self._state(await db.fetchrow(move, inventory_id, quantity))
            touched.append(state)
            lines.append(_line(state.resource, quantity, unit_price, currency))
        return touched, lines

    async def _expire_one(self, hold_key: str, cutoff: datetime) -> int:
        async with driver_transaction(self.engine) as db:
            if await db.fetchval(self._sql.expire, hold_key, cutoff) is None:
                return 0
            touched, _ = await self._move_counters(db, hold_key, sell=False)
        await self.publish(touched)
        return 1

    async def _recorded_hold(self, db: Driver, hold_key: str) -> HoldResult:
        recorded = await db.fetchrow(self._sql.recorded, hold_key)
        status = HoldStatus(recorded["status"])
        if status in (HoldStatus.ACTIVE, HoldStatus.CONFIRMED):
            return self._result(hold_key, status, recorded["expires_at"], await self._recorded_lines(db, hold_key))
        if status is HoldStatus.REJECTED:
            raise _refusal_error(recorded["reason"])
        raise HoldNotActive(hold_key, status)

    async def _status(self, db: Driver, hold_key: str) -> tuple[HoldStatus | None, datetime | None]:
        row = await db.fetchrow(self._sql.recorded, hold_key)
        if row is None:
            return None, None
        return HoldStatus(row["status"]), row["expires_at"]

    async def _recorded_lines(self, db: Driver, hold_key: str) -> list[HoldLine]:
        return [_line(*row) for row in await db.fetch(self._sql.recorded_lines, hold_key)]

    def _result(
        self, hold_key: str, status: HoldStatus, expires_at: datetime | None, lines: list[HoldLine]
    ) -> HoldResult:
        return HoldResult(hold_key=hold_key, service=self.service, status=status, expires_at=expires_at, lines=lines)

    def _state(self, row: Record) -> RowState:
        return RowState(
            service=self.service,
            resource=row["resource"],
            capacity=row["capacity"],
            held=row["held"],
            sold=row["sold"],
            version=row["version"],
        )

    def _violation(self, row: Record) -> Violation:
        problems = []
        if row["held"] != row["active"]:
            problems.append(f"held {row['held']} != {row['active']} in ACTIVE holds")
        if row["sold"] != row["confirmed"]:
            problems.append(f"sold {row['sold']} != {row['confirmed']} in CONFIRMED holds")
        if row["held"] < 0 or row["sold"] < 0 or row["held"] + row["sold"] > row["capacity"]:
            problems.append(
                f"counters out of bounds: capacity {row['capacity']}, held {row['held']}, sold {row['sold']}"
            )
        return Violation(service=self.service, resource=row["resource"], problem="; ".join(problems))

    def publish_soon(self, rows: list[RowState]) -> None:
        if rows and self.sink is not None:
            self.sink.publish_soon(rows)

    async def publish(self, rows: list[RowState]) -> None:
        if not rows or self.sink is None:
            return
        try:
            await self.sink.publish(rows)
        except Exception:
            # Committed already; the cache is only a hint and its versions let it catch up later.
            log.warning("availability sink failed for %d %s rows", len(rows), self.service, exc_info=True)
