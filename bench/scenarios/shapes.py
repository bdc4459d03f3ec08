"""The four shapes a run measures, each at every concurrency level: checkouts/s, p50, p95 and p99 per level.

A shape is a placement (every participant `local`, i.e. its ledger operations run as local activities in the
checkout worker, or every participant `remote`, each on its own task queue) and a worker kind (no-op activities
under the real names, `worker --noop`, or the real ledgers). The no-op workers give the Temporal floor of that
placement: the same workflow, API and servers with nothing behind the activities. The local no-op floor is the
best shape's floor, the one the real checkout is held against. Every checkout is a three-service basket on
inventory created for its level, so the holds never run short; each has a customer of its own, so the
per-customer limits never answer for the bench.

The whole booking (WHOLE_LOCAL) is the real local checkout as deployed: besides the holds, the record and the outbox
(every real shape has those, and the payload codec: the bench stack's dev key), the rate limiter on, the webhook
relay delivering to a local receiver, and each checkout paid from the customer's wallet (priced inventory, a wallet
funded per customer before the level starts). STEPS turn on one of those at a time (and the codec off), at one
level, beside the plain real checkout measured again in the same place (bench/scenarios/steps.py).

Where a checkout's time goes (PHASES): at PHASE_LEVEL, each of the last PHASE_SAMPLE placed checkouts' first events
(from its history, the server's clock) set beside the bench's clock, the same machine's: the API before the server
started the workflow, the first workflow task's wait, its run until the first stage's last hold completed (that
local activity's marker, the worker's clock) and the rest of it, the update's completion after it, and the answer's
way back. One checkout in flight, so no phase is another checkout's queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import MarkerRecordedEventAttributes
from temporalio.client import Client

from activities.models import activity_name
from bench.api_client import Answer, BenchApi, Inventory, run_bounded
from bench.cpu import Meter
from bench.http import HttpClient
from bench.sizes import Size
from bench.stats import per_second, percentile
from services.bookings.models import RECORD_ACTIVITY
from services.registry import NAMES, participant

Placement = Literal["local", "remote"]
PERCENTILES = (50, 95, 99)
PHASES = ("API before the start", "first task waits", "first task: first stage held", "first task: the rest",
          "update done after it", "answer back")
PHASE_LEVEL = 1
PHASE_SAMPLE = 30
# The hold activities of the participants of the first stage (the inventory's; the wallet's stage comes after): the
# first task's run is split where the last of them completed in it (its local-activity marker's complete_time).
_FIRST_STAGE = min(participant(name).stage for name in NAMES)
_FIRST_STAGE_HOLDS = frozenset(activity_name(name, "hold") for name in NAMES if participant(name).stage == _FIRST_STAGE)
LOCAL_ACTIVITY_MARKER = "core_local_activity"
# The first event of each kind a phase starts or ends at.
_PHASE_EVENTS = (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
                 EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
# The marker name the SDK gives `workflow.patched`'s markers (a local activity's is core_local_activity).
PATCH_MARKER = "core_patch"


@dataclass(frozen=True)
class Shape:
    key: str
    label: str
    placement: Placement
    noop: bool
    # The steps beyond the plain real checkout (shape_env says what each sets for the API and the workers).
    codec: bool = True
    rate_limit: bool = False
    webhooks: bool = False
    paid: bool = False
    # Settings a cut's run turns back (its "without it"), over everything above: (variable, value) pairs.
    env: tuple[tuple[str, str], ...] = ()

    @property
    def placements(self) -> dict[str, str]:
        """PARTICIPANT_PLACEMENTS for this shape: every participant named, so no default or environment value
        decides any of them."""
        return {name: self.placement for name in NAMES}


FLOOR_REMOTE = Shape("floor_remote", "no-op floor, remote shape", "remote", noop=True)
FLOOR_LOCAL = Shape("floor_local", "best-shape floor (no-op, local)", "local", noop=True)
REAL_REMOTE = Shape("real_remote", "real, remote placement", "remote", noop=False)
REAL_LOCAL = Shape("real_local", "real, local placement", "local", noop=False)
WHOLE_LOCAL = Shape("whole_local", "whole booking, local placement", "local", noop=False, rate_limit=True,
                    webhooks=True, paid=True)
SHAPES = (FLOOR_REMOTE, REAL_REMOTE, FLOOR_LOCAL, WHOLE_LOCAL, REAL_LOCAL)
# Measurement order: one API restart between the placements; the remote real run right after its floor; the whole
# booking (the one held to the targets) and the best floor in halves, floor, whole, whole, floor, so that a drift
# through the run (the dev server's CPU per checkout grows as the held checkouts pile up in it) weighs on both
# alike, where floor-then-whole charged all of it to the whole booking; then the plain real checkout, whose API the
# per-step runs and the scenarios after them reuse. A shape named twice runs half of every level's checkouts each
# time, and its figures pool its halves (`ShapeRun.pooled`).
ORDER = (FLOOR_REMOTE, REAL_REMOTE, FLOOR_LOCAL, WHOLE_LOCAL, WHOLE_LOCAL, FLOOR_LOCAL, REAL_LOCAL)
# Each step of the whole booking alone, at STEP_LEVEL: (step, the run with it, the run without it), where STEP_PLAIN
# stands for the plain real checkout. The codec is on in the plain checkout, so its pair is the plain run against
# one with the codec off. The plain real checkout runs before the first step's run and after each one (the last
# also leaves the API and workers as the later scenarios expect them), and each step is held against the two plain
# runs either side of it, pooled: a drift through the run weighs on both sides of a step alike, and a step is
# never held against a plain run measured minutes away from it.
STEP_LEVEL = 5
# Every step run measures PHASE_LEVEL first (one checkout's own time, with its phases: where a step's cost in the
# answer shows without queueing), then STEP_LEVEL (where the cores are full and the rate follows the CPU).
STEP_LEVELS = (PHASE_LEVEL, STEP_LEVEL)
STEP_PLAIN = Shape("step_plain", "real, local (the steps' baseline)", "local", noop=False)
STEP_VARIANTS = (
    Shape("step_no_codec", "real, local, codec off", "local", noop=False, codec=False),
    Shape("step_rate_limit", "real, local + rate limiter", "local", noop=False, rate_limit=True),
    Shape("step_webhooks", "real, local + webhooks and relay", "local", noop=False, webhooks=True),
    Shape("step_wallet", "real, local + wallet payment", "local", noop=False, paid=True),
    # The payment as before its cut: no quote from the API, so the wallet authorizes the held total after the holds.
    Shape("step_wallet_after", "real, local + wallet payment after the holds", "local", noop=False, paid=True,
          env=(("PAYMENT_BESIDE_HOLDS", "false"),)),
    Shape("step_price_reads", "real, local, a price reading per checkout", "local", noop=False,
          env=(("PRICE_CHECK_SECONDS", "0"),)),
    # The relay as before its rounds were batched: a round (a fan-out and a lease) per commit.
    Shape("step_webhooks_per_commit", "real, local + webhooks, a relay round per commit", "local", noop=False,
          webhooks=True, env=(("WEBHOOK_ROUND_SECONDS", "0"),)),
    # Every step at once (the whole booking's steps) beside the same plain runs as each step alone: whether the
    # steps cost more together than apart, or the shapes' phase, where the whole booking runs, drifts from this one.
    Shape("step_all", "real, local + every step (the whole booking)", "local", noop=False, rate_limit=True,
          webhooks=True, paid=True),
)
# The plain runs: number n runs right before STEP_VARIANTS[n] (and the last after the last variant).
STEP_PLAINS = tuple(Shape(f"step_plain_{n}", f"real, local (the steps' baseline, run {n + 1})", "local", noop=False)
                    for n in range(len(STEP_VARIANTS) + 1))
# Measurement order: plain, variant, plain, variant, ..., plain.
STEP_RUNS = (*(run for plain, variant in zip(STEP_PLAINS, STEP_VARIANTS, strict=False) for run in (plain, variant)),
             STEP_PLAINS[-1])
STEPS = (
    ("payload codec", STEP_PLAIN, STEP_VARIANTS[0]),
    ("rate limiter", STEP_VARIANTS[1], STEP_PLAIN),
    ("webhooks and relay", STEP_VARIANTS[2], STEP_PLAIN),
    ("wallet payment", STEP_VARIANTS[3], STEP_PLAIN),
    # A cut on the real path, measured the same way: the plain checkout (with it) against a run without it.
    ("cut: price check shared", STEP_PLAIN, STEP_VARIANTS[5]),
    # A cut of the paid path: both sides pay, one with the wallet beside the holds, one after them (two runs apart).
    ("cut: payment beside the holds", STEP_VARIANTS[3], STEP_VARIANTS[4]),
    # A cut of the relay: its rounds batched against a round per commit (both deliver every event).
    ("cut: relay rounds batched", STEP_VARIANTS[2], STEP_VARIANTS[6]),
    # Not a step: the rate limiter, webhooks and the wallet at once, as in the whole booking.
    ("every step together", STEP_VARIANTS[7], STEP_PLAIN),
)


def plains_beside(variant: Shape) -> tuple[Shape, Shape]:
    """The plain runs right before and right after `variant`'s."""
    n = STEP_VARIANTS.index(variant)
    return STEP_PLAINS[n], STEP_PLAINS[n + 1]


