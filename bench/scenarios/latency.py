"""Latency: POST /v1/checkouts until its 201 at concurrency 1, 5 and 20; p50, p95, p99 beside the no-op floor's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.api_client import Answer, BenchApi, run_bounded
from bench.results import Figure
from bench.sizes import Size
from bench.stats import percentile

SCENARIO = "latency"
PERCENTILES = (50, 95, 99)
TARGET_CONCURRENCY = 5
TARGET_P50_MS = 200.0


@dataclass
class LatencyRun:
    label: str
    # concurrency -> milliseconds of every 201
    samples_ms: dict[int, list[float]]
    failures: dict[int, int]

    def at(self, concurrency: int, pct: int) -> float:
        return percentile(self.samples_ms[concurrency], pct)

    def details(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "levels": {
                str(c): {"requests": len(s) + self.failures[c], "failures": self.failures[c],
                         **{f"p{p}_ms": self.at(c, p) for p in PERCENTILES}}
                for c, s in self.samples_ms.items()
            },
        }


async def measure(api: BenchApi, size: Size, label: str) -> LatencyRun:
    samples: dict[int, list[float]] = {}
    failures: dict[int, int] = {}
    for concurrency, requests in size.latency_requests.items():
        async with api.client() as http:
            inventory = await api.create_inventory(http)

            async def one(_index: int, inventory: Any = inventory, http: Any = http) -> Answer:
                return await api.checkout(http, inventory.basket(api.unique("cust")), api.unique("key"))

            answers = await run_bounded(requests, concurrency, one)
        samples[concurrency] = [a.seconds * 1000 for a in answers if a.status == 201]
        failures[concurrency] = sum(1 for a in answers if a.status != 201)
    return LatencyRun(label, samples, failures)


def figures(floor: LatencyRun, real: LatencyRun) -> list[Figure]:
    result = []
    for concurrency in real.samples_ms:
        for pct in PERCENTILES:
            targeted = concurrency == TARGET_CONCURRENCY and pct == 50
            result.append(
                Figure(SCENARIO, f"p{pct} at c={concurrency}", real.at(concurrency, pct), "ms",
                       baseline=floor.at(concurrency, pct), baseline_name="no-op floor",
                       target_kind="at_most" if targeted else None, target=TARGET_P50_MS if targeted else None)
            )
    return result
