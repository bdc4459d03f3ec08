"""Cancelling sales: confirmed checkouts cancelled whole (POST /v1/checkouts/{id}/cancel, no body), at c=5.

Each round places its checkouts (the shapes' three-part basket: a flight seat, a hotel room for two nights, an
item), confirms them all (POST /v1/checkouts/{id}/confirm), then cancels them all. The baseline is the confirms of
the same checkouts, at the same concurrency, in the same round: the opposite move of the same holds on the same
rows (a confirm is an Update on the running saga, held -> sold; a sale's cancel starts or joins its CancelSale
workflow, sold -> returned to stock). Afterwards every unit must be back in stock.
"""

from __future__ import annotations

import time
from typing import Any

from bench.api_client import Answer, BenchApi, run_bounded
from bench.http import HttpClient
from bench.results import Figure
from bench.sizes import Size
from bench.stats import per_second, percentile

SCENARIO = "cancelling sales"
CONCURRENCY = 5
ROUNDS = 2
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


async def run(api: BenchApi, size: Size) -> tuple[list[Figure], dict[str, Any]]:
    per_round = max(CONCURRENCY, size.cancels // ROUNDS)
    answers: dict[str, list[Answer]] = {"place": [], "confirm": [], "cancel": []}
    seconds = {"confirm": 0.0, "cancel": 0.0}
    async with api.client() as http:
        inventory = await api.create_inventory(http, CAPACITY)
        for _ in range(ROUNDS):

            async def place(_index: int) -> Answer:
                return await api.checkout(http, inventory.basket(api.unique("cancel")), api.unique("cancel-key"))

            placed = await run_bounded(per_round, CONCURRENCY, place)
            answers["place"] += placed
            ids = [a.body["checkout_id"] for a in placed if a.status == 201]
            for action in ("confirm", "cancel"):
                got, took = await _on_each(http, ids, action)
                answers[action] += got
                seconds[action] += took
        item = await api.item_availability(http, inventory.sku)
        audit = await api.audit(http)
    cancelled = sum(1 for a in answers["cancel"] if a.status == 200 and a.body.get("status") == "CANCELLED")
    confirmed = sum(1 for a in answers["confirm"] if a.status == 200 and a.body.get("status") == "CONFIRMED")
    rates = {action: per_second(len(answers[action]), seconds[action]) for action in seconds}
    latency = {action: {p: percentile([a.seconds * 1000 for a in answers[action]], p) for p in (50, 99)}
               for action in seconds}
    baseline = "confirms of the same checkouts"
    figures = [
        Figure(SCENARIO, f"sales cancelled/s (c={CONCURRENCY})", rates["cancel"], "/s", baseline=rates["confirm"],
               baseline_name=baseline),
        Figure(SCENARIO, "cancel p50", latency["cancel"][50], "ms", baseline=latency["confirm"][50],
               baseline_name=baseline),
        Figure(SCENARIO, "cancel p99", latency["cancel"][99], "ms", baseline=latency["confirm"][99],
               baseline_name=baseline),
        Figure(SCENARIO, f"sales cancelled (200 CANCELLED) of {len(answers['place'])} placed", float(cancelled), "",
               target_kind="equals", target=len(answers["place"])),
        Figure(SCENARIO, "item units still held or sold after the cancels", float(item["held"] + item["sold"]), "",
               target_kind="equals", target=0),
    ]
    details = {
        "concurrency": CONCURRENCY,
        "placed": sum(1 for a in answers["place"] if a.status == 201),
        "placed_statuses": sorted({a.status for a in answers["place"]}),
        "confirmed": confirmed,
        "cancelled": cancelled,
        "cancel_statuses": sorted({a.status for a in answers["cancel"]}),
        "seconds": seconds,
        "per_second": rates,
        "latency_ms": {action: {f"p{p}": v for p, v in latency[action].items()} for action in seconds},
        "item_after": item,
        "audit_ok": audit["ok"],
    }
    return figures, details
