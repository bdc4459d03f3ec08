"""Ledger only: holds per second through services/ (OrdersService.hold) against the same hold in raw SQL.

Both run in the bench process, on the same PostgreSQL, with the same number of connections and lanes; each lane
holds on its own sku (this measures the code's overhead, not lock queueing). The sides alternate in rounds so
that drift on a shared machine hits all alike. Two more sides in raw SQL measure two cuts: the row resolved to its
id before the statement (what the hold was before its rows were named by resource), and the former transaction
(BEGIN, the key's claim, the take, COMMIT: what every hold was before a new key's hold became one statement).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.results import Figure
from bench.sizes import Size
from bench.stats import per_second
from services.db import create_engine
from services.ledger.statements import LedgerStatements
from services.ledger.transaction import SET_LOCK_TIMEOUT
from services.orders.schemas import ItemLine, ItemsRequest
from services.orders.service import OrdersService

SCENARIO = "ledger only"
TARGET_RATIO = 0.9
# Rounds alternate which side goes first (ABBA...): whatever the machine still does after the scenarios before
# this one (PostgreSQL's autovacuum, the workers' sweeps) fades during a run and must not favour one side.
ROUNDS = 6
WARMUP_HOLDS = 20

# The ledger's hold for one sku, statement for statement (services/ledger/ledger.py `Ledger.hold`): a new key with
# room is `hold_named_line` on its own (no transaction block), the ledger's own text for the orders schema.
_TABLES = OrdersService.tables
_ORDERS = LedgerStatements.build(
    _TABLES.inventory.__table__, _TABLES.holds.__table__, _TABLES.hold_lines.__table__  # type: ignore[attr-defined]
)
HOLD_NAMED_LINE = _ORDERS.hold_named_line
# Before the rows were named in the statement: the sku's row found first, then `hold_line` by its id. Still the
# ledger's hold for a participant that names no lines. Bench only: that cut's "without it".
FIND_SKU = "SELECT id FROM orders.inventory WHERE sku = $1"
HOLD_LINE = _ORDERS.hold_line
# The former transaction (before a new key's hold was one statement): BEGIN and lock_timeout in one simple query
# (services/ledger/transaction.py), the key's claim, the sku's row, the take with its line, COMMIT. Its statements
# are still the ledger's transaction for every hold the one statement does not place. Bench only: the cut's
# "without it".
BEGIN = f"BEGIN; {SET_LOCK_TIMEOUT}"
CLAIM_KEY = _ORDERS.claim_key
TAKE_LINE = _ORDERS.take_line

Hold = Callable[[str, str], Awaitable[None]]


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, as the service's pool does it: asyncpg still rolls back a transaction left
    open, but sends nothing else. Its default (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN, RESET ALL) would be
    a round trip per hold that the service's hold does not make."""


def through_services(service: OrdersService, expires_at: datetime) -> Hold:
    async def hold(key: str, sku: str) -> None:
        await service.hold(key, ItemsRequest(items=[ItemLine(sku=sku, quantity=1)]), expires_at)

    return hold


def raw_sql(pool: asyncpg.Pool, expires_at: datetime) -> Hold:
    """Today's hold on a bare asyncpg connection: one statement, no transaction block."""

    async def hold(key: str, sku: str) -> None:
        async with pool.acquire() as conn:
            if await conn.fetchrow(HOLD_NAMED_LINE, key, sku, 1, expires_at) is None:
                raise RuntimeError(f"{sku} ran out, or hold key {key} was claimed already")

    return hold


def resolved_sql(pool: asyncpg.Pool, expires_at: datetime) -> Hold:
    """The hold before its row was named in the statement: two statements, no transaction block."""

    async def hold(key: str, sku: str) -> None:
        async with pool.acquire() as conn:
            inventory_id = await conn.fetchval(FIND_SKU, sku)
            if await conn.fetchrow(HOLD_LINE, key, inventory_id, 1, expires_at) is None:
                raise RuntimeError(f"{sku} ran out, or hold key {key} was claimed already")

    return hold


