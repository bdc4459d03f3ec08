"""How much work each scenario does at each `--size`. tiny proves it works (CI); full is the issue's numbers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    # floor vs real: checkouts per run, and how many are in flight at once
    throughput_checkouts: int
    throughput_concurrency: int
    # latency: requests per concurrency level
    latency_requests: dict[int, int]
    # flash sale
    buyers: int
    seats: int
    buyer_concurrency: int
    late_buyers: int  # after the sale has sold out: every answer should be a cheap 409
    # ledger only
    ledger_holds: int
    ledger_lanes: int
    warmup_checkouts: int


SIZES = {
    "tiny": Size("tiny", 20, 5, {1: 5, 5: 15, 20: 20}, 60, 10, 20, 40, 300, 4, 3),
    "small": Size("small", 150, 10, {1: 30, 5: 100, 20: 200}, 300, 10, 50, 200, 3000, 4, 10),
    "full": Size("full", 400, 10, {1: 60, 5: 250, 20: 500}, 1000, 10, 50, 500, 10000, 4, 20),
}
