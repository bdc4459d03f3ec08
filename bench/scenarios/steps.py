"""What each step of the whole booking costs alone: the real checkout (local placement) with exactly one step
changed, at c=1 and at c=5, against the plain real checkout measured in the same run right before and right after that
step's run (the two pooled: their checkouts over their summed time, their answer times together).

The steps: the payload codec (on in the plain checkout: its run without it is the baseline), the rate limiter (at
a rate no bench caller reaches: every request counted, none refused), webhooks (the outbox's events delivered by
the relay to a local receiver) and the wallet's payment (the API's quote authorized beside the holds, on priced
inventory); and two cuts: the payment beside the holds against after them (both sides paid), and the relay's
rounds batched against a round per commit (both with webhooks); and every step together (the rate limiter,
webhooks and the wallet at once, the whole booking's steps) against the same plain runs, which says whether the
steps cost more together than their ratios one at a time. Every run is measured at c=1 (one checkout's own time,
with its phases) and at c=5 (STEP_LEVELS).
Each is a ratio, the step over without it: at c=5 checkouts/s, p50 and CPU per checkout (every process of the
system summed: bench/cpu.py; on a machine whose cores the run fills, the CPU is the steadiest of the three), at c=1
the p50, with each phase's in the table.
Informational, no target: the whole booking (bench/scenarios/shapes.py, WHOLE_LOCAL) is the one held to the
targets.
"""

from __future__ import annotations

from typing import Any

from bench.results import Figure
from bench.scenarios.shapes import (
    PHASE_LEVEL,
    STEP_LEVEL,
    STEP_LEVELS,
    STEP_PLAIN,
    STEPS,
    Level,
    Shape,
    ShapeRun,
    plains_beside,
)

SCENARIO = "steps"


def _pooled(runs: dict[str, ShapeRun], plains: tuple[Shape, ...]) -> ShapeRun:
    """The plain runs `plains` as one, level by level: every checkout over the time of all."""
    return ShapeRun(STEP_PLAIN, {c: Level.pooled([runs[shape.key].at(c) for shape in plains]) for c in STEP_LEVELS}, {})


def _side(runs: dict[str, ShapeRun], shape: Shape, variant: Shape) -> ShapeRun:
    """One side of a step: its own run, or for STEP_PLAIN the two plain runs either side of `variant`'s, pooled."""
    return _pooled(runs, plains_beside(variant)) if shape == STEP_PLAIN else runs[shape.key]


def _pairs(runs: dict[str, ShapeRun]) -> list[tuple[str, ShapeRun, ShapeRun]]:
    """(step, with it, without it): a plain side pooled around the step's run; a cut between two variants (the
    payment beside the holds) is each variant's own run, and pools nothing."""
    pairs = []
    for step, with_it, without in STEPS:
        variant = without if with_it == STEP_PLAIN else with_it
        pairs.append((step, _side(runs, with_it, variant), _side(runs, without, variant)))
    return pairs


def figures(runs: dict[str, ShapeRun]) -> list[Figure]:
    result = []
    for step, with_it, without in _pairs(runs):
        on, off = with_it.at(STEP_LEVEL), without.at(STEP_LEVEL)
        result += [
            Figure(SCENARIO, f"{step}: checkouts/s at c={STEP_LEVEL}", on.per_second, "/s",
                   baseline=off.per_second, baseline_name="without it"),
            Figure(SCENARIO, f"{step}: p50 at c={STEP_LEVEL}", on.latency_ms(50), "ms",
                   baseline=off.latency_ms(50), baseline_name="without it"),
        ]
        if on.cpu_seconds and off.cpu_seconds:
            result.append(Figure(SCENARIO, f"{step}: CPU per checkout at c={STEP_LEVEL}", _cpu_total(on), "ms",
                                 baseline=_cpu_total(off), baseline_name="without it"))
        one_on, one_off = with_it.at(PHASE_LEVEL), without.at(PHASE_LEVEL)
        result.append(Figure(SCENARIO, f"{step}: p50 at c={PHASE_LEVEL}", one_on.latency_ms(50), "ms",
                             baseline=one_off.latency_ms(50), baseline_name="without it"))
    return result


def table(runs: dict[str, ShapeRun]) -> list[dict[str, Any]]:
    """One row per step: with and without it, checkouts/s, p50 and CPU at STEP_LEVEL, and the p50 of the answer and
    of each phase at PHASE_LEVEL (results.json, the report)."""
    rows = []
    for step, with_it, without in _pairs(runs):
        on, off = with_it.at(STEP_LEVEL), without.at(STEP_LEVEL)
        one_on, one_off = with_it.at(PHASE_LEVEL), without.at(PHASE_LEVEL)
        rows.append({"step": step, "with": _label(with_it), "without": _label(without),
                     "per_second": [on.per_second, off.per_second], "p50_ms": [on.latency_ms(50), off.latency_ms(50)],
                     "placed": [on.placed, off.placed], "checkouts": [on.checkouts, off.checkouts],
                     "cpu_ms_per_checkout": [on.cpu_ms_per_checkout(), off.cpu_ms_per_checkout()],
                     "at_phase_level": {"p50_ms": [one_on.latency_ms(50), one_off.latency_ms(50)],
                                        "phases_p50_ms": [one_on.phases_p50_ms(), one_off.phases_p50_ms()]}})
    return rows


def _cpu_total(level: Level) -> float:
    return level.cpu_ms_per_checkout().get("total", float("nan"))


def _label(run: ShapeRun) -> str:
    return "real, local (the plain runs either side, pooled)" if run.shape == STEP_PLAIN else run.shape.label
