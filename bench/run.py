"""`booking-saga bench`: start the servers, run every scenario, print a table and write .bench/.

Order, all on the same servers: the remote placement (API and workers started with every participant `remote`),
its no-op floor then its real checkout; then the API restarted in the local placement, its no-op floor (the best
shape's floor) and the whole booking (rate limiter, webhooks and their relay, wallet payment on) in halves, floor,
whole, whole, floor, then the plain real checkout, each at every concurrency level (bench/scenarios/shapes.py);
then each step of the whole booking alone at one level, beside the plain real checkout (bench/scenarios/steps.py).
Then, once each, in the local placement with the real workers: the flash sale, the HTTP floor (the sold-out lane
against a bare ASGI app), the ledger alone, the hot row, cancelling sales and the webhooks; the processes' memory
last. Every figure is reported beside a baseline from this same run; targets are checked and shown, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import cpu, machine, profiling, report
from bench.api_client import BenchApi
from bench.results import Figure, text_table
from bench.scenarios import (
    cancels,
    flash_sale,
    hot_row,
    http_floor,
    latency,
    ledger_only,
    memory,
    patches,
    records,
    shapes,
    steps,
    throughput,
    webhooks,
)
from bench.scenarios.shapes import Shape, ShapeRun
from bench.sizes import SIZES, Size
from bench.stack import BenchStack, running_stack, wait_for_workers
from runtime.embedded import free_port, wait_for_port
from runtime.temporal import connect
from settings import Settings

# The first shape runs on servers that have just started (and workers compiling their byte-code cache): its
# warm-up is this many times longer, so the cold start is not charged to the first shape's figures.
FIRST_WARMUP_FACTOR = 3


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# Every process of the system under test; PostgreSQL is metered with its backends (bench/cpu.py).
SYSTEM = ("api", "workers", "temporal", "postgres", "redis", "relay", "receiver")


def _pids(stack: BenchStack, names: tuple[str, ...] = SYSTEM) -> dict[str, int]:
    return {name: process.pid for name in names if (process := stack.process(name)) is not None}


def _meter(stack: BenchStack) -> cpu.Meter:
    """The CPU of the system's processes running now (the relay and the receiver only in shapes with webhooks)."""
    return cpu.Meter(_pids(stack), trees=("postgres",))


class Hooks:
    """The webhook receiver (bench/scenarios/webhooks.py's, verifying each signature), started for the first shape
    with webhooks, and the relay of the shape being measured, whose metrics say how many deliveries it made."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.port: int | None = None
        self.metrics_port: int | None = None

    def url(self, shape: Shape) -> str:
        # An endpoint per shape: a new endpoint starts at the newest event, so no relay delivers the events of the
        # shapes measured before it (the outbox fills in every real shape, relay or not).
        return f"http://127.0.0.1:{self.port}/hooks/{shape.key}"

    def env(self, shape: Shape) -> dict[str, str]:
        if shape.webhooks and self.port is None:
            self.port = free_port()
            self.stack.start_child("receiver", [sys.executable, "-m", "bench.scenarios.webhooks", "receive",
                                                str(self.port)])
            wait_for_port(self.port)
        return shapes.shape_env(shape, self.url(shape) if shape.webhooks else "", webhooks.SECRET)

    def start_relay(self) -> None:
        self.metrics_port = free_port()
        self.stack.start_bench_relay(self.metrics_port)
        wait_for_port(self.metrics_port)

    def delivered(self) -> int:
        """The relay's 2xx deliveries so far (booking_webhook_deliveries_total, outcome delivered)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("booking_webhook_deliveries_total{") and 'outcome="delivered"' in line))

    async def wait_delivered(self, at_least: int, patience: float = 30.0) -> int:
        """Deliveries once at least `at_least` are in (each placed checkout commits an event or more, off the
        answer's path), or whatever came in within `patience` seconds."""
        deadline = time.monotonic() + patience
        count = await asyncio.to_thread(self.delivered)
        while count < at_least and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # a count in another process: polled, there is nothing here to wait on
            count = await asyncio.to_thread(self.delivered)
        return count


async def _start_shape(stack: BenchStack, api: BenchApi, hooks: Hooks, size: Size, shape: Shape, *,
                       first: bool) -> None:
    """API and workers (and the relay, for webhooks) under the shape's placements and steps (the API restarts
    only when they change), warmed up. The first shape also warms the servers themselves (fresh dev server, cold
    caches): it gets a longer warm-up."""
    env = hooks.env(shape)
    await asyncio.to_thread(stack.place, shape.placements, env)
    stack.start_workers(noop=shape.noop)
    if shape.webhooks:
        await asyncio.to_thread(hooks.start_relay)
    await wait_for_workers(stack, api, checkouts=size.warmup_checkouts * (FIRST_WARMUP_FACTOR if first else 1))


