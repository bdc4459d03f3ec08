"""`booking-saga bench`: start the servers, run every scenario, print a table and write .bench/.

Order: no-op workers first (the floor: throughput and latency), then the real workers on the same servers and
API (throughput, latency, flash sale), the ledger alone, and the processes' memory last. Every figure is reported
beside a baseline from this same run; targets are checked and shown, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cpu, machine, profiling, report
from bench.api_client import BenchApi
from bench.results import Figure, text_table
from bench.scenarios import flash_sale, latency, ledger_only, memory, throughput
from bench.sizes import SIZES, Size
from bench.stack import BenchStack, running_stack, wait_for_workers
from booking_saga.settings import Settings
from booking_saga.temporal import connect


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _pids(stack: BenchStack, names: tuple[str, ...] = ("api", "workers", "temporal", "redis")) -> dict[str, int]:
    return {name: process.pid for name in names if (process := stack.process(name)) is not None}


async def _restart_workers(stack: BenchStack, api: BenchApi, size: Size, *, noop: bool) -> None:
    await asyncio.to_thread(stack.stop_workers)
    stack.start_workers(noop=noop)
    await wait_for_workers(stack, api, checkouts=size.warmup_checkouts)


async def scenarios(stack: BenchStack, size: Size, out: Path) -> tuple[list[Figure], dict[str, Any]]:
    api = BenchApi(stack.api_url, stack.operator_token)
    details: dict[str, Any] = {}

    log("no-op workers: the floor")
    await _restart_workers(stack, api, size, noop=True)
    floor_cpu: dict[str, float] = {}
    with cpu.busy(_pids(stack), floor_cpu):
        floor = await throughput.measure(api, size, "no-op")
    floor_latency = await latency.measure(api, size, "no-op")

    log("real workers")
    await _restart_workers(stack, api, size, noop=False)
    rss_at_start = {name: stack.rss_mib(name) for name in ("api", "workers")}
    pids = _pids(stack, ("api", "workers"))
    real_cpu: dict[str, float] = {}
    with profiling.sampling(pids, out, "checkouts"), cpu.busy(_pids(stack), real_cpu):
        real = await throughput.measure(api, size, "real")
    real_latency = await latency.measure(api, size, "real")
    figures = throughput.figures(floor, real) + latency.figures(floor_latency, real_latency)
    details["floor vs real"] = {
        "floor": floor.details(),
        "real": real.details(),
        "cpu_seconds": {"floor": floor_cpu, "real": real_cpu},
    }
    details["latency"] = {"floor": floor_latency.details(), "real": real_latency.details()}

    log("flash sale")
    client = await connect(stack.settings)
    sale_cpu: dict[str, float] = {}
    with profiling.sampling(pids, out, "flash-sale"), cpu.busy(_pids(stack), sale_cpu):
        sale_figures, details["flash sale"] = await flash_sale.run(
            api, client, stack.settings.checkout_id_secret, size, saga_per_second=real.per_second
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
    log(f"size {size.name}: starting Temporal (in memory), PostgreSQL, Redis and the API on free ports")
    with running_stack(settings) as stack:
        figures, details = asyncio.run(scenarios(stack, size, out))
    seconds = time.perf_counter() - began
    report.write(out, size.name, machine.describe(), figures, details, started_at, seconds)
    print(text_table(figures))
    print(f"\n{len(figures)} figures in {seconds:.0f}s; written to {out}/results.json, chart.png, "
          "README-performance.md")
    return 0
