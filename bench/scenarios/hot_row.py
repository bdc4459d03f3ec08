"""The hot row: `hot_buyers` buyers at once, all holding one unit of the same sku (a large stock), through services/
(OrdersService.hold) against the same hold in raw SQL (bench/scenarios/ledger_only.py's, statement for statement),
and the share of the buyers' time spent waiting for a lock. Two more sides in raw SQL measure two cuts: the row
resolved to its id first (before the hold's statement named it), and the former transaction (the row locked from
the take until a COMMIT a round trip later), before a new key's hold was one statement.

Every buyer has a connection of its own on every side, so the buyers queue on the row's lock, not on a pool.
Each side's connections are opened before its round and closed after it (the sides never hold more than
`hot_buyers` connections at once, beside the API's and the workers'), warmed up with a hold per buyer, and the
rounds alternate the sides' order (forward, then backward, ...), as in the ledger-only scenario.

Lock waits: while a side's holds run, a connection of its own samples pg_stat_activity every SAMPLE_SECONDS and
counts the backends of this database waiting on a heavyweight lock (`wait_event_type = 'Lock'`: the row's tuple
lock or the transaction holding it). Nothing else takes ledger locks while this scenario runs (the shapes are
done), so the mean count over the buyers is the share of the buyers' time spent in lock waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.results import Figure
from bench.scenarios.ledger_only import RAW_SIDES, Hold, cut_figures, holds_per_lane, keep_session, through_services
from bench.sizes import Size
from bench.stats import per_second
from services.db import create_engine
from services.orders.service import OrdersService

SCENARIO = "hot row"
TARGET_RATIO = 0.9
ROUNDS = 8
SAMPLE_SECONDS = 0.01
SIDES = ("services", *RAW_SIDES)
LOCK_SAMPLE = """SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"""


@dataclass
class Side:
    seconds: float = 0.0
    holds: int = 0
    # this process's CPU seconds (the client's: the service's Python, or asyncpg alone) while the holds ran
    cpu_seconds: float = 0.0
    # pg_stat_activity samples taken while this side's holds ran, and the lock waiters they counted in all
    samples: int = 0
    waiting: int = 0
    failures: list[str] = field(default_factory=list)

    def lock_share(self, buyers: int) -> float:
        return self.waiting / (self.samples * buyers) if self.samples else float("nan")


def _counting(hold: Hold, failures: list[str]) -> Hold:
    """A hold that records its failure (a lock_timeout, most likely) instead of ending its buyer's lane."""

    async def counted(key: str, sku: str) -> None:
        try:
            await hold(key, sku)
        except Exception as error:
            failures.append(f"{type(error).__name__}: {error}"[:200])

    return counted


@contextlib.asynccontextmanager
async def _connections(side: str, database_url: str, buyers: int, expires_at: datetime) -> AsyncIterator[Hold]:
    if side == "services":
        engine = create_engine(database_url, pool_size=buyers)
        try:
            yield through_services(OrdersService(engine), expires_at)
        finally:
            await engine.dispose()
    else:
        pool = await asyncpg.create_pool(database_url, min_size=buyers, max_size=buyers, reset=keep_session)
        try:
            yield RAW_SIDES[side](pool, expires_at)
        finally:
            await pool.close()


async def _sampled(conn: asyncpg.Connection, side: Side, holds: Awaitable[float]) -> float:
    """Run `holds`, sampling the lock waiters meanwhile; returns the holds' seconds."""
    running = asyncio.ensure_future(holds)
    while not running.done():
        side.waiting += await conn.fetchval(LOCK_SAMPLE)
        side.samples += 1
        await asyncio.wait({running}, timeout=SAMPLE_SECONDS)
    return running.result()


async def run(database_url: str, size: Size, run_id: str, create_sku: Callable[[], Awaitable[str]]) -> tuple[
    list[Figure], dict[str, Any]
]:
    buyers = size.hot_buyers
    sku = await create_sku()
    lanes = [sku] * buyers
    per_buyer = max(1, size.hot_holds // (buyers * ROUNDS))
    expires_at = datetime.now(UTC) + timedelta(hours=1)
    sides = {name: Side() for name in SIDES}
    sampler = await asyncpg.connect(database_url)
    try:
        for round_number in range(ROUNDS):
            order = SIDES if round_number % 2 == 0 else SIDES[::-1]
            for name in order:
                side = sides[name]
                async with _connections(name, database_url, buyers, expires_at) as hold:
                    # Opens every connection (the engine's pool opens them on demand) and prepares the statements.
                    await holds_per_lane(_counting(hold, []), f"{run_id}:hot:warm:{round_number}:{name}", lanes, 1)
                    counted = _counting(hold, side.failures)
                    tag = f"{run_id}:hot:{round_number}:{name}"
                    cpu = time.process_time()
                    side.seconds += await _sampled(sampler, side, holds_per_lane(counted, tag, lanes, per_buyer))
                    side.cpu_seconds += time.process_time() - cpu
                    side.holds += per_buyer * buyers
        max_connections = int(await sampler.fetchval("SHOW max_connections"))
    finally:
        await sampler.close()
    rates = {name: per_second(side.holds - len(side.failures), side.seconds) for name, side in sides.items()}
    services, raw, former = sides["services"], sides["raw"], sides["former"]
    figures = [
        Figure(SCENARIO, f"holds/s through services/ ({buyers} buyers, one sku)", rates["services"], "/s",
               baseline=rates["raw"], baseline_name="raw SQL", target_kind="ratio_at_least", target=TARGET_RATIO),
        Figure(SCENARIO, "share of buyer time in lock waits, services/", 100 * services.lock_share(buyers), "%",
               baseline=100 * raw.lock_share(buyers), baseline_name="raw SQL"),
        *cut_figures(SCENARIO, rates),
        Figure(SCENARIO, "cut: share of buyer time in lock waits, raw SQL", 100 * sides["resolved"].lock_share(buyers),
               "%", baseline=100 * former.lock_share(buyers), baseline_name="the former transaction, raw SQL"),
        Figure(SCENARIO, "holds that failed (every side)", float(sum(len(side.failures) for side in sides.values())),
               "", target_kind="equals", target=0),
    ]
    details = {
        "buyers": buyers,
        "holds_per_buyer_per_round": per_buyer,
        "rounds": ROUNDS,
        "max_connections": max_connections,
        "per_second": rates,
        "sides": {name: {"seconds": side.seconds, "holds": side.holds,
                         "client_cpu_us_per_hold": 1e6 * side.cpu_seconds / side.holds if side.holds else None,
                         "lock_samples": side.samples,
                         "lock_waiters_sampled": side.waiting, "lock_share": side.lock_share(buyers),
                         "failures": len(side.failures), "first_failures": side.failures[:5]}
                  for name, side in sides.items()},
    }
    return figures, details
