"""The checkout as the workflow keeps it: status, history, holds; the `state` view and the search attributes.

Every status change goes through `CheckoutState.move_to`, so the history, the CheckoutStatus search attribute
and the UI's current details never disagree.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from services.types import Alternative, HoldResult, ServiceName, Shortage
    from workflows import search_attributes
    from workflows.models import CheckoutInput, CheckoutStatus, CheckoutView, StatusChange


class CheckoutState:
    def __init__(self, params: CheckoutInput) -> None:
        self.params = params
        self.status = CheckoutStatus.PENDING
        self.expires_at: datetime | None = None
        self.holds: dict[ServiceName, HoldResult] = {}
        self.unavailable: list[Shortage] = []
        self.alternatives: list[Alternative] = []
        self.history: list[StatusChange] = []
        self.error: str | None = None

    def start(self) -> None:
        """Record PENDING and publish who the checkout is for and what it touches, unless whoever started the
        workflow set those already (the API does: search_attributes.at_start)."""
        given = workflow.info().typed_search_attributes
        describing = search_attributes.describing(self.params.request)
        if any(given.get(update.key) != update.value for update in describing):
            workflow.upsert_search_attributes(describing)
        pending_given = given.get(search_attributes.CHECKOUT_STATUS) == CheckoutStatus.PENDING.value
        self.move_to(CheckoutStatus.PENDING, "holds requested", publish=not pending_given)

    def move_to(self, status: CheckoutStatus, reason: str | None = None, *, publish: bool = True) -> None:
        self.status = status
        self.history.append(StatusChange(status=status, at=workflow.now(), reason=reason))
        if publish:
            workflow.upsert_search_attributes([search_attributes.CHECKOUT_STATUS.value_set(status.value)])
        details = f"**{status.value}**" + (f": {reason}" if reason else "")
        if self.expires_at is not None and status == CheckoutStatus.HELD:
            details += f" (expires {self.expires_at.isoformat()})"
        workflow.set_current_details(details)

    def view(self) -> CheckoutView:
        return CheckoutView(
            checkout_id=self.params.checkout_id,
            customer_id=self.params.request.customer_id,
            request_hash=self.params.request_hash,
            status=self.status,
            expires_at=self.expires_at,
            holds=list(self.holds.values()),
            unavailable=self.unavailable,
            alternatives=self.alternatives,
            history=self.history,
            error=self.error,
        )
