"""API test fixtures: a migrated PostgreSQL, and names no other test uses (the database is shared)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def api_database(migrated_database_url: str) -> str:
    return migrated_database_url


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
