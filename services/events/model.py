"""What an event is, and which events a change of a checkout's view makes (`events_for`).

An event tells another system that a checkout changed: `{"id", "type", "checkout_id", "customer_id", "occurred_at",
"data"}`, `data` being the checkout's view after the change (the body `GET /v1/checkouts/{id}` answers). A
`checkout.part_cancelled` event also names the `part` (the participant whose hold was released or returned); on
every other event `part` is null.

Views are taken as JSON dicts (the record's own form), so this module needs nothing from workflows/: `status`,
`customer_id`, `checkout_id`, `history: [{status, at, ...}]` and `holds: [{service, status, ...}]` are what it reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class EventType(StrEnum):
    HELD = "checkout.held"
    CONFIRMED = "checkout.confirmed"
    CANCELLED = "checkout.cancelled"
    EXPIRED = "checkout.expired"
    REJECTED = "checkout.rejected"
    FAILED = "checkout.failed"
    NEEDS_ATTENTION = "checkout.needs_attention"
    PART_CANCELLED = "checkout.part_cancelled"


# A checkout status -> the event its reaching announces. PENDING announces nothing (no answer has been given yet).
STATUS_EVENTS = {
    "HELD": EventType.HELD,
    "CONFIRMED": EventType.CONFIRMED,
    "CANCELLED": EventType.CANCELLED,
    "EXPIRED": EventType.EXPIRED,
    "REJECTED": EventType.REJECTED,
    "FAILED": EventType.FAILED,
    "NEEDS_ATTENTION": EventType.NEEDS_ATTENTION,
}
# A part is cancelled when its hold goes from one of these ...
_LIVE_PART = frozenset({"ACTIVE", "CONFIRMED"})
# ... to one of these (released while HELD, returned once CONFIRMED) ...
_CANCELLED_PART = frozenset({"RELEASED", "RETURNED"})
# ... while the checkout itself remains (when the last part goes, the checkout is CANCELLED: that event says it).
_REMAINING = frozenset({"HELD", "CONFIRMED", "NEEDS_ATTENTION"})


class Event(BaseModel):
    """One event. `id` is None until `services.events.outbox.append` has written it."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    type: EventType
    checkout_id: str
    customer_id: str
    occurred_at: datetime
    data: dict[str, Any]
    # checkout.part_cancelled only: the participant (the hold's `service`) whose part was cancelled.
    part: str | None = None
    # What makes a retried write of the same change a no-op (unique in the outbox); never sent.
    key: str = ""

    def body(self) -> dict[str, Any]:
        """The event as the feed and webhooks send it (`part` is null but on checkout.part_cancelled)."""
        return self.model_dump(mode="json", exclude={"key"})


def _at(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return datetime.now(UTC)


def events_for(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[Event]:
    """The events that going from the view `previous` (None: the checkout had no record) to `current` makes.

    One event per status reached since `previous` (each new `history` entry whose status differs from the one
    before it, in order; a status change with no history entry still makes one), then one
    `checkout.part_cancelled` per part whose hold went from ACTIVE or CONFIRMED to RELEASED or RETURNED while the
    checkout remains HELD, CONFIRMED or NEEDS_ATTENTION. Every event carries `current` as its data. The same
    change twice gives the same keys: written twice, it is stored once.
    """
    checkout_id = str(current["checkout_id"])
    customer_id = str(current.get("customer_id", ""))
    history: list[dict[str, Any]] = list(current.get("history") or [])
    before_history: list[dict[str, Any]] = list((previous or {}).get("history") or [])
    reached = [(len(before_history) + n, entry) for n, entry in enumerate(history[len(before_history):])]
    status = str(current.get("status", ""))
    previous_status = None if previous is None else str(previous.get("status", ""))
    if not reached and status != previous_status:
        reached = [(len(history), {"status": status, "at": datetime.now(UTC)})]

    def event(kind: EventType, at: datetime, key: str, part: str | None = None) -> Event:
        return Event(type=kind, checkout_id=checkout_id, customer_id=customer_id, occurred_at=at, data=current,
                     part=part, key=key)

    events: list[Event] = []
    # Where the part events go: at the first new entry that repeats the status before it (the booking record
    # writes a part's cancellation so), else after the status events. A change that the record got in one write
    # (cancelled part, then confirmed) keeps its order: part_cancelled, then confirmed.
    part_slot: tuple[int, datetime] | None = None
    before = previous_status if not before_history else str(before_history[-1].get("status"))
    for position, entry in reached:
        reached_status = str(entry.get("status"))
        kind = STATUS_EVENTS.get(reached_status) if reached_status != before else None
        if reached_status == before and part_slot is None:
            part_slot = (len(events), _at(entry.get("at")))
        before = reached_status
        if kind is not None:
            events.append(event(kind, _at(entry.get("at")), f"{checkout_id}:{position}:{kind.value}"))
    if previous is not None and status in _REMAINING:
        index, at = part_slot if part_slot is not None else (len(events), datetime.now(UTC))
        parts = {str(hold.get("service")): str(hold.get("status")) for hold in previous.get("holds") or []}
        cancelled = [
            event(EventType.PART_CANCELLED, at, f"{checkout_id}:part:{service}:{now}", part=service)
            for hold in current.get("holds") or []
            if (now := str(hold.get("status"))) in _CANCELLED_PART
            and parts.get(service := str(hold.get("service"))) in _LIVE_PART
        ]
        events[index:index] = cancelled
    return events
