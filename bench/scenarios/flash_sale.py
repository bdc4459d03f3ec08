"""Flash sale: many buyers, few units of one sku. Exactly `seats` held, everyone else answered 409.

Then late buyers arrive after the sale has sold out: their 409s should come from the Redis fast path without a
workflow. Their rate is compared with the saga rate measured in the same run (the real checkout's checkouts per
second in the local placement at the highest concurrency level).
Whether a 409 started a workflow is asked of Temporal itself: describe the checkout id the API derived.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.idempotency import checkout_id
from bench.api_client import Answer, BenchApi, run_bounded
from bench.results import Figure
from bench.sizes import Size
from bench.stats import per_second

SCENARIO = "flash sale"
FAST_PATH_TARGET = 40.0
DESCRIBE_CONCURRENCY = 20


@dataclass
class Wave:
    answers: list[Answer]
    ids: list[str]
    seconds: float

    def count(self, status: int) -> int:
        return sum(1 for a in self.answers if a.status == status)

    def ids_with(self, status: int) -> list[str]:
        return [cid for cid, a in zip(self.ids, self.answers, strict=True) if a.status == status]


async def _wave(api: BenchApi, secret: str, sku: str, buyers: int, concurrency: int, who: str) -> Wave:
    ids: list[str] = [""] * buyers
    async with api.client() as http:

        async def buy(index: int) -> Answer:
            customer, key = api.unique(who), api.unique("key")
            ids[index] = checkout_id(secret, customer, key)
            return await api.checkout(http, {"customer_id": customer, "items": [{"sku": sku, "quantity": 1}]}, key)

        started = time.perf_counter()
        answers = await run_bounded(buyers, concurrency, buy)
        return Wave(answers, ids, time.perf_counter() - started)


async def workflows_started(client: Client, ids: list[str]) -> int:
    """How many of these checkout ids exist as workflows."""
    limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def exists(workflow_id: str) -> bool:
        async with limit:
            try:
                await client.get_workflow_handle(workflow_id).describe()
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
            return True

    return sum(await asyncio.gather(*(exists(i) for i in ids)))


async def run(api: BenchApi, client: Client, secret: str, size: Size, saga_per_second: float) -> tuple[
    list[Figure], dict[str, Any]
]:
    async with api.client() as http:
        sku = await api.create_item(http, size.seats)
    sale = await _wave(api, secret, sku, size.buyers, size.buyer_concurrency, "buyer")
    late = await _wave(api, secret, sku, size.late_buyers, size.buyer_concurrency, "late")
    async with api.client() as http:
        ledger = await api.item_availability(http, sku)
        audit = await api.audit(http)
    sale_409_workflows = await workflows_started(client, sale.ids_with(409))
    late_409_workflows = await workflows_started(client, late.ids_with(409))
    sold_out_rate = per_second(late.count(409), late.seconds)
    rejected = size.buyers - size.seats
    figures = [
        Figure(SCENARIO, f"held (201) of {size.buyers} buyers", sale.count(201), "", target_kind="equals",
               target=size.seats),
        Figure(SCENARIO, "held in the ledger", ledger["held"], "", target_kind="equals", target=size.seats),
        Figure(SCENARIO, "answered 409", sale.count(409), "", target_kind="equals", target=rejected),
        Figure(SCENARIO, "other answers", len(sale.answers) - sale.count(201) - sale.count(409), "",
               target_kind="equals", target=0),
        Figure(SCENARIO, "409s that started a workflow", sale_409_workflows, "", baseline=sale.count(409),
               baseline_name="all 409s"),
        Figure(SCENARIO, f"total time ({size.buyers} buyers, c={size.buyer_concurrency})", sale.seconds, "s"),
        Figure(SCENARIO, "sold-out answers/s (late buyers)", sold_out_rate, "/s", baseline=saga_per_second,
               baseline_name="saga rate", target_kind="ratio_at_least", target=FAST_PATH_TARGET),
        Figure(SCENARIO, "late 409s that started a workflow", late_409_workflows, "", baseline=late.count(409),
               baseline_name="all late 409s"),
    ]
    details = {
        "buyers": size.buyers,
        "seats": size.seats,
        "concurrency": size.buyer_concurrency,
        "held": sale.count(201),
        "rejected_409": sale.count(409),
        "other": len(sale.answers) - sale.count(201) - sale.count(409),
        "other_statuses": sorted({a.status for a in sale.answers if a.status not in (201, 409)}),
        "rejected_409_that_started_a_workflow": sale_409_workflows,
        "total_seconds": sale.seconds,
        "ledger": ledger,
        "audit_ok": audit["ok"],
        "late_buyers": size.late_buyers,
        "late_409": late.count(409),
        "late_409_that_started_a_workflow": late_409_workflows,
        "late_seconds": late.seconds,
        "sold_out_per_second": sold_out_rate,
        "saga_per_second": saga_per_second,
    }
    figures.append(Figure(SCENARIO, "ledger audit violations", 0 if audit["ok"] else len(audit["violations"]), "",
                          target_kind="equals", target=0))
    return figures, details