# Far above any rate a bench caller reaches: every request from the bench is one caller (one address, no customer
# token), so a limit it could reach would answer 429s and measure the refusals; this one counts every request in
# Redis, as deployed, and never refuses one.
BENCH_RATE_LIMIT = "100000"


def shape_env(shape: Shape, webhook_url: str, webhook_secret: str) -> dict[str, str]:
    """What the shape sets in the API's and the workers' environment (the relay's too), over the bench stack's."""
    env = {"RATE_LIMIT": BENCH_RATE_LIMIT if shape.rate_limit else "0"}
    if not shape.codec:
        env.update(PAYLOAD_KEYS="", PAYLOAD_KEY_ID="")
    if shape.webhooks:
        env.update(WEBHOOK_URLS=webhook_url, WEBHOOK_SECRET=webhook_secret)
    env.update(shape.env)
    return env


@dataclass
class Level:
    concurrency: int
    checkouts: int
    seconds: float
    answers: list[Answer]
    # CPU seconds per process while the level's clock ran (bench/cpu.py): PostgreSQL with its backends, the relay
    # and the receiver when they run, and "bench", the load generator itself (left out of the total).
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    # At PHASE_LEVEL: milliseconds of each of PHASES, one sample per checkout read (`phases_of`).
    phases: dict[str, list[float]] = field(default_factory=dict)

    @property
    def placed(self) -> int:
        return sum(1 for a in self.answers if a.status == 201)

    @property
    def paid(self) -> int:
        """Placed checkouts with a wallet hold (the authorization) among their holds."""
        return sum(1 for a in self.answers if a.status == 201 and any(
            hold.get("service") == "wallet" for hold in a.body.get("holds", [])))

    @property
    def per_second(self) -> float:
        return per_second(self.placed, self.seconds)

    def latency_ms(self, pct: int) -> float:
        """Percentile of the placed checkouts' answer times (POST until its 201), in ms."""
        return percentile([a.seconds * 1000 for a in self.answers if a.status == 201], pct)

    def cpu_ms_per_checkout(self) -> dict[str, float]:
        """CPU milliseconds per placed checkout, per process and in all (`total`: every process but the bench's)."""
        if not self.cpu_seconds or not self.placed:
            return {}
        ms = {name: round(1000 * seconds / self.placed, 2) for name, seconds in self.cpu_seconds.items()}
        ms["total"] = round(sum(value for name, value in ms.items() if name != "bench"), 2)
        return ms

    def phases_p50_ms(self) -> dict[str, float]:
        """The p50 of each phase sampled (PHASES; none below PHASE_LEVEL's level)."""
        return {name: percentile(samples, 50) for name, samples in self.phases.items()}

    @classmethod
    def pooled(cls, levels: list[Level]) -> Level:
        """Runs of one level as one: every checkout over the time of all, CPU seconds added up."""
        cpu: dict[str, float] = {}
        phases: dict[str, list[float]] = {}
        for level in levels:
            for name, seconds in level.cpu_seconds.items():
                cpu[name] = cpu.get(name, 0.0) + seconds
            for name, samples in level.phases.items():
                phases.setdefault(name, []).extend(samples)
        return cls(levels[0].concurrency, sum(level.checkouts for level in levels),
                   sum(level.seconds for level in levels), [answer for level in levels for answer in level.answers],
                   cpu, phases)

    def details(self) -> dict[str, Any]:
        return {
            "checkouts": self.checkouts,
            "seconds": self.seconds,
            "placed": self.placed,
            "paid": self.paid,
            "not_placed": {str(a.status): a.body.get("detail", "") for a in self.answers if a.status != 201},
            "per_second": self.per_second,
            **{f"p{p}_ms": self.latency_ms(p) for p in PERCENTILES},
            "cpu_ms_per_checkout": self.cpu_ms_per_checkout(),
            **({"phases_p50_ms": self.phases_p50_ms(),
                "phases_sampled": min(len(samples) for samples in self.phases.values())} if self.phases else {}),
        }


