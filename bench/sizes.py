"""How much work each scenario does at each `--size`. tiny proves it works (CI); full is the issue's numbers."""

from __future__ import annotations

from dataclasses import dataclass

# The concurrency levels every shape is measured at (checkouts/s, p50, p99 at each); the targets are read at some.
LEVELS = (1, 5, 10)


@dataclass(frozen=True)
class Size:
    name: str
    # shapes (floors and real, in both placements): checkouts per concurrency level, closed loop
    levels: dict[int, int]
    # flash sale
    buyers: int
    seats: int
    buyer_concurrency: int
    late_buyers: int  # after the sale has sold out: every answer should be a cheap 409
    # ledger only
    ledger_holds: int
    ledger_lanes: int
    # checkouts placed after each (re)start of the workers, before anything is measured
    warmup_checkouts: int
    # hot row: holds on one sku by `hot_buyers` buyers at once, in all (each side, over its rounds)
    hot_buyers: int = 50
    hot_holds: int = 2000
    # HTTP floor: sold-out POST /v1/checkouts, in all (each side, over its rounds), at `buyer_concurrency`
    floor_requests: int = 2000
    # cancelling sales: checkouts placed, confirmed, then cancelled whole
    cancels: int = 60


SIZES = {
    "tiny": Size("tiny", {1: 3, 5: 10, 10: 10}, 60, 10, 20, 40, 300, 4, 3, hot_holds=200, floor_requests=200,
                 cancels=10),
    "small": Size("small", {1: 40, 5: 150, 10: 200}, 300, 10, 50, 1000, 3000, 4, 10, hot_holds=4000,
                  floor_requests=4000, cancels=60),
    "full": Size("full", {1: 150, 5: 500, 10: 800}, 1000, 10, 50, 2000, 10000, 4, 20, hot_holds=16000,
                 floor_requests=10000, cancels=200),
}

for _size in SIZES.values():
    if tuple(_size.levels) != LEVELS:
        raise RuntimeError(f"size {_size.name} must measure every level of {LEVELS}")
