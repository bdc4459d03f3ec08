"""The whole booking against its floor in halves, floor-whole-whole-floor, each shape's halves pooled."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import MarkerRecordedEventAttributes

from activities.models import activity_name
from bench.api_client import Answer
from bench.scenarios.shapes import (
    FLOOR_LOCAL,
    LOCAL_ACTIVITY_MARKER,
    ORDER,
    PHASES,
    SHAPES,
    WHOLE_LOCAL,
    Level,
    ShapeRun,
    first_stage_completion,
    phases_of,
    share,
)
from services.registry import NAMES, participant


def test_the_whole_booking_and_its_floor_run_in_halves_around_each_other() -> None:
    assert set(ORDER) == set(SHAPES)
    halves = [shape for shape in ORDER if shape in (FLOOR_LOCAL, WHOLE_LOCAL)]
    assert halves == [FLOOR_LOCAL, WHOLE_LOCAL, WHOLE_LOCAL, FLOOR_LOCAL]
    assert all(ORDER.count(shape) == 1 for shape in SHAPES if shape not in (FLOOR_LOCAL, WHOLE_LOCAL))


def test_the_shares_of_a_level_add_up_to_it() -> None:
    for checkouts in (0, 1, 3, 10, 151, 800):
        for parts in (1, 2, 3):
            shares = [share(checkouts, (n, parts)) for n in range(parts)]
            assert sum(shares) == checkouts and max(shares) - min(shares) <= 1


def test_a_shapes_halves_pool_into_one_run() -> None:
    first = ShapeRun(WHOLE_LOCAL, {1: Level(1, 2, 1.0, [], {"api": 0.5}), 5: Level(5, 4, 2.0, [], {"api": 1.0})},
                     {"local_activities": 4}, wallets_authorized=6, webhooks_delivered=6)
    second = ShapeRun(WHOLE_LOCAL, {1: Level(1, 3, 1.5, [], {"api": 0.25, "relay": 0.1}),
                                    5: Level(5, 5, 2.5, [], {"api": 2.0})},
                      {"local_activities": 5}, wallets_authorized=8, webhooks_delivered=7)
    pooled = ShapeRun.pooled(WHOLE_LOCAL, [first, second])
    assert (pooled.at(1).checkouts, pooled.at(1).seconds, pooled.at(1).cpu_seconds) == (
        5, 2.5, {"api": 0.75, "relay": 0.1})
    assert (pooled.at(5).checkouts, pooled.at(5).seconds, pooled.at(5).cpu_seconds) == (9, 4.5, {"api": 3.0})
    assert (pooled.wallets_authorized, pooled.webhooks_delivered) == (14, 13)
    assert pooled.history == {"local_activities": 5}


def test_a_checkouts_phases_run_from_the_request_to_its_answer() -> None:
    """Sent at 100.000 s, answered 60 ms later; the server started the workflow at +15 ms, the first task ran from
    +18 to +40 ms, its last first-stage hold completing at +31 ms, and the update completed at +41 ms."""
    answer = Answer(201, 0.060, {"checkout_id": "co-1"}, sent_at=100.0)
    first = {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: 100.015,
             EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: 100.018, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: 100.040,
             EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: 100.041}
    phases = phases_of(answer, first, 100.031)
    assert list(phases) == list(PHASES)
    assert [round(ms, 3) for ms in phases.values()] == [15.0, 3.0, 13.0, 9.0, 1.0, 19.0]
    assert round(sum(phases.values()), 3) == 60.0
    # No hold in the first task (remote holds are activity tasks): the first stage takes none of its time.
    assert [round(ms, 3) for ms in phases_of(answer, first, None).values()] == [15.0, 3.0, 0.0, 22.0, 1.0, 19.0]


def _marker(
    activity_type: str, seconds: int, nanos: int, name: str = LOCAL_ACTIVITY_MARKER
) -> MarkerRecordedEventAttributes:
    data = {"seq": 1, "attempt": 1, "activity_id": "1", "activity_type": activity_type,
            "complete_time": {"seconds": seconds, "nanos": nanos}, "backoff": None}
    return MarkerRecordedEventAttributes(marker_name=name, details={
        "data": Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(data).encode())])})


def test_the_first_stage_ends_at_its_last_hold_s_completion_from_the_marker() -> None:
    first_stage = [name for name in NAMES if participant(name).stage == 0]
    later = [name for name in NAMES if participant(name).stage > 0]
    assert first_stage and later  # the wallet's stage comes after the inventory's
    held = first_stage_completion(_marker(activity_name(first_stage[0], "hold"), 100, 250_000_000))
    assert held == 100.25
    assert first_stage_completion(_marker(activity_name(later[0], "hold"), 100, 0)) is None
    assert first_stage_completion(_marker(activity_name(first_stage[0], "confirm"), 100, 0)) is None
    assert first_stage_completion(_marker("x", 1, 0, name="core_patch")) is None


def test_a_shapes_halves_pool_their_phase_samples() -> None:
    first = Level(1, 2, 1.0, [], {}, {"first task: the rest": [20.0, 22.0]})
    second = Level(1, 1, 0.5, [], {}, {"first task: the rest": [30.0]})
    pooled = Level.pooled([first, second])
    assert pooled.phases == {"first task: the rest": [20.0, 22.0, 30.0]}
    assert pooled.details()["phases_p50_ms"] == {"first task: the rest": 22.0}
    assert pooled.details()["phases_sampled"] == 3
    assert "phases_p50_ms" not in Level(5, 1, 1.0, []).details()
