"""The started-checkout record (services/started_checkouts.py) on real PostgreSQL: concurrent lookups share
reads and each gets its own id's answer; a record made before a lookup is always seen; a failed read fails its
askers only, with a LedgerError."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.embedded import free_port
from services import started_checkouts
from services.db import create_engine
from services.errors import LedgerError
from services.started_checkouts import StartedCheckouts

AT_ONCE = 60


def unique() -> str:
    return f"co-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the connections the record's reads take from the pool."""
    taken: list[int] = []
    real = started_checkouts.pooled_driver

    @contextlib.asynccontextmanager
    async def counted(engine: AsyncEngine) -> AsyncIterator[object]:
        taken.append(1)
        async with real(engine) as db:
            yield db

    monkeypatch.setattr(started_checkouts, "pooled_driver", counted)
    return taken


async def test_concurrent_lookups_share_reads_and_answer_each_id(engine: AsyncEngine, reads: list[int]) -> None:
    started = StartedCheckouts(engine)
    recorded = [unique() for _ in range(AT_ONCE // 2)]
    for checkout_id in recorded:
        await started.record(checkout_id)
    reads.clear()
    others = [unique() for _ in range(AT_ONCE // 2)]
    asked = [cid for pair in zip(recorded, others, strict=True) for cid in pair] + recorded[:5]

    answers = await asyncio.gather(*(started.has(cid) for cid in asked))

    assert answers == [cid in recorded for cid in asked]
    assert 1 <= len(reads) <= 2  # the first asker's read, then one for everyone who asked meanwhile


async def test_a_record_made_before_a_lookup_is_seen_even_while_a_read_is_on_its_way(engine: AsyncEngine) -> None:
    started = StartedCheckouts(engine)
    late = unique()
    first = asyncio.ensure_future(started.has(unique()))  # a read now on its way, started before the record
    await asyncio.sleep(0)
    await started.record(late)

    assert await started.has(late)
    assert await first is False


async def test_a_cancelled_asker_leaves_the_others_their_answers(engine: AsyncEngine) -> None:
    started = StartedCheckouts(engine)
    recorded = unique()
    await started.record(recorded)
    gone = asyncio.ensure_future(started.has(recorded))
    staying = asyncio.ensure_future(started.has(recorded))
    await asyncio.sleep(0)
    gone.cancel()

    assert await staying is True
    assert gone.cancelled()


async def test_a_failed_read_fails_its_askers_with_a_ledger_error_and_the_next_read_is_tried_anew(
    engine: AsyncEngine,
) -> None:
    nowhere = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", pool_size=2)
    started = StartedCheckouts(nowhere)
    try:
        outcomes = await asyncio.gather(*(started.has(unique()) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(outcome, LedgerError) for outcome in outcomes), outcomes
        started.engine = engine  # the database is back
        recorded = unique()
        await StartedCheckouts(engine).record(recorded)
        assert await started.has(recorded)
    finally:
        await nowhere.dispose()
