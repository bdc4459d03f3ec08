"""API test fixtures: a migrated PostgreSQL, and names no other test uses (the database is shared)."""

from __future__ import annotations

import uuid

import pytest

from services.migrate import upgrade


@pytest.fixture(scope="session")
async def api_database(database_url: str) -> str:
    # upgrade, not reset: other suites share this server, and unique names keep the tests apart.
    await upgrade(database_url)
    return database_url


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