@dataclass
class ShapeRun:
    shape: Shape
    levels: dict[int, Level]
    # One placed checkout's history so far, by kind of step: what the placement actually was, asked of Temporal.
    history: dict[str, int]
    # Paid shapes: wallets whose authorization is their checkout's total, read back after the run.
    wallets_authorized: int = 0
    # Shapes with webhooks: deliveries the relay reported (2xx from the receiver) once the run was over.
    webhooks_delivered: int = 0

    def at(self, concurrency: int) -> Level:
        return self.levels[concurrency]

    @classmethod
    def pooled(cls, shape: Shape, runs: list[ShapeRun]) -> ShapeRun:
        """Runs of `shape` (its halves) as one: each level pooled, counts added up, the last one's history."""
        levels = {c: Level.pooled([run.levels[c] for run in runs if c in run.levels])
                  for c in dict.fromkeys(c for run in runs for c in run.levels)}
        return cls(shape, levels, runs[-1].history, sum(run.wallets_authorized for run in runs),
                   sum(run.webhooks_delivered for run in runs))

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
            "steps": {"codec": self.shape.codec, "rate_limit": self.shape.rate_limit,
                      "webhooks": self.shape.webhooks, "paid": self.shape.paid},
            "env": dict(self.shape.env),
            "wallets_authorized": self.wallets_authorized,
            "webhooks_delivered": self.webhooks_delivered,
            "checkouts": self.checkouts,
            "placed": self.placed,
            "history_of_one_checkout": self.history,
            "levels": {str(c): level.details() for c, level in self.levels.items()},
        }


