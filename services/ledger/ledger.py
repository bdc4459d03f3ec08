"""The hold ledger: hold, confirm, release, extend, expire and audit on one service's three tables.

Every operation is one transaction, idempotent by hold key, and never reads in one transaction what it
writes in another. Row locks are always taken in the same order, so two ledger calls cannot deadlock:
first the one `holds` row of the key, then inventory rows by ascending id.

Outcomes of a duplicate delivery of `hold` (same key again, whatever the request):
  ACTIVE or CONFIRMED -> the recorded HoldResult (status says which);
  REJECTED            -> the recorded error again (Unavailable with the same shortages, or UnknownResource);
  RELEASED or EXPIRED -> HoldNotActive with that status; a RELEASED tombstone (release arrived first) is refused
                         this way, so a hold that arrives after its compensation never takes inventory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.errors import HoldNotActive, InvalidRequest, LedgerError, Unavailable, UnknownResource
from services.ledger.tables import HoldLineRow, HoldRow, InventoryRow
from services.ledger.transaction import ledger_transaction, read_transaction
from services.protocol import AvailabilitySink, RowState
from services.types import HoldLine, HoldResult, HoldStatus, ServiceName, Shortage, Violation

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


# Maps a request to its lines, inside the hold's transaction; raises UnknownResource for unknown ids.
Resolver = Callable[[AsyncConnection], Awaitable[list[LineRef]]]


def _check_key(hold_key: str) -> None:
    if not hold_key or len(hold_key) > MAX_HOLD_KEY_LENGTH:
        raise InvalidRequest(f"a hold key must have 1 to {MAX_HOLD_KEY_LENGTH} characters")


def _refusal_reason(error: Unavailable | UnknownResource) -> dict[str, Any]:
    if isinstance(error, Unavailable):
        return {"error": "unavailable", "shortages": [s.model_dump() for s in error.shortages]}
    return {"error": "unknown_resource", "resource": error.resource}


def _refusal_error(reason: dict[str, Any] | None) -> LedgerError:
    if reason and reason.get("error") == "unknown_resource":
        return UnknownResource(str(reason.get("resource")))
    shortages = [Shortage.model_validate(s) for s in (reason or {}).get("shortages", [])]
    return Unavailable(shortages)


class Ledger:
    def __init__(
        self, service: ServiceName, engine: AsyncEngine, tables: LedgerTables, sink: AvailabilitySink | None = None
    ) -> None:
        self.service = service
        self.engine = engine
        self.sink = sink
        self._inv = tables.inventory
        self._holds = tables.holds
        self._lines = tables.hold_lines

    # ---- operations -------------------------------------------------------------------------------------

    async def hold(self, hold_key: str, resolve: Resolver, expires_at: datetime) -> HoldResult:
        _check_key(hold_key)
        H = self._holds
        refusal: Unavailable | UnknownResource | None = None
        taken: list[tuple[RowState, int]] = []
        short_rows: list[RowState] = []
        async with ledger_transaction(self.engine) as conn:
            # ON CONFLICT waits for a concurrent insert of the same key to commit, then sees its outcome.
            claimed = await conn.execute(
                pg_insert(H)
                .values(hold_key=hold_key, status=HoldStatus.ACTIVE.value, expires_at=expires_at)
                .on_conflict_do_nothing()
                .returning(H.hold_key)
            )
            if claimed.first() is None:
                return await self._recorded_hold(conn, hold_key)
            try:
                # A refusal rolls back to here, keeping the key, which then records REJECTED in the same
                # transaction: the key never disappears, so no duplicate can slip in between.
                async with conn.begin_nested():
                    lines = await resolve(conn)
                    taken = await self._take(conn, hold_key, lines, short_rows)
            except (Unavailable, UnknownResource) as error:
                refusal = error
                await conn.execute(
                    update(H)
                    .where(H.hold_key == hold_key)
                    .values(status=HoldStatus.REJECTED.value, expires_at=None, reason=_refusal_reason(error))
                )
        if refusal is not None:
            # A sold-out row stops changing; republishing it keeps its cache entry alive (same version only
            # refreshes the TTL), so the API's sold-out fast path keeps answering for it.
            await self.publish(short_rows)
            raise refusal
        await self.publish([state for state, _ in taken])
        return self._result(hold_key, HoldStatus.ACTIVE, expires_at, [(s.resource, q) for s, q in taken])

    async def confirm(self, hold_key: str) -> HoldResult:
        _check_key(hold_key)
        H = self._holds
        async with ledger_transaction(self.engine) as conn:
            moved = await conn.execute(
                update(H)
                .where(H.hold_key == hold_key, H.status == HoldStatus.ACTIVE.value)
                .values(status=HoldStatus.CONFIRMED.value, updated_at=func.now())
                .returning(H.expires_at)
            )
            row = moved.first()
            if row is None:
                status, expires_at = await self._status(conn, hold_key)
                if status is not HoldStatus.CONFIRMED:
                    raise HoldNotActive(hold_key, status)
                return self._result(hold_key, status, expires_at, await self._recorded_lines(conn, hold_key))
            touched, lines = await self._move_counters(conn, hold_key, sell=True)
        await self.publish(touched)
        return self._result(hold_key, HoldStatus.CONFIRMED, row.expires_at, lines)

    async def release(self, hold_key: str) -> HoldResult:
        """ACTIVE -> RELEASED with counters back; unknown key -> RELEASED tombstone; RELEASED, EXPIRED,
        REJECTED -> no-op answering the recorded status. CONFIRMED -> HoldNotActive: a sale is never undone."""
        _check_key(hold_key)
        H = self._holds
        async with ledger_transaction(self.engine) as conn:
            tombstone = await conn.execute(
                pg_insert(H)
                .values(hold_key=hold_key, status=HoldStatus.RELEASED.value, reason={"tombstone": True})
                .on_conflict_do_nothing()
                .returning(H.hold_key)
            )
            if tombstone.first() is not None:
                return self._result(hold_key, HoldStatus.RELEASED, None, [])
            moved = await conn.execute(
                update(H)
                .where(H.hold_key == hold_key, H.status == HoldStatus.ACTIVE.value)
                .values(status=HoldStatus.RELEASED.value, updated_at=func.now())
                .returning(H.expires_at)
            )
            row = moved.first()
            if row is None:
                status, expires_at = await self._status(conn, hold_key)
                if status is HoldStatus.CONFIRMED:
                    raise HoldNotActive(hold_key, status)
                assert status is not None  # the tombstone insert just found the key
                return self._result(hold_key, status, expires_at, await self._recorded_lines(conn, hold_key))
            touched, lines = await self._move_counters(conn, hold_key, sell=False)
        await self.publish(touched)
        return self._result(hold_key, HoldStatus.RELEASED, row.expires_at, lines)

    async def extend(self, hold_key: str, expires_at: datetime) -> HoldResult:
        _check_key(hold_key)
        H = self._holds
        async with ledger_transaction(self.engine) as conn:
            moved = await conn.execute(
                update(H)
                .where(H.hold_key == hold_key, H.status == HoldStatus.ACTIVE.value)
                .values(expires_at=expires_at, updated_at=func.now())
                .returning(H.hold_key)
            )
            if moved.first() is None:
                status, _ = await self._status(conn, hold_key)
                raise HoldNotActive(hold_key, status)
            lines = await self._recorded_lines(conn, hold_key)
        return self._result(hold_key, HoldStatus.ACTIVE, expires_at, lines)

    async def expire_overdue(self, now: datetime, grace_seconds: int, limit: int = 1000) -> int:
        """ACTIVE holds with expires_at + grace < now become EXPIRED, counters back. One transaction per hold
        (each re-checks the condition under its row lock), so a busy hold is skipped, not fatal."""
        H = self._holds
        cutoff = now - timedelta(seconds=grace_seconds)
        async with read_transaction(self.engine) as conn:
            keys = (
                await conn.execute(
                    select(H.hold_key)
                    .where(H.status == HoldStatus.ACTIVE.value, H.expires_at < cutoff)
                    .order_by(H.expires_at)
                    .limit(limit)
                )
            ).scalars().all()
        expired = 0
        for hold_key in keys:
            try:
                expired += await self._expire_one(hold_key, cutoff)
            except LedgerError as error:
                log.warning("sweeper skipped %s hold %s: %s", self.service, hold_key, error)
        return expired

    async def audit(self) -> list[Violation]:
        """Rows where held != sum of ACTIVE lines, sold != sum of CONFIRMED lines, or the CHECK fails."""
        Inv, L, H = self._inv, self._lines, self._holds
        active = func.coalesce(func.sum(L.quantity).filter(H.status == HoldStatus.ACTIVE.value), 0)
        confirmed = func.coalesce(func.sum(L.quantity).filter(H.status == HoldStatus.CONFIRMED.value), 0)
        query = (
            select(Inv.resource, Inv.capacity, Inv.held, Inv.sold, active.label("active"), confirmed.label("confirmed"))
            .select_from(Inv)
            .outerjoin(L, L.inventory_id == Inv.id)
            .outerjoin(H, H.hold_key == L.hold_key)
            .group_by(Inv.id)
            .having(
                (Inv.held != active)
                | (Inv.sold != confirmed)
                | (Inv.held < 0)
                | (Inv.sold < 0)
                | (Inv.held + Inv.sold > Inv.capacity)
            )
            .order_by(Inv.resource)
        )
        async with read_transaction(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [self._violation(row) for row in rows]

    # ---- helpers ----------------------------------------------------------------------------------------

    async def _take(
        self, conn: AsyncConnection, hold_key: str, lines: Sequence[LineRef], short_rows: list[RowState]
    ) -> list[tuple[RowState, int]]:
        """Add every line to `held`, or raise Unavailable naming each short line (their rows go to `short_rows`).
        Returns (row, quantity)."""
        Inv = self._inv
        shortages: list[Shortage] = []
        taken: list[tuple[RowState, int]] = []
        # Ascending inventory id: the one lock order every ledger transaction follows.
        for line in sorted(lines, key=lambda ln: ln.inventory_id or 0):
            if line.quantity < 1:
                raise InvalidRequest("a hold line needs a positive quantity")
            if line.inventory_id is None:
                shortages.append(Shortage(resource=line.resource, requested=line.quantity, available=0))
                continue
            if shortages:
                # Already refused: only report how short the other lines are, without locking them.
                self._note_short(await self._row(conn, line.inventory_id), line, shortages, short_rows)
                continue
            updated = await conn.execute(
                update(Inv)
                .where(Inv.id == line.inventory_id, Inv.held + Inv.sold + line.quantity <= Inv.capacity)
                .values(held=Inv.held + line.quantity, version=Inv.version + 1)
                .returning(Inv.resource, Inv.capacity, Inv.held, Inv.sold, Inv.version)
            )
            row = updated.first()
            if row is None:
                self._note_short(await self._row(conn, line.inventory_id), line, shortages, short_rows)
                continue
            taken.append((self._state(row), line.quantity))
        if shortages:
            raise Unavailable(shortages)
        if not lines:
            raise InvalidRequest("a hold needs at least one line")
        await conn.execute(
            pg_insert(self._lines).values(
                [{"hold_key": hold_key, "inventory_id": ln.inventory_id, "quantity": ln.quantity} for ln in lines]
            )
        )
        return taken

    async def _row(self, conn: AsyncConnection, inventory_id: int) -> RowState:
        Inv = self._inv
        row = (
            await conn.execute(
                select(Inv.resource, Inv.capacity, Inv.held, Inv.sold, Inv.version).where(Inv.id == inventory_id)
            )
        ).one()
        return self._state(row)

    @staticmethod
    def _note_short(
        state: RowState, line: LineRef, shortages: list[Shortage], short_rows: list[RowState]
    ) -> None:
        if state.available < line.quantity:
            shortages.append(Shortage(resource=line.resource, requested=line.quantity, available=state.available))
            short_rows.append(state)

    async def _move_counters(
        self, conn: AsyncConnection, hold_key: str, *, sell: bool
    ) -> tuple[list[RowState], list[tuple[str, int]]]:
        """Take a hold's lines off `held`; onto `sold` when selling. Inventory rows in ascending id order."""
        Inv, L = self._inv, self._lines
        lines = (
            await conn.execute(
                select(L.inventory_id, L.quantity).where(L.hold_key == hold_key).order_by(L.inventory_id)
            )
        ).all()
        touched: list[RowState] = []
        for inventory_id, quantity in lines:
            values: dict[str, Any] = {"held": Inv.held - quantity, "version": Inv.version + 1}
            if sell:
                values["sold"] = Inv.sold + quantity
            moved = await conn.execute(
                update(Inv)
                .where(Inv.id == inventory_id)
                .values(values)
                .returning(Inv.resource, Inv.capacity, Inv.held, Inv.sold, Inv.version)
            )
            touched.append(self._state(moved.one()))
        return touched, [(state.resource, q) for state, (_, q) in zip(touched, lines, strict=True)]

    async def _expire_one(self, hold_key: str, cutoff: datetime) -> int:
        H = self._holds
        async with ledger_transaction(self.engine) as conn:
            moved = await conn.execute(
                update(H)
                .where(H.hold_key == hold_key, H.status == HoldStatus.ACTIVE.value, H.expires_at < cutoff)
                .values(status=HoldStatus.EXPIRED.value, updated_at=func.now())
                .returning(H.hold_key)
            )
            if moved.first() is None:
                return 0
            touched, _ = await self._move_counters(conn, hold_key, sell=False)
        await self.publish(touched)
        return 1

    async def _recorded_hold(self, conn: AsyncConnection, hold_key: str) -> HoldResult:
        H = self._holds
        recorded = (
            await conn.execute(select(H.status, H.expires_at, H.reason).where(H.hold_key == hold_key))
        ).one()
        status = HoldStatus(recorded.status)
        if status in (HoldStatus.ACTIVE, HoldStatus.CONFIRMED):
            return self._result(hold_key, status, recorded.expires_at, await self._recorded_lines(conn, hold_key))
        if status is HoldStatus.REJECTED:
            raise _refusal_error(recorded.reason)
        raise HoldNotActive(hold_key, status)

    async def _status(self, conn: AsyncConnection, hold_key: str) -> tuple[HoldStatus | None, datetime | None]:
        H = self._holds
        row = (await conn.execute(select(H.status, H.expires_at).where(H.hold_key == hold_key))).first()
        if row is None:
            return None, None
        return HoldStatus(row.status), row.expires_at

    async def _recorded_lines(self, conn: AsyncConnection, hold_key: str) -> list[tuple[str, int]]:
        Inv, L = self._inv, self._lines
        rows = await conn.execute(
            select(Inv.resource, L.quantity)
            .join(Inv, Inv.id == L.inventory_id)
            .where(L.hold_key == hold_key)
            .order_by(L.inventory_id)
        )
        return [(resource, quantity) for resource, quantity in rows]

    def _result(
        self, hold_key: str, status: HoldStatus, expires_at: datetime | None, lines: list[tuple[str, int]]
    ) -> HoldResult:
        return HoldResult(
            hold_key=hold_key,
            service=self.service,
            status=status,
            expires_at=expires_at,
            lines=[HoldLine(resource=resource, quantity=quantity) for resource, quantity in lines],
        )

    def _state(self, row: Row[Any]) -> RowState:
        return RowState(
            service=self.service,
            resource=row.resource,
            capacity=row.capacity,
            held=row.held,
            sold=row.sold,
            version=row.version,
        )

    def _violation(self, row: Row[Any]) -> Violation:
        problems = []
        if row.held != row.active:
            problems.append(f"held {row.held} != {row.active} in ACTIVE holds")
        if row.sold != row.confirmed:
            problems.append(f"sold {row.sold} != {row.confirmed} in CONFIRMED holds")
        if row.held < 0 or row.sold < 0 or row.held + row.sold > row.capacity:
            problems.append(f"counters out of bounds: capacity {row.capacity}, held {row.held}, sold {row.sold}")
        return Violation(service=self.service, resource=row.resource, problem="; ".join(problems))

    async def publish(self, rows: list[RowState]) -> None:
        if not rows or self.sink is None:
            return
        try:
            await self.sink.publish(rows)
        except Exception:
            # Committed already; the cache is only a hint and its versions let it catch up later.
            log.warning("availability sink failed for %d %s rows", len(rows), self.service, exc_info=True)