async def _measure(stack: BenchStack, api: BenchApi, client: Client, hooks: Hooks, size: Size, out: Path,
                   shape: Shape, cpu_seconds: dict[str, float], levels: tuple[int, ...] | None = None,
                   part: tuple[int, int] = (0, 1)) -> ShapeRun:
    # The relay runs on through a shape's halves: what it delivered before this one is not this one's.
    delivered_before = await asyncio.to_thread(hooks.delivered) if shape.webhooks else 0
    with _profiled(stack, out, shape, part), cpu.busy(_pids(stack), cpu_seconds, trees=("postgres",)):
        run = await shapes.measure(api, client, size, shape, levels=levels, meter=lambda: _meter(stack), part=part)
    if shape.webhooks:
        run.webhooks_delivered = await hooks.wait_delivered(delivered_before + run.placed) - delivered_before
    return run


async def _measure_shapes(stack: BenchStack, api: BenchApi, client: Client, hooks: Hooks, size: Size,
                          out: Path) -> tuple[dict[str, ShapeRun], dict[str, dict[str, float]]]:
    """Every shape at every level, in shapes.ORDER (a shape named twice in halves, pooled); returns the runs and
    each one's CPU seconds per process."""
    halves: dict[str, list[ShapeRun]] = {}
    cpu_seconds: dict[str, dict[str, float]] = {}
    previous: Shape | None = None
    for number, shape in enumerate(shapes.ORDER):
        part = (len(halves.get(shape.key, [])), shapes.ORDER.count(shape))
        log(f"{shape.label}: PARTICIPANT_PLACEMENTS all {shape.placement}, {'no-op' if shape.noop else 'real'} "
            f"workers{f', part {part[0] + 1} of {part[1]}' if part[1] > 1 else ''}")
        if shape != previous:  # the same shape again right after itself runs on as it is
            await _start_shape(stack, api, hooks, size, shape, first=number == 0)
        previous = shape
        used: dict[str, float] = {}
        halves.setdefault(shape.key, []).append(
            await _measure(stack, api, client, hooks, size, out, shape, used, part=part))
        total = cpu_seconds.setdefault(shape.key, {})
        for name, seconds in used.items():
            total[name] = total.get(name, 0.0) + seconds
    runs = {key: ShapeRun.pooled(parts[0].shape, parts) for key, parts in halves.items()}
    return runs, cpu_seconds


async def _measure_steps(stack: BenchStack, api: BenchApi, client: Client, hooks: Hooks, size: Size,
                         out: Path) -> tuple[dict[str, ShapeRun], dict[str, float]]:
    """Each step of the whole booking alone at shapes.STEP_LEVELS, the plain real checkout last; returns the runs
    and the API's and the workers' RSS once the last one's workers had warmed up (the scenarios after it run on
    the same processes)."""
    runs: dict[str, ShapeRun] = {}
    rss_at_start: dict[str, float] = {}
    for shape in shapes.STEP_RUNS:
        log(f"step alone: {shape.label}, c={', '.join(str(c) for c in shapes.STEP_LEVELS)}")
        await _start_shape(stack, api, hooks, size, shape, first=False)
        rss_at_start = {name: stack.rss_mib(name) for name in ("api", "workers")}
        runs[shape.key] = await _measure(stack, api, client, hooks, size, out, shape, {},
                                         levels=shapes.STEP_LEVELS)
    return runs, rss_at_start


def _profiled(
    stack: BenchStack, out: Path, shape: Shape, part: tuple[int, int]
) -> contextlib.AbstractContextManager[None]:
    """py-spy on the API and workers (and the relay, in a shape with webhooks) during each shape's checkouts
    (BENCH_PROFILE=1): the floors' profiles beside the real ones show what the real checkout adds."""
    name = f"checkouts-{shape.key}" + (f"-part{part[0] + 1}" if part[1] > 1 else "")
    return profiling.sampling(_pids(stack, ("api", "workers", "relay")), out, name)