async def history_steps(client: Client, checkout_id: str) -> dict[str, int]:
    """Activity tasks (remote participants' operations), the booking record's writes (an activity task each, off
    the answer's path: docs/bookings.md), local activity markers, patch markers (`workflow.patched`) and all the
    events in one checkout's history."""
    counts = {"activity_tasks": 0, "record_writes": 0, "local_activities": 0, "patch_markers": 0, "events": 0}
    async for event in client.get_workflow_handle(checkout_id).fetch_history_events():
        counts["events"] += 1
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
            counts["record_writes" if kind == RECORD_ACTIVITY else "activity_tasks"] += 1
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes.marker_name
            counts["patch_markers" if marker == PATCH_MARKER else "local_activities"] += 1
    return counts


def phases_of(
    answer: Answer, first: dict[EventType.ValueType, float], first_stage_held: float | None
) -> dict[str, float]:
    """Milliseconds of each of PHASES for one placed checkout: `first` holds the wall-clock time (seconds) of the
    first event of each kind in _PHASE_EVENTS, from its history; `first_stage_held` when the first task's last
    first-stage hold completed, None when no hold ran in the first task (remote holds: activity tasks, later)."""
    started, task_started, task_completed, update_done = (first[kind] for kind in _PHASE_EVENTS)
    held = task_started if first_stage_held is None else first_stage_held
    marks = (answer.sent_at, started, task_started, held, task_completed, update_done,
             answer.sent_at + answer.seconds)
    spans = zip(PHASES, marks[:-1], marks[1:], strict=True)
    return {name: round(1000 * (end - begin), 3) for name, begin, end in spans}


def first_stage_completion(marker: MarkerRecordedEventAttributes) -> float | None:
    """When a first-stage hold completed (wall clock, seconds), from its local-activity marker; None for any other
    marker. The marker's `data` is the SDK core's own JSON (never through the payload codec)."""
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in marker.details:
        return None
    try:
        data = json.loads(marker.details["data"].payloads[0].data)
        if data["activity_type"] not in _FIRST_STAGE_HOLDS:
            return None
        return float(data["complete_time"]["seconds"]) + float(data["complete_time"]["nanos"]) / 1e9
    except (ValueError, LookupError, TypeError):
        return None


