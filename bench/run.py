"""`booking-saga bench`: start the servers, run every scenario, print a table and write .bench/.

Order, all on the same servers: the remote placement (API and workers started with every participant `remote`),
its no-op floor then its real checkout; then the API restarted in the local placement, its no-op floor (the best
shape's floor) then its real checkout, each at every concurrency level (bench/scenarios/shapes.py). The flash sale
and the ledger alone run once, in the local placement with the real workers, and the processes' memory last. Every
figure is reported beside a baseline from this same run; targets are checked and shown, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import cpu, machine, profiling, report
from bench.api_client import BenchApi
from bench.results import Figure, text_table
from bench.scenarios import flash_sale, latency, ledger_only, memory, shapes, throughput
from bench.scenarios.shapes import Shape, ShapeRun
from bench.sizes import SIZES, Size
from bench.stack import BenchStack, running_stack, wait_for_workers
from booking_saga.settings import Settings
from booking_saga.temporal import connect

# The first shape runs on servers that have just started (and workers compiling their byte-code cache): its
# warm-up is this many times longer, so the cold start is not charged to the first shape's figures.
FIRST_WARMUP_FACTOR = 3


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _pids(stack: BenchStack, names: tuple[str, ...] = ("api", "workers", "temporal", "redis")) -> dict[str, int]:
    return {name: process.pid for name in names if (process := stack.process(name)) is not None}


async def _start_shape(stack: BenchStack, api: BenchApi, size: Size, shape: Shape, *, first: bool) -> None:
    """API and workers under the shape's placements (the API restarts only when they change), warmed up. The
    first shape also warms the servers themselves (fresh dev server, cold caches): it gets a longer warm-up."""
    await asyncio.to_thread(stack.place, shape.placements)
    stack.start_workers(noop=shape.noop)
    await wait_for_workers(stack, api, checkouts=size.warmup_checkouts * (FIRST_WARMUP_FACTOR if first else 1))


async def _measure_shapes(stack: BenchStack, api: BenchApi, client: Client, size: Size, out: Path) -> tuple[
    dict[str, ShapeRun], dict[str, dict[str, float]], dict[str, float]
]:
    """Every shape at every level; returns the runs, each one's CPU seconds per process, and the API's and the
    workers' RSS once the last shape's (the real checkout in the local placement) workers had warmed up."""
    runs: dict[str, ShapeRun] = {}
    cpu_seconds: dict[str, dict[str, float]] = {}
    rss_at_start: dict[str, float] = {}
    for number, shape in enumerate(shapes.SHAPES):
        log(f"{shape.label}: PARTICIPANT_PLACEMENTS all {shape.placement}, {'no-op' if shape.noop else 'real'} "
            "workers")
        await _start_shape(stack, api, size, shape, first=number == 0)
        rss_at_start = {name: stack.rss_mib(name) for name in ("api", "workers")}
        cpu_seconds[shape.key] = {}
        with _profiled(stack, out, shape), cpu.busy(_pids(stack), cpu_seconds[shape.key]):
            runs[shape.key] = await shapes.measure(api, client, size, shape)
    return runs, cpu_seconds, rss_at_start


def _profiled(stack: BenchStack, out: Path, shape: Shape) -> contextlib.AbstractContextManager[None]:
    """py-spy on the API and workers during each shape's checkouts (BENCH_PROFILE=1): the floors' profiles beside
    the real ones show what the real checkout adds."""
    return profiling.sampling(_pids(stack, ("api", "workers")), out, f"checkouts-{shape.key}")


async def scenarios(stack: BenchStack, size: Size, out: Path) -> tuple[list[Figure], dict[str, Any]]:
    api = BenchApi(stack.api_url, stack.operator_token)
    details: dict[str, Any] = {}
    client = await connect(stack.settings)

    runs, shape_cpu, rss_at_start = await _measure_shapes(stack, api, client, size, out)
    floor_remote, floor_local = runs[shapes.FLOOR_REMOTE.key], runs[shapes.FLOOR_LOCAL.key]
    real_remote, real_local = runs[shapes.REAL_REMOTE.key], runs[shapes.REAL_LOCAL.key]
    figures = throughput.figures(floor_remote, floor_local, real_remote, real_local)
    figures += latency.figures(floor_local, real_local)
    details["floor vs real"] = {
        "order": [shape.key for shape in shapes.SHAPES],
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
    with profiling.sampling(pids, out, "flash-sale"), cpu.busy(_pids(stack), sale_cpu):
        sale_figures, details["flash sale"] = await flash_sale.run(
            api, client, stack.settings.checkout_id_secret, size, saga_per_second=saga_rate
        )
    details["flash sale"]["cpu_seconds"] = sale_cpu
    figures += sale_figures

    log("ledger only")
    async with api.client() as http:

        async def create_sku() -> str:
            return await api.create_item(http, 1_000_000)

        ledger_figures, details["ledger only"] = await ledger_only.run(
            stack.database_url, size, api.run_id, create_sku
        )
    figures += ledger_figures

    rss_after = {name: stack.rss_mib(name) for name in ("api", "workers")}
    memory_figures, details["memory"] = memory.figures(rss_at_start, rss_after)
    figures += memory_figures
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
    print(f"\n{len(figures)} figures in {seconds:.0f}s; written to {out}/results.json, chart.png, "
          "README-performance.md")
    return 0
