"""The checkout as the workflow keeps it: status, history, holds; the `state` view and the search attributes.

Every status change goes through `CheckoutState.move_to`, so the history, the CheckoutStatus search attribute
and the UI's current details never disagree. It also counts each status change in the worker's metrics
(`booking_checkout_status_total{status, previous}`, through the SDK's replay-safe workflow metric meter: nothing is
counted while a history replays), which is how expiries, confirms and NEEDS_ATTENTION reach Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from services.money import MixedCurrencies, total_of
    from services.types import Alternative, HoldResult, Money, Shortage
    from workflows import search_attributes
    from workflows.models import CheckoutInput, CheckoutStatus, CheckoutView, StatusChange

# Patch id (workflow.patched): the search attributes a starter set are kept, the CustomerId pseudonym included.
PSEUDONYM_PATCH = "keep-customer-pseudonym"
# Exported by the checkout worker's SDK Prometheus endpoint (WORKER_METRICS_PORT) as booking_checkout_status_total.
STATUS_METRIC = "booking_checkout_status"


class CheckoutState:
    def __init__(self, params: CheckoutInput) -> None:
        self.params = params
        self.status = CheckoutStatus.PENDING
        self.expires_at: datetime | None = None
        self.holds: dict[str, HoldResult] = {}
        self.unavailable: list[Shortage] = []
        self.alternatives: list[Alternative] = []
        self.history: list[StatusChange] = []
        self.error: str | None = None

    def start(self, patched: Callable[[str], bool]) -> None:
        """Record PENDING and publish who the checkout is for and what it touches, unless whoever started the
        workflow set those already (the API does: search_attributes.at_start). `patched`: the saga's way of asking
        a patch (CheckoutSaga._patched)."""
        given = workflow.info().typed_search_attributes
        describing = search_attributes.describing(self.params.request)
        # Formerly: publish unless the starter set exactly describing()'s values. Now: publish unless the starter
        # set CustomerId at all, since the API's is a pseudonym the plain id must not overwrite. The two rules
        # differ only for such a pseudonym; there, a history from a worker of the former rule (a rolling deploy,
        # the API updated first) replays its upsert.
        former = any(given.get(update.key) != update.value for update in describing)
        current = given.get(search_attributes.CUSTOMER_ID) is None
        publish = current if former != current and patched(PSEUDONYM_PATCH) else former
        if publish:
            workflow.upsert_search_attributes(describing)
        pending_given = given.get(search_attributes.CHECKOUT_STATUS) == CheckoutStatus.PENDING.value
        self.move_to(CheckoutStatus.PENDING, "holds requested", publish=not pending_given)

    def move_to(self, status: CheckoutStatus, reason: str | None = None, *, publish: bool = True) -> None:
        previous = self.history[-1].status.value if self.history else "NONE"
        self.status = status
        self.history.append(StatusChange(status=status, at=workflow.now(), reason=reason))
        if publish:
            workflow.upsert_search_attributes([search_attributes.CHECKOUT_STATUS.value_set(status.value)])
        if previous != status.value:  # an extend (HELD again) or another failed release round is no new status
            workflow.metric_meter().create_counter(
                STATUS_METRIC, "CheckoutSaga status changes, by the status reached and the one left."
            ).add(1, {"status": status.value, "previous": previous})
        workflow.set_current_details(self.details(reason))

    def details(self, reason: str | None = None) -> str:
        """The Temporal UI's current details (markdown): status, expiry, what each participant holds, last error."""
        lines = [f"**{self.status.value}**" + (f": {reason}" if reason else "")]
        if self.expires_at is not None and self.status == CheckoutStatus.HELD:
            lines.append(f"expires at {self.expires_at.isoformat()}")
        for service, hold in self.holds.items():
            held = ", ".join(f"{line.resource} x{line.quantity}" for line in hold.lines) or "nothing"
            lines.append(f"- {service} {hold.status.value}: {held}")
        if self.error:
            lines.append(f"last error: {self.error}")
        return "\n".join(lines)

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
            total=self.total(),
        )

    def total(self) -> Money | None:
        """The checkout's total from its holds' recorded prices (lines in two currencies: none; the API refuses
        such a checkout, so only an operator's re-pricing between the API's look and the holds gets here)."""
        try:
            return total_of(self.holds.values())
        except MixedCurrencies:
            return None
