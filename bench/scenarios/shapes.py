"""The four shapes a run measures, each at every concurrency level: checkouts/s, p50, p95 and p99 per level.

A shape is a placement (every participant `local`, i.e. its ledger operations run as local activities in the
checkout worker, or every participant `remote`, each on its own task queue) and a worker kind (no-op activities
under the real names, `worker --noop`, or the real ledgers). The no-op workers give the Temporal floor of that
placement: the same workflow, API and servers with nothing behind the activities. The local no-op floor is the
best shape's floor, the one the real checkout is held against. Every checkout is a three-service basket on
inventory created for its level, so the holds never run short; each has a customer of its own, so the
per-customer limits never answer for the bench.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.api_client import Answer, BenchApi, Inventory, run_bounded
from bench.http import HttpClient
from bench.sizes import Size
from bench.stats import per_second, percentile
from services.registry import NAMES

Placement = Literal["local", "remote"]
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Shape:
    key: str
    label: str
    placement: Placement
    noop: bool

    @property
    def placements(self) -> dict[str, str]:
        """PARTICIPANT_PLACEMENTS for this shape: every participant named, so no default or environment value
        decides any of them."""
        return {name: self.placement for name in NAMES}


FLOOR_REMOTE = Shape("floor_remote", "no-op floor, remote shape", "remote", noop=True)
FLOOR_LOCAL = Shape("floor_local", "best-shape floor (no-op, local)", "local", noop=True)
REAL_REMOTE = Shape("real_remote", "real, remote placement", "remote", noop=False)
REAL_LOCAL = Shape("real_local", "real, local placement", "local", noop=False)
# Measurement order: one API restart between the placements; each real run right after its own floor.
SHAPES = (FLOOR_REMOTE, REAL_REMOTE, FLOOR_LOCAL, REAL_LOCAL)


@dataclass
class Level:
    concurrency: int
    checkouts: int
    seconds: float
    answers: list[Answer]

    @property
    def placed(self) -> int:
        return sum(1 for a in self.answers if a.status == 201)

    @property
    def per_second(self) -> float:
        return per_second(self.placed, self.seconds)

    def latency_ms(self, pct: int) -> float:
        """Percentile of the placed checkouts' answer times (POST until its 201), in ms."""
        return percentile([a.seconds * 1000 for a in self.answers if a.status == 201], pct)

    def details(self) -> dict[str, Any]:
        return {
            "checkouts": self.checkouts,
            "seconds": self.seconds,
            "placed": self.placed,
            "not_placed": {str(a.status): a.body.get("detail", "") for a in self.answers if a.status != 201},
            "per_second": self.per_second,
            **{f"p{p}_ms": self.latency_ms(p) for p in PERCENTILES},
        }


@dataclass
class ShapeRun:
    shape: Shape
    levels: dict[int, Level]
    # One placed checkout's history so far, by kind of step: what the placement actually was, asked of Temporal.
    history: dict[str, int]

    def at(self, concurrency: int) -> Level:
        return self.levels[concurrency]

    @property
    def checkouts(self) -> int:
        return sum(level.checkouts for level in self.levels.values())

    @property
    def placed(self) -> int:
        return sum(level.placed for level in self.levels.values())

    def details(self) -> dict[str, Any]:
        return {
            "label": self.shape.label,
            "placement": self.shape.placement,
            "noop": self.shape.noop,
            "checkouts": self.checkouts,
            "placed": self.placed,
            "history_of_one_checkout": self.history,
            "levels": {str(c): level.details() for c, level in self.levels.items()},
        }


async def history_steps(client: Client, checkout_id: str) -> dict[str, int]:
    """Activity tasks (remote participants' operations) and local activity markers in one checkout's history."""
    counts = {"activity_tasks": 0, "local_activities": 0}
    async for event in client.get_workflow_handle(checkout_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            counts["activity_tasks"] += 1
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            counts["local_activities"] += 1
    return counts


async def measure(api: BenchApi, client: Client, size: Size, shape: Shape) -> ShapeRun:
    """Each level in turn, lowest concurrency first, closed loop, on inventory of its own."""
    levels: dict[int, Level] = {}
    for concurrency, checkouts in size.levels.items():
        async with api.client() as http:
            inventory = await api.create_inventory(http)

            async def one(_index: int, inventory: Inventory = inventory, http: HttpClient = http) -> Answer:
                return await api.checkout(http, inventory.basket(api.unique("cust")), api.unique("key"))

            started = time.perf_counter()
            answers = await run_bounded(checkouts, concurrency, one)
            levels[concurrency] = Level(concurrency, checkouts, time.perf_counter() - started, answers)
    placed = [a.body["checkout_id"] for level in levels.values() for a in level.answers if a.status == 201]
    history = await history_steps(client, placed[-1]) if placed else {}
    return ShapeRun(shape, levels, history)
