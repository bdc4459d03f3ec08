"""Helpers for any test that touches the ledger (import them from tests.ledger.helpers)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from services.registry import AnyService


async def assert_ledger_clean(services: Mapping[str, AnyService]) -> None:
    """Fail with every violation when any service's invariant is broken: held = sum of ACTIVE lines,
    sold = sum of CONFIRMED lines, 0 <= held + sold <= capacity. Pass the dict from build_services."""
    violations = [v for service in services.values() for v in await service.audit()]
    assert not violations, "ledger invariant broken:\n" + "\n".join(
        f"  {v.service} {v.resource}: {v.problem}" for v in violations
    )


def unique(prefix: str) -> str:
    """An id no other test uses (tests share one database and may run in any order)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def later(seconds: int = 600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
