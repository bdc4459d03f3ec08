"""Floor vs real: checkouts per second through the API, with no-op activities and then with the real ones.

Same CheckoutSaga, same servers, same API; only the worker process differs (`worker --noop`). Every checkout
is a three-service basket on inventory created for this run, so the holds never run short.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.api_client import Answer, BenchApi, run_bounded
from bench.results import Figure
from bench.sizes import Size
from bench.stats import per_second, percentile

SCENARIO = "floor vs real"


@dataclass
class ThroughputRun:
    label: str
    checkouts: int
    concurrency: int
    seconds: float
    answers: list[Answer]

    @property
    def placed(self) -> int:
        return sum(1 for a in self.answers if a.status == 201)

    @property
    def per_second(self) -> float:
        return per_second(self.placed, self.seconds)

    def details(self) -> dict[str, Any]:
        latencies = [a.seconds for a in self.answers if a.status == 201]
        return {
            "label": self.label,
            "checkouts": self.checkouts,
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "placed": self.placed,
            "not_placed": {str(a.status): a.body.get("detail", "") for a in self.answers if a.status != 201},
            "per_second": self.per_second,
            "p50_ms": percentile(latencies, 50) * 1000,
        }


async def measure(api: BenchApi, size: Size, label: str) -> ThroughputRun:
    async with api.client() as http:
        inventory = await api.create_inventory(http)

        async def one(_index: int) -> Answer:
            return await api.checkout(http, inventory.basket(api.unique("cust")), api.unique("key"))

        started = time.perf_counter()
        answers = await run_bounded(size.throughput_checkouts, size.throughput_concurrency, one)
        seconds = time.perf_counter() - started
    return ThroughputRun(label, size.throughput_checkouts, size.throughput_concurrency, seconds, answers)


def figures(floor: ThroughputRun, real: ThroughputRun) -> list[Figure]:
    return [
        Figure(SCENARIO, f"real checkouts/s (c={real.concurrency})", real.per_second, "/s",
               baseline=floor.per_second, baseline_name="no-op floor", target_kind="ratio_at_least", target=0.8),
        Figure(SCENARIO, "real checkouts not placed", real.checkouts - real.placed, "",
               target_kind="equals", target=0),
    ]