async def scenarios(stack: BenchStack, size: Size, out: Path) -> tuple[list[Figure], dict[str, Any]]:
    api = BenchApi(stack.api_url, stack.operator_token)
    details: dict[str, Any] = {}
    client = await connect(stack.settings)

    hooks = Hooks(stack)
    runs, shape_cpu = await _measure_shapes(stack, api, client, hooks, size, out)
    floor_remote, floor_local = runs[shapes.FLOOR_REMOTE.key], runs[shapes.FLOOR_LOCAL.key]
    real_remote, real_local = runs[shapes.REAL_REMOTE.key], runs[shapes.REAL_LOCAL.key]
    whole = runs[shapes.WHOLE_LOCAL.key]
    figures = throughput.figures(floor_remote, floor_local, real_remote, real_local, whole)
    figures += latency.figures(floor_local, whole)
    step_runs, rss_at_start = await _measure_steps(stack, api, client, hooks, size, out)
    figures += steps.figures(step_runs)
    details["steps"] = {"level": shapes.STEP_LEVEL, "runs": {key: run.details() for key, run in step_runs.items()},
                        "table": steps.table(step_runs)}
    details["floor vs real"] = {
        "order": [shape.key for shape in shapes.ORDER],
        "shapes": {key: run.details() for key, run in runs.items()},
        "cpu_seconds": shape_cpu,
    }
    details["latency"] = {
        key: {str(c): {f"p{p}_ms": level.latency_ms(p) for p in shapes.PERCENTILES} for c, level in run.levels.items()}
        for key, run in runs.items()
    }

    log("flash sale (local placement, real workers)")
    pids = _pids(stack, ("api", "workers"))
    sale_cpu: dict[str, float] = {}
    saga_rate = real_local.at(max(real_local.levels)).per_second
    with profiling.sampling(pids, out, "flash-sale"), cpu.busy(_pids(stack), sale_cpu, trees=("postgres",)):
        sale_figures, details["flash sale"] = await flash_sale.run(
            api, client, stack.settings.checkout_id_secret, size, saga_per_second=saga_rate
        )
    details["flash sale"]["cpu_seconds"] = sale_cpu
    figures += sale_figures

    log("HTTP floor: the sold-out lane against a bare ASGI app answering the same 409")
    with profiling.sampling(_pids(stack, ("api",)), out, "http-floor"):
        floor_figures, details["http floor"] = await http_floor.run(
            api, client, stack.settings.checkout_id_secret, size)
    figures += floor_figures

    async def create_sku() -> str:
        # A connection of its own each time: uvicorn closes a keep-alive connection idle for 5 s, as one would be
        # after the ledger-only scenario.
        async with api.client() as http:
            return await api.create_item(http, 1_000_000)

    log("ledger only")
    ledger_figures, details["ledger only"] = await ledger_only.run(stack.database_url, size, api.run_id, create_sku)
    log(f"hot row: {size.hot_buyers} buyers on one sku")
    hot_figures, details["hot row"] = await hot_row.run(stack.database_url, size, api.run_id, create_sku)
    figures += ledger_figures + hot_figures

    log("webhooks: outbox and relay at the real checkouts' rate")
    webhook_figures, details["webhooks"] = await webhooks.measure(
        stack.database_url, rate=saga_rate, seconds=webhooks.SECONDS[size.name])
    figures += webhook_figures
    log("webhooks: the relay's cuts (one-round-trip statements, the aiohttp client) against their former selves")
    postgres = stack.process("postgres")
    cut_figures, details["relay round trips"] = await webhooks.measure_round_trips(
        stack.database_url, None if postgres is None else postgres.pid, rate=saga_rate,
        seconds=webhooks.SECONDS[size.name])
    figures += cut_figures
    log("record writes: the record's write against its first write locked and the former SQLAlchemy write")
    record_figures, details["record writes"] = await records.run(
        stack.database_url, None if postgres is None else postgres.pid, size)
    figures += record_figures
    log("first-task patches: one patch against two, the dev server's CPU per workflow")
    temporal = stack.process("temporal")
    patch_figures, details["first-task patches"] = await patches.run(
        client, None if temporal is None else temporal.pid, size)
    figures += patch_figures

    rss_after = {name: stack.rss_mib(name) for name in ("api", "workers")}
    memory_figures, details["memory"] = memory.figures(rss_at_start, rss_after)
    figures += memory_figures

    # Last: its two sides restart the API and the workers, which the memory's figures must not see.
    plain = shapes.STEP_RUNS[-1]

    async def use(local: bool) -> None:
        env = {**hooks.env(plain), "CANCEL_SALE_LOCAL_ACTIVITIES": "true" if local else "false"}
        await asyncio.to_thread(stack.place, plain.placements, env)
        stack.start_workers(noop=plain.noop)
        await wait_for_workers(stack, api, checkouts=size.warmup_checkouts)

    log("cancelling sales: the record as local activities, then as activity tasks, ABBA")
    cancel_figures, details["cancelling sales"] = await cancels.run(api, client, size, use)
    figures += cancel_figures
    return figures, details


def main(settings: Settings, args: argparse.Namespace) -> int:
    size = SIZES[args.size]
    out = Path(args.out)
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    began = time.perf_counter()
    log(f"size {size.name}: starting Temporal (in memory), PostgreSQL and Redis on free ports")
    with running_stack(settings) as stack:
        figures, details = asyncio.run(scenarios(stack, size, out))
    seconds = time.perf_counter() - began
    report.write(out, size.name, machine.describe(), figures, details, started_at, seconds)
    print(text_table(figures))
    print()
    print(report.shapes_text(details["floor vs real"]["shapes"]))
    print()
    print(report.cpu_text(details["floor vs real"]["shapes"]))
    print()
    print(report.phases_text(details["floor vs real"]["shapes"]))
    print()
    print(report.steps_text(details["steps"]["table"]))
    print()
    print(report.step_phases_text(details["steps"]["table"]))
    print(f"\n{len(figures)} figures in {seconds:.0f}s; written to {out}/results.json, chart.png, "
          "performance.md")
    return 0
