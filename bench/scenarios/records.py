"""Record writes: the booking record's write as the saga's activity makes it (services/bookings/records.py: asyncpg,
the record and its events in one statement; the first write alone in one round trip, a later one in a transaction
of five) against its former selves, the same checkouts' writes in the same run: the cuts, measured.

Arms: `today`; `locked`, the same writes with the first one taken the locked way too (`first_write` unset: five
round trips, as every write was before the one-statement first write); `former`, the write before the cut that
moved it onto asyncpg (bench/former_records.py: SQLAlchemy, seven round trips). Each arm writes `checkouts`
checkouts' records over LANES lanes at once, each checkout twice as the saga does (HELD, its first write, then
CONFIRMED, each with its event), in rounds that rotate which arm goes first. Per arm: the write's p50 and p99 (and
the first write's p50), and the CPU per write of the bench process (the writer's Python and driver) and of
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench import cpu
from bench.former_records import former_record
from bench.results import Figure
from bench.scenarios.webhooks import view
from bench.sizes import Size
from bench.stats import percentile
from services.bookings.models import RecordInput
from services.bookings.records import BookingRecords
from services.db import create_engine

SCENARIO = "record writes"
LANES = 4
ROUNDS = 4
WARMUP = 8
CHECKOUTS = {"tiny": 40, "small": 600, "full": 1600}
Write = Callable[[RecordInput], Awaitable[bool]]


def _writes(prefix: str, first_write: bool) -> list[RecordInput]:
    cid = f"{prefix}{uuid.uuid4().hex[:12]}"
    return [
        RecordInput(checkout_id=cid, customer_id="bench", status=status, version=len(statuses),
                    view=view(cid, status, statuses), first_write=first_write and status == "HELD")
        for status, statuses in (("HELD", ["PENDING", "HELD"]), ("CONFIRMED", ["PENDING", "HELD", "CONFIRMED"]))
    ]


async def _lanes(write: Write, first_write: bool, checkouts: int, prefix: str, times: list[float],
                 first_times: list[float], failures: list[str]) -> None:
    async def lane(count: int) -> None:
        for _ in range(count):
            for new in _writes(prefix, first_write):
                started = time.perf_counter()
                try:
                    if not await write(new):
                        failures.append(f"{new.checkout_id} v{new.version} not written")
                except Exception as error:
                    failures.append(f"{type(error).__name__}: {error}"[:200])
                took = time.perf_counter() - started
                times.append(took)
                if new.status == "HELD":
                    first_times.append(took)

    await asyncio.gather(*(lane(checkouts // LANES) for _ in range(LANES)))


async def run(database_url: str, postgres_pid: int | None, size: Size) -> tuple[list[Figure], dict[str, Any]]:
    engine = create_engine(database_url, pool_size=LANES)
    records = BookingRecords(engine)
    # arm -> (its write, whether the first write says so)
    arms: dict[str, tuple[Write, bool]] = {
        "today": (records.record, True),
        "locked": (records.record, False),
        "former": (lambda new: former_record(engine, new), False),
    }
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    first_times: dict[str, list[float]] = {arm: [] for arm in arms}
    used: dict[str, dict[str, float]] = {arm: {} for arm in arms}
    failures: list[str] = []
    per_round = max(LANES, CHECKOUTS[size.name] // ROUNDS)
    names = list(arms)
    try:
        for arm, (write, first_write) in arms.items():
            await _lanes(write, first_write, WARMUP, f"bench-rec-warm-{arm}-", [], [], failures)
        for round_number in range(ROUNDS):
            shift = round_number % len(names)
            for arm in names[shift:] + names[:shift]:
                write, first_write = arms[arm]
                meter = cpu.Meter({"postgres": postgres_pid} if postgres_pid is not None else {}, trees=("postgres",))
                meter.start()
                await _lanes(write, first_write, per_round, f"bench-rec-{round_number}-{arm}-", times[arm],
                             first_times[arm], failures)
                for name, seconds in meter.stop().items():
                    used[arm][name] = used[arm].get(name, 0.0) + seconds
    finally:
        await engine.dispose()
    ms = {arm: {p: percentile(found, p) * 1000 for p in (50, 99)} for arm, found in times.items()}
    first_ms = {arm: percentile(found, 50) * 1000 for arm, found in first_times.items()}
    cpu_ms = {arm: {name: 1000 * seconds / len(times[arm]) for name, seconds in spent.items()}
              for arm, spent in used.items()}
    former = "the former write (SQLAlchemy, seven round trips)"
    figures = [
        Figure(SCENARIO, "cut: record write p50 (asyncpg, its events in the record's statement)", ms["today"][50],
               "ms", baseline=ms["former"][50], baseline_name=former),
        Figure(SCENARIO, "cut: record write p99", ms["today"][99], "ms", baseline=ms["former"][99],
               baseline_name=former),
        Figure(SCENARIO, "cut: writer CPU per record write", cpu_ms["today"]["bench"], "ms",
               baseline=cpu_ms["former"]["bench"], baseline_name=former),
    ]
    if postgres_pid is not None:
        figures.append(Figure(SCENARIO, "cut: PostgreSQL CPU per record write", cpu_ms["today"]["postgres"], "ms",
                              baseline=cpu_ms["former"]["postgres"], baseline_name=former))
    locked = "the first write locked too (five round trips)"
    figures += [
        Figure(SCENARIO, "cut: first write p50 (one statement)", first_ms["today"], "ms",
               baseline=first_ms["locked"], baseline_name=locked),
        Figure(SCENARIO, "cut: writer CPU per record write, the first in one statement", cpu_ms["today"]["bench"],
               "ms", baseline=cpu_ms["locked"]["bench"], baseline_name=locked),
    ]
    if postgres_pid is not None:
        figures.append(Figure(SCENARIO, "cut: PostgreSQL CPU per record write, the first in one statement",
                              cpu_ms["today"]["postgres"], "ms", baseline=cpu_ms["locked"]["postgres"],
                              baseline_name=locked))
    figures.append(Figure(SCENARIO, "record writes that failed (every arm)", float(len(failures)), "",
                          target_kind="equals", target=0))
    details = {"lanes": LANES, "rounds": ROUNDS, "writes": {arm: len(found) for arm, found in times.items()},
               "ms": ms, "first_write_p50_ms": first_ms, "cpu_ms_per_write": cpu_ms, "failures": len(failures),
               "first_failures": failures[:5]}
    return figures, details
