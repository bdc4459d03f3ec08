"""Views and events as the booking record would write them, without the record (it lives on another branch)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.events import Event, append, events_for
from services.ledger.transaction import driver_transaction


def view(checkout_id: str, status: str, statuses: list[str] | None = None,
         holds: dict[str, str] | None = None, customer_id: str = "cust-1") -> dict[str, Any]:
    """A checkout view (the record's JSON) with `statuses` as its history (default: PENDING then `status`)."""
    history = statuses if statuses is not None else ["PENDING", status]
    now = datetime.now(UTC).isoformat()
    return {
        "checkout_id": checkout_id, "customer_id": customer_id, "request_hash": "h", "status": status,
        "expires_at": None,
        "holds": [{"hold_key": f"{checkout_id}:{service}", "service": service, "status": hold_status, "lines": []}
                  for service, hold_status in (holds or {}).items()],
        "unavailable": [], "alternatives": [],
        "history": [{"status": s, "at": now, "reason": None} for s in history], "error": None,
    }


def new_checkout_id() -> str:
    return f"co-{uuid.uuid4().hex[:12]}"


async def record_change(engine: AsyncEngine, previous: dict[str, Any] | None, current: dict[str, Any]) -> list[Event]:
    """What the record's transaction does, minus the record: its events appended, then commit."""
    async with driver_transaction(engine) as db:
        return await append(db, events_for(previous, current))


def lifecycle(checkout_id: str) -> list[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """HELD, a part cancelled, then CONFIRMED: three changes, three events."""
    held = view(checkout_id, "HELD", holds={"flight": "ACTIVE", "hotel": "ACTIVE"})
    part = view(checkout_id, "HELD", holds={"flight": "ACTIVE", "hotel": "RELEASED"})
    confirmed = view(checkout_id, "CONFIRMED", ["PENDING", "HELD", "CONFIRMED"],
                     holds={"flight": "CONFIRMED", "hotel": "RELEASED"})
    return [(None, held), (held, part), (part, confirmed)]
