"""What each step of the whole booking costs alone: the real checkout (local placement) at one level with exactly
one step changed, against the plain real checkout measured in the same run right before and right after that
step's run (the two pooled: their checkouts over their summed time, their answer times together).

The steps: the payload codec (on in the plain checkout: its run without it is the baseline), the rate limiter (at
a rate no bench caller reaches: every request counted, none refused), webhooks (the outbox's events delivered by
the relay to a local receiver) and the wallet's payment (the API's quote authorized beside the holds, on priced
inventory); and the cut of that payment: beside the holds against after them (both sides paid, and measured at
c=1 as well, with each side's phases, since its gain is in one checkout's own time).
Each is a ratio, checkouts/s, p50 and CPU per checkout (every process of the system summed: bench/cpu.py), with
the step over without it; on a machine whose cores the run fills, the CPU is the steadiest of the three.
Informational, no target: the whole booking (bench/scenarios/shapes.py, WHOLE_LOCAL) is the one held to the
targets.
"""

from __future__ import annotations

from typing import Any

from bench.results import Figure
from bench.scenarios.shapes import (
    PHASE_LEVEL,
    PHASES,
    STEP_LEVEL,
    STEP_PLAIN,
    STEPS,
    Level,
    Shape,
    ShapeRun,
    plains_beside,
)

SCENARIO = "steps"


def _pooled(runs: dict[str, ShapeRun], plains: tuple[Shape, ...]) -> ShapeRun:
    """The plain runs `plains` as one: every checkout over the time of all."""
    return ShapeRun(STEP_PLAIN, {STEP_LEVEL: Level.pooled([runs[shape.key].at(STEP_LEVEL) for shape in plains])}, {})


def _pairs(runs: dict[str, ShapeRun]) -> list[tuple[str, ShapeRun, ShapeRun]]:
    """(step, with it, without it), the plain side being the two plain runs either side of the step's run."""
    pairs = []
    for step, with_it, without in STEPS:
        variant = without if with_it == STEP_PLAIN else with_it
        plain = _pooled(runs, plains_beside(variant))
        pairs.append((step, plain if with_it == STEP_PLAIN else runs[with_it.key],
                      plain if without == STEP_PLAIN else runs[without.key]))
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
        if PHASE_LEVEL in with_it.levels and PHASE_LEVEL in without.levels:
            one_on, one_off = with_it.at(PHASE_LEVEL), without.at(PHASE_LEVEL)
            result.append(Figure(SCENARIO, f"{step}: p50 at c={PHASE_LEVEL}", one_on.latency_ms(50), "ms",
                                 baseline=one_off.latency_ms(50), baseline_name="without it"))
            phases_on, phases_off = one_on.phases_p50_ms(), one_off.phases_p50_ms()
            result += [Figure(SCENARIO, f"{step}: at c={PHASE_LEVEL}: {name}, p50", phases_on[name], "ms",
                              baseline=phases_off[name], baseline_name="without it")
                       for name in PHASES if name in phases_on and name in phases_off]
    return result


def table(runs: dict[str, ShapeRun]) -> list[dict[str, Any]]:
    """One row per step: with and without it, checkouts/s and p50, and their ratios (results.json, the report)."""
    rows = []
    for step, with_it, without in _pairs(runs):
        on, off = with_it.at(STEP_LEVEL), without.at(STEP_LEVEL)
        rows.append({"step": step, "with": _label(with_it), "without": _label(without),
                     "per_second": [on.per_second, off.per_second], "p50_ms": [on.latency_ms(50), off.latency_ms(50)],
                     "placed": [on.placed, off.placed], "checkouts": [on.checkouts, off.checkouts],
                     "cpu_ms_per_checkout": [on.cpu_ms_per_checkout(), off.cpu_ms_per_checkout()]})
    return rows


def _cpu_total(level: Level) -> float:
    return level.cpu_ms_per_checkout().get("total", float("nan"))


def _label(run: ShapeRun) -> str:
    return "real, local (the plain runs either side, pooled)" if run.shape == STEP_PLAIN else run.shape.label
