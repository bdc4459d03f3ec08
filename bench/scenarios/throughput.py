"""Floor vs real: checkouts per second through the API, the real checkout against the best shape's no-op floor.

The targets compare the whole booking (the real checkout in the local placement with every deployed step on:
bench/scenarios/shapes.py, WHOLE_LOCAL) with the no-op floor of that same (best) shape at c=5 and c=10.
Informational: the plain real checkout (local) against the same floor, each placement's real checkout against the
other's, and the remote shape's floor against the local one's, which says what the shape itself costs before any
ledger runs. Beside the rates, the CPU per checkout of the whole booking and of the plain real checkout (every
process of the system summed) against the floor's: once a level fills the cores, the rate ratio follows it.
"""

from __future__ import annotations

from bench.results import Figure
from bench.scenarios.shapes import ShapeRun

SCENARIO = "floor vs real"
TARGET_LEVELS = (5, 10)
TARGET_RATIO = 0.85
BEST_FLOOR = "best floor"


def figures(floor_remote: ShapeRun, floor_local: ShapeRun, real_remote: ShapeRun, real_local: ShapeRun,
            whole: ShapeRun) -> list[Figure]:
    result = []
    for concurrency in whole.levels:
        targeted = concurrency in TARGET_LEVELS
        result.append(
            Figure(SCENARIO, f"whole booking (local) checkouts/s at c={concurrency}", whole.at(concurrency).per_second,
                   "/s", baseline=floor_local.at(concurrency).per_second, baseline_name=BEST_FLOOR,
                   target_kind="ratio_at_least" if targeted else None, target=TARGET_RATIO if targeted else None)
        )
    for concurrency in real_local.levels:
        result.append(
            Figure(SCENARIO, f"real (local) checkouts/s at c={concurrency}", real_local.at(concurrency).per_second,
                   "/s", baseline=floor_local.at(concurrency).per_second, baseline_name=BEST_FLOOR)
        )
    for concurrency in TARGET_LEVELS:
        result.append(
            Figure(SCENARIO, f"real (remote) checkouts/s at c={concurrency}", real_remote.at(concurrency).per_second,
                   "/s", baseline=real_local.at(concurrency).per_second, baseline_name="real (local)")
        )
    for concurrency in TARGET_LEVELS:
        result.append(
            Figure(SCENARIO, f"floor (remote shape) checkouts/s at c={concurrency}",
                   floor_remote.at(concurrency).per_second, "/s", baseline=floor_local.at(concurrency).per_second,
                   baseline_name=BEST_FLOOR)
        )
    for concurrency in TARGET_LEVELS:  # what bounds the rate once the cores are full (bench/cpu.py)
        for label, run in (("whole booking", whole), ("real", real_local)):
            used, floor = run.at(concurrency).cpu_ms_per_checkout(), floor_local.at(concurrency).cpu_ms_per_checkout()
            if used and floor:
                result.append(Figure(SCENARIO, f"{label} (local) CPU per checkout at c={concurrency}", used["total"],
                                     "ms", baseline=floor["total"], baseline_name=BEST_FLOOR))
    not_placed = sum(run.checkouts - run.placed for run in (floor_remote, floor_local, real_remote, real_local, whole))
    result.append(Figure(SCENARIO, "checkouts not placed (all five shapes)", not_placed, "", target_kind="equals",
                         target=0))
    return result
