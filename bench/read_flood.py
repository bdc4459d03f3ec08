"""Checkout latency under a flood of anonymous reads: `python -m bench.read_flood` (the numbers in docs/security.md).

The bench's stack (embedded PostgreSQL, Redis and Temporal, the workers, one API process on uvloop) and, per case, a
fresh API process; then CHECKOUTS checkouts one after the other (each a new customer, three holds), timed, while
FLOODERS connections read GET /v1/catalogue and two availability routes as fast as the API answers them:

- `quiet`: no flood, the reference;
- `flood`: RATE_LIMIT=0, nothing throttles the reads (they queue on their own pool, READ_POOL_SIZE);
- `flood-limited`: the default RATE_LIMIT, the flood from one client address (one abusive client), the checkouts
  from addresses of their own (X-Forwarded-For from a trusted proxy, as behind a load balancer).

Prints, per case, the checkouts' p50 / p95 / max answer time and statuses, and the flood's reads per second by
status. A measurement, never a test: nothing here asserts a time. Every process shares the machine's cores with the
load generator, so compare the cases of one run with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections import Counter
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from typing import Any

from bench.api_client import BenchApi, Inventory
from bench.http import HttpClient
from bench.stack import BenchStack, running_stack, wait_for_workers
from settings import Settings

CHECKOUTS = 60
FLOODERS = 32
FLOOD_ADDRESS = "198.51.100.1"


class FloodStack(BenchStack):
    """The bench stack, whose API gets this case's rate limit and trusts the loopback as its proxy."""

    rate_limit = "0"

    def env(self) -> dict[str, str]:
        return dict(super().env(), RATE_LIMIT=self.rate_limit, TRUSTED_PROXIES='["127.0.0.1"]')


async def _flood(base_url: str, paths: list[str], flooders: int, rate: float, stop: EventType) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    headers = {"X-Forwarded-For": FLOOD_ADDRESS}
    started = time.monotonic()
    # Paced (`rate` requests per second in all, spread over the connections) or, with rate 0, as fast as answered.
    gap = flooders / rate if rate > 0 else 0.0

    async def connection(offset: int) -> None:
        async with HttpClient(base_url, 60.0) as http:
            index, next_at = offset, time.monotonic() + gap * offset / flooders
            while not stop.is_set():
                if gap:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += gap
                response = await http.request("GET", paths[index % len(paths)], headers=headers)
                statuses[response.status] += 1
                index += 1

    await asyncio.gather(*(connection(i) for i in range(flooders)))
    elapsed = time.monotonic() - started
    return {"per_second": round(sum(statuses.values()) / elapsed, 1), "statuses": dict(statuses)}


def flood_process(base_url: str, paths: list[str], flooders: int, rate: float, stop: EventType,
                  results: Queue[dict[str, Any]]) -> None:
    """The flood, in a process of its own: its work must not delay the checkouts' own client."""
    results.put(asyncio.run(_flood(base_url, paths, flooders, rate, stop)))


async def timed_checkouts(api: BenchApi, inventory: Inventory, count: int) -> tuple[list[float], Counter[int]]:
    seconds: list[float] = []
    statuses: Counter[int] = Counter()
    async with HttpClient(api.base_url, 60.0) as http:
        for i in range(count):
            customer = api.unique("flood-customer")
            headers = {"Idempotency-Key": api.unique("flood-key"), "X-Forwarded-For": f"203.0.113.{i % 250 + 1}"}
            started = time.perf_counter()
            response = await http.request("POST", "/v1/checkouts", inventory.basket(customer), headers)
            seconds.append(time.perf_counter() - started)
            statuses[response.status] += 1
    return seconds, statuses


async def prepare(stack: FloodStack) -> tuple[BenchApi, Inventory]:
    api = BenchApi(stack.api_url, stack.operator_token)
    await wait_for_workers(stack, api, checkouts=3)
    async with api.client() as http:
        inventory = await api.create_inventory(http)
    return api, inventory


def run_case(stack: FloodStack, name: str, *, flooders: int, rate: float, checkouts: int) -> dict[str, Any]:
    api, inventory = asyncio.run(prepare(stack))
    paths = ["/v1/catalogue", f"/v1/items/{inventory.sku}/availability",
             f"/v1/flights/{inventory.flight_id}/availability"]
    context = multiprocessing.get_context("spawn")
    results: Queue[dict[str, Any]] = context.Queue()
    stop = context.Event()
    flood = None
    if flooders:
        # Its own start-up, then a few seconds at full rate, before the first checkout.
        flood = context.Process(target=flood_process, args=(api.base_url, paths, flooders, rate, stop, results))
        flood.start()
        time.sleep(5.0)
    started = time.perf_counter()
    seconds, statuses = asyncio.run(timed_checkouts(api, inventory, checkouts))
    elapsed = time.perf_counter() - started
    reads: dict[str, Any] = {}
    if flood is not None:
        stop.set()
        reads = results.get(timeout=120)
        flood.join()
    ordered = sorted(seconds)
    return {
        "case": name,
        "flood": {"connections": flooders, "offered_per_second": rate or "as fast as answered"},
        "checkout_ms": {"p50": round(statistics.median(ordered) * 1000, 1),
                        "p95": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
                        "max": round(ordered[-1] * 1000, 1)},
        "checkout_statuses": dict(statuses),
        "checkouts_seconds": round(elapsed, 1),
        "reads": reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--checkouts", type=int, default=CHECKOUTS)
    parser.add_argument("--flooders", type=int, default=FLOODERS, help="the flood's connections")
    parser.add_argument("--flood-rate", type=float, default=0.0,
                        help="reads per second the flood offers in all (0: as fast as they are answered)")
    parser.add_argument("--rate-limit", default="20", help="RATE_LIMIT of the flood-limited case")
    parser.add_argument("--cases", default="quiet,flood,flood-limited")
    args = parser.parse_args()
    cases = {"quiet": ("0", 0), "flood": ("0", args.flooders), "flood-limited": (args.rate_limit, args.flooders)}
    results = []
    with running_stack(Settings()) as base:
        stack = FloodStack(base.settings, persist=False, seed=False)
        stack.children, stack.database_url, stack.redis_url = base.children, base.database_url, base.redis_url
        stack.start_workers()
        for name in args.cases.split(","):
            stack.rate_limit, flooders = cases[name]
            stack.stop_api()
            stack.start_api()
            result = run_case(stack, name, flooders=flooders, rate=args.flood_rate, checkouts=args.checkouts)
            print(json.dumps(result), flush=True)
            results.append(result)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
