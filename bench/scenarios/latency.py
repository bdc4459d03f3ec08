"""Latency: POST /v1/checkouts until its 201, p50 and p99 at c=1, 5 and 10, the whole booking (the real checkout in
the local placement with every deployed step on) beside the best shape's no-op floor at the same level. Targets:
p50 at c=1 and c=5 at most 1.25x the floor's, p99 at c=10 at most 1.3x.

Measured in the same runs as the checkouts/s (bench/scenarios/shapes.py); every shape's p50, p95 and p99 are in
results.json and the shapes table. Beside them, where the time of one checkout in flight goes (shapes.PHASES, read
from the checkouts' histories), the whole booking's against the floor's: no target, the profile of a missed one.
"""

from __future__ import annotations

from bench.results import Figure
from bench.scenarios.shapes import PHASE_LEVEL, PHASES, ShapeRun

SCENARIO = "latency"
PERCENTILES = (50, 99)
# (percentile, concurrency): the most the real checkout may take, as a ratio to the best floor's.
TARGETS = {(50, 1): 1.25, (50, 5): 1.25, (99, 10): 1.3}


def figures(floor_local: ShapeRun, whole: ShapeRun) -> list[Figure]:
    result = []
    for pct in PERCENTILES:
        for concurrency in whole.levels:
            target = TARGETS.get((pct, concurrency))
            result.append(
                Figure(SCENARIO, f"whole booking (local) p{pct} at c={concurrency}",
                       whole.at(concurrency).latency_ms(pct), "ms",
                       baseline=floor_local.at(concurrency).latency_ms(pct), baseline_name="best floor",
                       target_kind="ratio_at_most" if target is not None else None, target=target)
            )
    whole_phases, floor_phases = whole.at(PHASE_LEVEL).phases_p50_ms(), floor_local.at(PHASE_LEVEL).phases_p50_ms()
    if whole_phases and floor_phases:
        for name in PHASES:
            result.append(Figure(SCENARIO, f"whole booking (local) at c={PHASE_LEVEL}: {name}, p50",
                                 whole_phases[name], "ms", baseline=floor_phases[name], baseline_name="best floor"))
    return result