async def phases(client: Client, answers: list[Answer]) -> dict[str, list[float]]:
    """PHASES of the last PHASE_SAMPLE placed checkouts among `answers`, one sample each."""
    samples: dict[str, list[float]] = {name: [] for name in PHASES}
    for answer in [a for a in answers if a.status == 201][-PHASE_SAMPLE:]:
        first: dict[EventType.ValueType, float] = {}
        held: list[float] = []
        async for event in client.get_workflow_handle(answer.body["checkout_id"]).fetch_history_events():
            if event.event_type in _PHASE_EVENTS and event.event_type not in first:
                first[event.event_type] = event.event_time.ToNanoseconds() / 1e9
            # The first task's markers follow its completion, before the update's completion (the last event read).
            elif (event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                  and EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in first):
                completed = first_stage_completion(event.marker_recorded_event_attributes)
                if completed is not None:
                    held.append(completed)
            if len(first) == len(_PHASE_EVENTS):
                break
        if len(first) < len(_PHASE_EVENTS):
            continue  # not every event there (none is expected missing): the checkout is left out, not guessed
        for name, ms in phases_of(answer, first, max(held, default=None)).items():
            samples[name].append(ms)
    return samples if samples[PHASES[0]] else {}


def share(checkouts: int, part: tuple[int, int]) -> int:
    """Part `part[0]` of `part[1]` (numbered from 0) of a level's checkouts: the parts add up to `checkouts`."""
    number, parts = part
    return checkouts // parts + (1 if number < checkouts % parts else 0)


async def measure(api: BenchApi, client: Client, size: Size, shape: Shape, *,
                  levels: tuple[int, ...] | None = None, meter: Callable[[], Meter] | None = None,
                  part: tuple[int, int] = (0, 1)) -> ShapeRun:
    """Each level in turn (`levels`, else every one of the size), lowest concurrency first, closed loop, on
    inventory of its own; a paid shape's customers get their wallets before the level's clock starts. `meter`:
    the processes whose CPU is counted while each level's clock runs (none when None). `part`: (n, of) runs
    only the n-th share of each level's checkouts (`share`)."""
    measured: dict[int, Level] = {}
    wallets: list[tuple[str, Answer]] = []
    for concurrency, all_checkouts in size.levels.items():
        if levels is not None and concurrency not in levels:
            continue
        checkouts = share(all_checkouts, part)
        async with api.client() as http:
            inventory = await api.create_inventory(http, priced=shape.paid)
            customers = [api.unique("cust") for _ in range(checkouts)]
            if shape.paid:
                await api.fund_wallets(http, customers)

            async def one(index: int, inventory: Inventory = inventory, http: HttpClient = http,
                          customers: list[str] = customers) -> Answer:
                return await api.checkout(http, inventory.basket(customers[index], paid=shape.paid),
                                          api.unique("key"))

            cpu = meter() if meter is not None else None
            if cpu is not None:
                cpu.start()
            started = time.perf_counter()
            answers = await run_bounded(checkouts, concurrency, one)
            seconds = time.perf_counter() - started
            measured[concurrency] = Level(concurrency, checkouts, seconds, answers,
                                          cpu.stop() if cpu is not None else {})
            if concurrency == PHASE_LEVEL:  # read after the level's clock and meter stopped
                measured[concurrency].phases = await phases(client, answers)
            wallets += list(zip(customers, answers, strict=True))
    placed = [a.body["checkout_id"] for level in measured.values() for a in level.answers if a.status == 201]
    history = await history_steps(client, placed[-1]) if placed else {}
    run = ShapeRun(shape, measured, history)
    if shape.paid:
        run.wallets_authorized = await _wallets_authorized(api, wallets)
    return run


async def _wallets_authorized(api: BenchApi, wallets: list[tuple[str, Answer]]) -> int:
    """How many placed checkouts' wallets have exactly the checkout's total authorized (each customer checks out
    once, so the wallet's authorization is that checkout's)."""
    placed = [(customer, answer) for customer, answer in wallets if answer.status == 201]
    async with api.client() as http:
        async def one(index: int) -> bool:
            customer, answer = placed[index]
            wallet = await api.wallet(http, customer)
            total = answer.body.get("total") or {}
            return bool(wallet["authorized"] > 0 and wallet["authorized"] == total.get("amount"))

        return sum(await run_bounded(len(placed), 10, one))
