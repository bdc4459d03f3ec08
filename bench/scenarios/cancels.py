"""Cancelling sales: confirmed checkouts cancelled whole (POST /v1/checkouts/{id}/cancel, no body), at c=5.

Each round places its checkouts (the shapes' three-part basket: a flight seat, a hotel room for two nights, an
item), confirms them all (POST /v1/checkouts/{id}/confirm), then cancels them all. The baseline is the confirms of
the same checkouts, at the same concurrency, in the same round: the opposite move of the same holds on the same
rows (a confirm is an Update on the running saga, held -> sold; a sale's cancel starts or joins its CancelSale
workflow, sold -> returned to stock). Afterwards every unit must be back in stock.

The cut measured in the same run: CancelSale's record read, window check and record write as local activities
(today's, CANCEL_SALE_LOCAL_ACTIVITIES=true) against activity tasks of their own (the former workflow path, still
run by histories from before its patch). The rounds alternate the two, ABBA (SIDES), the API restarted with the
setting between them by `use`; each side's cancels are set against the confirms of its own rounds, and the two
sides' cancels against each other. The targets' figures are today's side.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.api_client import Answer, BenchApi, Inventory, run_bounded
from bench.http import HttpClient
from bench.results import Figure
from bench.sizes import Size
from bench.stats import per_second, percentile
from workflows.cancel_sale import workflow_id

SCENARIO = "cancelling sales"
CONCURRENCY = 5
# The rounds' sides in their order (local records, activity tasks): ABBA, so a machine that slows through the
# scenario weighs on both alike. The last is today's, the one the scenarios after this one run with.
SIDES = ("local", "tasks", "tasks", "local")
LOCAL, TASKS = "local", "tasks"
CAPACITY = 1_000_000


async def _post(http: HttpClient, path: str) -> Answer:
    started = time.perf_counter()
    response = await http.request("POST", path)
    seconds = time.perf_counter() - started
    return Answer(response.status, seconds, response.json() if response.body else {})


async def _on_each(http: HttpClient, ids: list[str], action: str) -> tuple[list[Answer], float]:
    """POST /v1/checkouts/{id}/{action} for every id, CONCURRENCY at once; the answers and the seconds taken."""

    async def act(index: int) -> Answer:
        return await _post(http, f"/v1/checkouts/{ids[index]}/{action}")

    started = time.perf_counter()
    answers = await run_bounded(len(ids), CONCURRENCY, act)
    return answers, time.perf_counter() - started


async def _place(api: BenchApi, http: HttpClient, inventory: Inventory, count: int) -> list[Answer]:
    """`count` checkouts of the three-part basket on `inventory`, CONCURRENCY at once."""

    async def place(_index: int) -> Answer:
        return await api.checkout(http, inventory.basket(api.unique("cancel")), api.unique("cancel-key"))

    return await run_bounded(count, CONCURRENCY, place)


async def run(
    api: BenchApi, client: Client, size: Size, use: Callable[[bool], Awaitable[None]]
) -> tuple[list[Figure], dict[str, Any]]:
    """`use(local)`: the API (and workers) restarted with CANCEL_SALE_LOCAL_ACTIVITIES set so, warmed up."""
    per_round = max(CONCURRENCY, size.cancels // len(SIDES))
    answers: dict[str, dict[str, list[Answer]]] = {
        side: {"place": [], "confirm": [], "cancel": []} for side in (LOCAL, TASKS)}
    seconds = {side: {"confirm": 0.0, "cancel": 0.0} for side in (LOCAL, TASKS)}
    current: str | None = LOCAL  # as the scenarios before left the API
    item: dict[str, int] = {}
    record_tasks: dict[str, int] = {}
    for side in SIDES:
        if side != current:
            await use(side == LOCAL)
            current = side
        async with api.client() as http:
            inventory = await api.create_inventory(http, CAPACITY)
            placed = await _place(api, http, inventory, per_round)
            answers[side]["place"] += placed
            ids = [a.body["checkout_id"] for a in placed if a.status == 201]
            for action in ("confirm", "cancel"):
                got, took = await _on_each(http, ids, action)
                answers[side][action] += got
                seconds[side][action] += took
            after = await api.item_availability(http, inventory.sku)
            item = {key: item.get(key, 0) + after[key] for key in ("held", "sold")}
            if ids:
                record_tasks[side] = await _record_tasks(client, ids[-1])
    async with api.client() as http:
        audit = await api.audit(http)
    sides = {side: _side(answers[side], seconds[side]) | {"record_tasks": record_tasks.get(side)}
             for side in (LOCAL, TASKS)}
    today, former = sides[LOCAL], sides[TASKS]
    tried = sum(len(answers[side]["place"]) for side in sides)
    cancelled = sum(side["cancelled"] for side in sides.values())
    baseline = "confirms of the same checkouts"
    figures = [
        Figure(SCENARIO, f"sales cancelled/s (c={CONCURRENCY})", today["per_second"]["cancel"], "/s",
               baseline=today["per_second"]["confirm"], baseline_name=baseline),
        Figure(SCENARIO, "cancel p50", today["latency_ms"]["cancel"]["p50"], "ms",
               baseline=today["latency_ms"]["confirm"]["p50"], baseline_name=baseline),
        Figure(SCENARIO, "cancel p99", today["latency_ms"]["cancel"]["p99"], "ms",
               baseline=today["latency_ms"]["confirm"]["p99"], baseline_name=baseline),
        Figure(SCENARIO, f"cut: sales cancelled/s, record as local activities (c={CONCURRENCY})",
               today["per_second"]["cancel"], "/s", baseline=former["per_second"]["cancel"],
               baseline_name="activity tasks of their own"),
        Figure(SCENARIO, "cut: cancel p50, record as local activities", today["latency_ms"]["cancel"]["p50"], "ms",
               baseline=former["latency_ms"]["cancel"]["p50"], baseline_name="activity tasks of their own"),
        Figure(SCENARIO, "activity tasks of their own: sales cancelled/s", former["per_second"]["cancel"], "/s",
               baseline=former["per_second"]["confirm"], baseline_name=baseline),
        Figure(SCENARIO, f"sales cancelled (200 CANCELLED) of {tried} placed", float(cancelled), "",
               target_kind="equals", target=tried),
        Figure(SCENARIO, "item units still held or sold after the cancels", float(item["held"] + item["sold"]), "",
               target_kind="equals", target=0),
    ]
    details = {
        "concurrency": CONCURRENCY,
        "sides": list(SIDES),
        **today,  # today's side at the top, as before the cut was measured
        "activity_tasks": former,
        "item_after": item,
        "audit_ok": audit["ok"],
    }
    return figures, details


def _side(answers: dict[str, list[Answer]], seconds: dict[str, float]) -> dict[str, Any]:
    """One side's rounds: what was placed, confirmed and cancelled, the rates and the answer times."""
    rates = {action: per_second(len(answers[action]), seconds[action]) for action in seconds}
    latency = {action: {f"p{p}": percentile([a.seconds * 1000 for a in answers[action]], p) for p in (50, 99)}
               for action in seconds}
    return {
        "placed": sum(1 for a in answers["place"] if a.status == 201),
        "placed_statuses": sorted({a.status for a in answers["place"]}),
        "confirmed": sum(1 for a in answers["confirm"] if a.status == 200 and a.body.get("status") == "CONFIRMED"),
        "cancelled": sum(1 for a in answers["cancel"] if a.status == 200 and a.body.get("status") == "CANCELLED"),
        "cancel_statuses": sorted({a.status for a in answers["cancel"]}),
        "seconds": seconds,
        "per_second": rates,
        "latency_ms": latency,
    }


async def _record_tasks(client: Client, checkout_id: str) -> int:
    """How many of the record's activities (checkout.*) one whole cancellation scheduled as activity tasks: what
    tells the two sides apart (none with local records)."""
    history = await client.get_workflow_handle(workflow_id(checkout_id, [])).fetch_history()
    return sum(
        1 for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name.startswith("checkout.")
    )
