"""API test fixtures: a migrated PostgreSQL, and names no other test uses (the database is shared)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="session")
def api_database(migrated_database_url: str) -> str:
    return migrated_database_url


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample of the API's /metrics (0 when absent): tests compare it before and after what they do, never
    rely on what earlier tests left counted."""
    for family in text_string_to_metric_families((await client.get("/metrics")).text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
