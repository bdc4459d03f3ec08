"""The steps' baseline: each step against the two plain runs either side of its own run, pooled."""

from __future__ import annotations

from bench.scenarios import steps
from bench.scenarios.shapes import (
    STEP_LEVEL,
    STEP_LEVELS,
    STEP_PLAIN,
    STEP_PLAINS,
    STEP_RUNS,
    STEP_VARIANTS,
    STEPS,
    Level,
    Shape,
    ShapeRun,
)


def _run(number: int, shape: Shape) -> ShapeRun:
    # Each run's seconds say which run it is (1, 2, 4, 8, ...: any pooled sum names its parts).
    return ShapeRun(shape, {c: Level(c, 1, float(2**number), [], {}) for c in STEP_LEVELS}, {})


def test_the_runs_alternate_plain_and_step_and_end_plain() -> None:
    assert STEP_RUNS[::2] == STEP_PLAINS
    assert STEP_RUNS[1::2] == STEP_VARIANTS
    assert STEP_RUNS[-1] == STEP_PLAINS[-1]


def test_each_step_is_held_against_the_plain_runs_either_side_of_it() -> None:
    runs = {shape.key: _run(number, shape) for number, shape in enumerate(STEP_RUNS)}
    seconds = {shape.key: float(2**number) for number, shape in enumerate(STEP_RUNS)}
    for (step, with_it, without), (named, on, off) in zip(STEPS, steps._pairs(runs), strict=True):
        assert named == step
        if STEP_PLAIN not in (with_it, without):  # a cut between two variants: each side is its own run
            assert (on.at(STEP_LEVEL).seconds, off.at(STEP_LEVEL).seconds) == (
                seconds[with_it.key], seconds[without.key])
            continue
        variant = without if with_it == STEP_PLAIN else with_it
        plain, measured = (on, off) if with_it == STEP_PLAIN else (off, on)
        position = STEP_RUNS.index(variant)
        before, after = STEP_RUNS[position - 1], STEP_RUNS[position + 1]
        for level in STEP_LEVELS:  # each level pooled on its own
            assert plain.at(level).seconds == seconds[before.key] + seconds[after.key], (step, level)
            assert plain.at(level).checkouts == 2
        assert measured.at(STEP_LEVEL).seconds == seconds[variant.key]
