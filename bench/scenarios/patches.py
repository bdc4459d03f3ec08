"""The first workflow task's patches: what one patch costs the server, measured in the same run as the checkouts.

A saga started now asks one patch in its first task (workflows/checkout_saga.py `PATCHES_AT_START_QUOTED`), where a
paid checkout quoted by the API asked two before (`patches-asked-at-start`, then `payment-beside-holds`). Each patch
the SDK records is a marker and an upsert of the `TemporalChangeVersion` search attribute, a visibility write in the
server. The saga's code has no switch back to two patches (its histories must replay), so the cut is measured on its
mechanism: two workflows that do nothing else, one asking one patch and the other two, on the bench's own dev server
(the one the checkouts use) and a worker in the bench process, in rounds alternating which goes first. Per arm: the
dev server's CPU per workflow and the events in one workflow's history.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench import cpu
from bench.results import Figure
from bench.sizes import Size

SCENARIO = "first-task patches"
ROUNDS = 6
CONCURRENCY = 10
WARMUP = 20
WORKFLOWS = {"tiny": 24, "small": 900, "full": 2400}


@workflow.defn(name="BenchOnePatch", sandboxed=False)
class OnePatch:
    @workflow.run
    async def run(self) -> None:
        workflow.patched("bench-first")


@workflow.defn(name="BenchTwoPatches", sandboxed=False)
class TwoPatches:
    @workflow.run
    async def run(self) -> None:
        workflow.patched("bench-first")
        workflow.patched("bench-second")


ARMS: dict[str, type] = {"one": OnePatch, "two": TwoPatches}


async def _batch(client: Client, task_queue: str, arm: str, count: int, failures: list[str]) -> list[str]:
    """`count` workflows of the arm, CONCURRENCY at a time; their ids."""
    gate = asyncio.Semaphore(CONCURRENCY)
    ids = [f"bench-patch-{arm}-{uuid.uuid4().hex[:12]}" for _ in range(count)]

    async def one(workflow_id: str) -> None:
        async with gate:
            try:
                await client.execute_workflow(ARMS[arm].run, id=workflow_id, task_queue=task_queue)  # type: ignore[attr-defined]
            except Exception as error:
                failures.append(f"{type(error).__name__}: {error}"[:200])

    await asyncio.gather(*(one(workflow_id) for workflow_id in ids))
    return ids


async def _events(client: Client, workflow_id: str) -> int:
    return len([event async for event in client.get_workflow_handle(workflow_id).fetch_history_events()])


async def run(client: Client, temporal_pid: int | None, size: Size) -> tuple[list[Figure], dict[str, Any]]:
    task_queue = f"bench-patches-{uuid.uuid4().hex[:8]}"
    per_round = max(1, WORKFLOWS[size.name] // ROUNDS)
    used: dict[str, float] = {arm: 0.0 for arm in ARMS}
    ran: dict[str, int] = {arm: 0 for arm in ARMS}
    events: dict[str, int] = {}
    failures: list[str] = []
    async with Worker(client, task_queue=task_queue, workflows=list(ARMS.values()),
                      workflow_runner=UnsandboxedWorkflowRunner()):
        for arm in ARMS:
            ids = await _batch(client, task_queue, arm, WARMUP, failures)
            events[arm] = await _events(client, ids[-1])
        for round_number in range(ROUNDS):
            for arm in list(ARMS) if round_number % 2 == 0 else list(ARMS)[::-1]:
                meter = cpu.Meter({"temporal": temporal_pid} if temporal_pid is not None else {})
                meter.start()
                await _batch(client, task_queue, arm, per_round, failures)
                used[arm] += meter.stop().get("temporal", 0.0)
                ran[arm] += per_round
    cpu_ms = {arm: 1000 * used[arm] / ran[arm] for arm in ARMS}
    two = "two patches in the first task (a quoted paid checkout's before the cut)"
    figures = [
        Figure(SCENARIO, "cut: dev server CPU per workflow, one patch in its first task", cpu_ms["one"], "ms",
               baseline=cpu_ms["two"], baseline_name=two),
        Figure(SCENARIO, "cut: events in a workflow's history, one patch", float(events["one"]), "events",
               baseline=float(events["two"]), baseline_name=two),
        Figure(SCENARIO, "workflows that failed (both arms)", float(len(failures)), "", target_kind="equals",
               target=0),
    ]
    details = {"rounds": ROUNDS, "concurrency": CONCURRENCY, "workflows": ran, "events": events,
               "temporal_cpu_ms_per_workflow": cpu_ms, "failures": len(failures), "first_failures": failures[:5]}
    return figures, details
