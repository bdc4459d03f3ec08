"""Latency: POST /v1/checkouts until its 201, p50 and p99 at c=1, 5 and 10, the real checkout (local placement)
beside the best shape's no-op floor at the same level. Target: p50 at c=1 and c=5 at most 1.3x the floor's.

Measured in the same runs as the checkouts/s (bench/scenarios/shapes.py); every shape's p50, p95 and p99 are in
results.json and the shapes table.
"""

from __future__ import annotations

from bench.results import Figure
from bench.scenarios.shapes import ShapeRun

SCENARIO = "latency"
PERCENTILES = (50, 99)
TARGET_LEVELS = (1, 5)
TARGET_RATIO = 1.3


def figures(floor_local: ShapeRun, real_local: ShapeRun) -> list[Figure]:
    result = []
    for pct in PERCENTILES:
        for concurrency in real_local.levels:
            targeted = pct == 50 and concurrency in TARGET_LEVELS
            result.append(
                Figure(SCENARIO, f"real (local) p{pct} at c={concurrency}",
                       real_local.at(concurrency).latency_ms(pct), "ms",
                       baseline=floor_local.at(concurrency).latency_ms(pct), baseline_name="best floor",
                       target_kind="ratio_at_most" if targeted else None, target=TARGET_RATIO if targeted else None)
            )
    return result
