"""The relay through a PostgreSQL crash (a server of this module's own, crashed and started again): one warning per
endpoint when the outage starts, one line when it ends, no traceback, and nothing lost."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.embedded import start_postgres
from services.db import create_engine
from services.migrate import reset
from tests.events.helpers import lifecycle, new_checkout_id, record_change
from tests.events.webhooks import Receiver, config, eventually, in_order_per_checkout, relay_task
from tests.faults.test_database_down import Postgres

pytestmark = pytest.mark.slow
LOGGER = "services.events.relay"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    server = Postgres(start_postgres(tmp_path_factory.mktemp("relay-postgres") / "data", delete_on_stop=True))
    try:
        yield server
    finally:
        server.start()
        server.server.stop()


@pytest.fixture(scope="module")
async def own_engine(postgres: Postgres) -> AsyncIterator[AsyncEngine]:
    await reset(postgres.url)
    engine = create_engine(postgres.url)
    yield engine
    await engine.dispose()


async def test_a_database_crash_pauses_the_relay_and_loses_nothing(
    postgres: Postgres, own_engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver(tmp_path).start()
    checkout_ids = [new_checkout_id() for _ in range(3)]
    steps = [lifecycle(cid) for cid in checkout_ids]
    ids: list[int] = []
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with relay_task(own_engine, config(receiver.url)):
                for changes in steps:
                    ids += [e.id for e in await record_change(own_engine, *changes[0]) if e.id is not None]
                await eventually(lambda: {e["id"] for e in receiver.delivered()} >= set(ids), "first events")
                postgres.crash()
                await eventually(lambda: any("paused, the database is unavailable" in r.getMessage()
                                             for r in caplog.records if r.name == LOGGER), "the relay paused")
                postgres.start()
                # The writer's pooled connections died with the server (the record's writer would retry its
                # activity); the relay's own engine must find its way back by itself.
                await own_engine.dispose()
                for step in (1, 2):
                    for changes in steps:
                        ids += [e.id for e in await record_change(own_engine, *changes[step]) if e.id is not None]
                await eventually(lambda: {e["id"] for e in receiver.delivered()} >= set(ids), "everything delivered")
        records = [r for r in caplog.records if r.name == LOGGER]
        assert not [r.getMessage() for r in records if r.levelno >= logging.ERROR]
        assert any("resumed, the database is available again" in r.getMessage() for r in records)
        assert len([r for r in records if "paused" in r.getMessage()]) == 1
        firsts = in_order_per_checkout(receiver.delivered(set(checkout_ids)))
        assert sorted(i for got in firsts.values() for i in got) == sorted(ids)
    finally:
        receiver.stop()
