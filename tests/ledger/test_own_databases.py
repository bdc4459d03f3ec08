"""A participant whose ledger lives in a database of its own (PARTICIPANT_DATABASE_URLS): `migrate`, `seed` and
`audit` (runtime/maintenance.py) reach it there, as the workers and the API do, on real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from runtime import maintenance

OWN = "cars"  # any registered participant would do: the test only needs one kept apart


def _url_of(database_url: str, name: str) -> str:
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
async def two_databases(database_url: str) -> AsyncIterator[tuple[str, str]]:
    """Two fresh databases on the session's server: the default one and the participant's own."""
    names = [f"own_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = await asyncpg.connect(database_url)
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield _url_of(database_url, names[0]), _url_of(database_url, names[1])
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _count(url: str, table: str) -> int:
    db = await asyncpg.connect(url)
    try:
        return int(await db.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await db.close()


async def test_migrate_seed_and_audit_reach_a_participant_in_its_own_database(two_databases: tuple[str, str]) -> None:
    default, own = two_databases
    own_urls = {OWN: own}

    await maintenance.migrate(default, own_urls)
    await maintenance.seed(default, own_urls)

    assert await _count(own, f"{OWN}.inventory") > 0  # seeded where the participant lives
    assert await _count(default, f"{OWN}.inventory") == 0  # migrated there too, but never used
    assert await _count(default, "orders.inventory") > 0
    assert await _count(own, "orders.inventory") == 0
    assert await maintenance.audit(default, own_urls) == []

    # A counter out of step in the participant's own database is found there, and only there.
    db = await asyncpg.connect(own)
    try:
        await db.execute(f"UPDATE {OWN}.inventory SET held = held + 1 WHERE id = (SELECT min(id) FROM {OWN}.inventory)")
    finally:
        await db.close()
    violations = await maintenance.audit(default, own_urls)
    assert [v.service for v in violations] == [OWN], violations
    assert await maintenance.audit(default) == []  # without the mapping the audit would look in the wrong place
