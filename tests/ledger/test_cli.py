"""`booking-saga migrate`, `seed` and `audit` as OS processes against the session's database: exit codes, the
audit's JSON report, and a deliberately corrupted row named by the audit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.orders.participant import DEMO_ITEMS
from services.orders.schemas import ItemInventory, ItemLine, ItemsRequest
from services.orders.service import OrdersService
from services.registry import AnyService
from tests.ledger.helpers import assert_ledger_clean, later, unique


async def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`booking-saga <args>` with only this DATABASE_URL (no REDIS_URL), never with a traceback on stderr.
    Run in a thread so that the session's event loop is not blocked meanwhile."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = database_url
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "booking_saga.cli", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


async def test_migrate_seed_and_audit_exit_zero(
    migrated_database_url: str, orders: OrdersService, services: dict[str, AnyService]
) -> None:
    migrated = await cli(migrated_database_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    # Twice: seeding is upserts only, so `booking-saga seed` may run again on a seeded database.
    for _ in range(2):
        seeded = await cli(migrated_database_url, "seed")
        assert seeded.returncode == 0, seeded.stderr
    for sku, stock in DEMO_ITEMS.items():
        assert (await orders.availability(sku)).capacity == stock
    audited = await cli(migrated_database_url, "audit")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert report(audited) == {"ok": True, "violations": []}
    await assert_ledger_clean(services)


async def test_audit_names_a_corrupted_row_and_exits_one(
    migrated_database_url: str, engine: AsyncEngine, orders: OrdersService,
    services: dict[str, AnyService],
) -> None:
    sku = unique("SKU-audit")
    await orders.upsert(sku, ItemInventory(stock=5))
    # A real ACTIVE hold on the row: the audit must tell the one counter too many from the held units it backs.
    hold_key = unique("wf") + ":orders"
    await orders.hold(hold_key, ItemsRequest(items=[ItemLine(sku=sku, quantity=2)]), later())
    corrupt = text("UPDATE orders.inventory SET held = held + :delta WHERE sku = :sku")
    async with engine.begin() as conn:
        assert (await conn.execute(corrupt, {"delta": 1, "sku": sku})).rowcount == 1
    try:
        audited = await cli(migrated_database_url, "audit")
        assert audited.returncode == 1, audited.stdout + audited.stderr
        found = report(audited)
        assert found["ok"] is False
        assert [(v["service"], v["resource"]) for v in found["violations"]] == [("orders", sku)]
    finally:
        async with engine.begin() as conn:
            await conn.execute(corrupt, {"delta": -1, "sku": sku})
    audited = await cli(migrated_database_url, "audit")
    assert audited.returncode == 0, audited.stdout
    assert report(audited)["ok"] is True
    await orders.release(hold_key)
    await assert_ledger_clean(services)