def former_sql(pool: asyncpg.Pool, expires_at: datetime) -> Hold:
    """The former transaction on a bare asyncpg connection."""

    async def hold(key: str, sku: str) -> None:
        async with pool.acquire() as conn:
            await conn.execute(BEGIN)
            try:
                if await conn.fetchval(CLAIM_KEY, key, expires_at) is None:
                    raise RuntimeError(f"hold key {key} already claimed")
                inventory_id = await conn.fetchval(FIND_SKU, sku)
                if await conn.fetchrow(TAKE_LINE, key, inventory_id, 1) is None:
                    raise RuntimeError(f"{sku} ran out")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    return hold


# The raw SQL sides, by name (the hot row's too).
RAW_SIDES: dict[str, Callable[[asyncpg.Pool, datetime], Hold]] = {
    "raw": raw_sql, "resolved": resolved_sql, "former": former_sql,
}


def cut_figures(scenario: str, rates: dict[str, float]) -> list[Figure]:
    """The two cuts the raw SQL sides measure, as holds/s with and without each."""
    return [
        Figure(scenario, "cut: raw SQL holds/s, the row named in the hold's statement", rates["raw"], "/s",
               baseline=rates["resolved"], baseline_name="the row resolved first, raw SQL"),
        Figure(scenario, "cut: raw SQL holds/s, a new key's hold in one statement", rates["resolved"], "/s",
               baseline=rates["former"], baseline_name="the former transaction, raw SQL"),
    ]


async def holds_per_lane(hold: Hold, tag: str, skus: list[str], per_lane: int) -> float:
    """One lane per entry of `skus` (the same sku may stand in several: lanes then queue on its row), each placing
    `per_lane` holds one after the other; the seconds until the last lane is done."""
    async def lane(number: int, sku: str) -> None:
        for index in range(per_lane):
            await hold(f"{tag}:{number}:{index}", sku)

    started = time.perf_counter()
    await asyncio.gather(*(lane(number, sku) for number, sku in enumerate(skus)))
    return time.perf_counter() - started


async def run(database_url: str, size: Size, run_id: str, create_sku: Callable[[], Awaitable[str]]) -> tuple[
    list[Figure], dict[str, Any]
]:
    lanes = size.ledger_lanes
    skus = [await create_sku() for _ in range(lanes)]
    per_lane = max(1, size.ledger_holds // (lanes * ROUNDS))
    expires_at = datetime.now(UTC) + timedelta(hours=1)
    engine = create_engine(database_url, pool_size=lanes)
    pool = await asyncpg.create_pool(database_url, min_size=lanes, max_size=lanes, reset=keep_session)
    try:
        holds = {"services": through_services(OrdersService(engine), expires_at),
                 **{name: side(pool, expires_at) for name, side in RAW_SIDES.items()}}
        seconds = dict.fromkeys(holds, 0.0)
        for name, hold in holds.items():
            await holds_per_lane(hold, f"{run_id}:warm:{name}", skus, max(1, WARMUP_HOLDS // lanes))
        for round_number in range(ROUNDS):
            order = list(holds.items()) if round_number % 2 == 0 else list(holds.items())[::-1]
            for name, hold in order:
                seconds[name] += await holds_per_lane(hold, f"{run_id}:{round_number}:{name}", skus, per_lane)
    finally:
        await pool.close()
        await engine.dispose()
    count = per_lane * lanes * ROUNDS
    rates = {name: per_second(count, s) for name, s in seconds.items()}
    figures = [
        Figure(SCENARIO, f"holds/s through services/ ({lanes} lanes)", rates["services"], "/s",
               baseline=rates["raw"], baseline_name="raw SQL", target_kind="ratio_at_least", target=TARGET_RATIO),
        *cut_figures(SCENARIO, rates),
    ]
    details = {"lanes": lanes, "holds_each": count, "seconds": seconds, "per_second": rates}
    return figures, details
