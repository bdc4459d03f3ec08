"""One-line descriptions for operators: the workflow's static summary, activity summaries, resources touched.

Each participant describes its own request (Participant.describe, .resources); this module only joins them.
"""

from __future__ import annotations

from services.registry import participant
from services.types import Frozen
from workflows.models import CheckoutRequest


def resources(request: CheckoutRequest) -> list[str]:
    """The CheckoutResources search attribute: 'flight:BA117/economy', 'hotel:H1/deluxe', 'orders:SKU-1'."""
    return [f"{p.name}:{resource}" for p, part in request.parts() for resource in p.resources(part)]


def checkout_summary(request: CheckoutRequest) -> str:
    """The workflow's static summary (pass it as `static_summary=` when starting CheckoutSaga)."""
    return f"checkout for {request.customer_id}: " + "; ".join(
        f"{p.name} {p.describe(part)}" for p, part in request.parts()
    )


def activity_summary(operation: str, service: str, request: Frozen) -> str:
    return f"{operation} {service} {participant(service).describe(request)}"
