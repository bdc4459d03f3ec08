"""driver_transaction: the ledger's asyncpg transaction on a connection from the engine's pool."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from services.db import create_engine
from services.errors import Busy, InvalidRequest
from services.ledger.transaction import Driver, driver_transaction
from services.orders.schemas import ItemInventory
from services.orders.service import OrdersService
from tests.ledger.helpers import unique

TERMINATE = text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS integer[])) pid")
HOLD_ONE = "UPDATE orders.inventory SET held = held + 1, version = version + 1 WHERE sku = $1"


async def test_an_exception_inside_rolls_back_and_keeps_its_type(orders: OrdersService, engine: AsyncEngine) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=5))
    with pytest.raises(RuntimeError, match="not a database error"):
        async with driver_transaction(engine) as db:
            await db.execute(HOLD_ONE, sku)
            raise RuntimeError("not a database error")
    assert (await orders.availability(sku)).held == 0


async def test_a_driver_error_rolls_back_as_a_ledger_error(orders: OrdersService, engine: AsyncEngine) -> None:
    sku = unique("SKU")
    await orders.upsert(sku, ItemInventory(stock=5))
    with pytest.raises(InvalidRequest):
        async with driver_transaction(engine) as db:
            await db.execute(HOLD_ONE, sku)
            await db.execute("SELECT 1 / 0")
    assert (await orders.availability(sku)).held == 0


async def test_lost_connections_answer_busy_once_then_the_pool_reconnects(
    migrated_database_url: str, engine: AsyncEngine
) -> None:
    own = create_engine(migrated_database_url, pool_size=2)

    async def server_pids() -> set[int]:
        both_in = asyncio.Barrier(2)

        async def server_pid() -> int:
            async with driver_transaction(own) as db:
                await both_in.wait()  # both checked out at once: the pool opens two connections
                return db.get_server_pid()

        return set(await asyncio.gather(server_pid(), server_pid()))

    try:
        pids = await server_pids()
        assert len(pids) == 2
        async with engine.connect() as admin:
            await admin.execute(TERMINATE, {"pids": list(pids)})
        with pytest.raises(Busy):
            async with driver_transaction(own) as db:
                await db.execute("SELECT 1")
        # The first failure recycled the whole pool: the other dead connection is never handed out.
        assert not await server_pids() & pids
    finally:
        await own.dispose()


async def test_a_connection_the_full_pool_closes_is_closed_cleanly(
    migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    own = create_engine(migrated_database_url, pool_size=1, max_overflow=1)
    drivers: list[Driver] = []
    both_in = asyncio.Barrier(2)

    async def hold_a_connection() -> None:
        async with driver_transaction(own) as db:
            drivers.append(db)
            await both_in.wait()  # the second connection is the pool's overflow

    try:
        await asyncio.gather(hold_a_connection(), hold_a_connection())
        pool = own.pool
        assert isinstance(pool, QueuePool) and pool.checkedin() == 1
        assert sorted(db.is_closed() for db in drivers) == [False, True]
        assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    finally:
        await own.dispose()
