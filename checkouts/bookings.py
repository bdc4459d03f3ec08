"""A checkout's view from the saga or from its booking record (services/bookings), whichever knows it.

Rule (`view_of`): a record that shows a settled status (CONFIRMED, CANCELLED, EXPIRED, REJECTED, FAILED) is the
answer: the saga writes that record before its workflow closes, and a sale's cancellation writes only there, so the
record is then at least as new as the saga. Otherwise the saga answers (the record lags while HELD); when Temporal
no longer knows the workflow (retention deleted it), the record answers whatever it shows; no record: 404.
"""

from __future__ import annotations

import logging

from temporalio.client import Client

from checkouts import saga
from checkouts.answers import conflict
from checkouts.parts import check_parts_known
from checkouts.problems import ProblemError, service_unavailable
from services.bookings.models import BookingRecord
from services.bookings.records import SETTLED, BookingRecords
from services.errors import LedgerError
from services.types import HoldStatus
from settings import Settings
from workflows.models import CANCEL, CONFIRM, CheckoutStatus, CheckoutView

log = logging.getLogger(__name__)


def record_view(record: BookingRecord) -> CheckoutView:
    return CheckoutView.model_validate(record.view)


async def load(records: BookingRecords | None, checkout_id: str) -> BookingRecord | None:
    """The record, None without one; 503 when the database does not answer."""
    if records is None:
        return None
    try:
        return await records.load(checkout_id)
    except LedgerError as error:
        raise service_unavailable(f"the checkout record could not be read ({error}); retry",
                                  dependency="database") from error


async def view_of(client: Client, records: BookingRecords | None, checkout_id: str) -> CheckoutView:
    record = await load(records, checkout_id)
    if record is not None and record.status in SETTLED:
        return record_view(record)
    try:
        return await saga.current_view(client, checkout_id)
    except ProblemError as problem:
        if problem.status == 404 and record is not None:
            return record_view(record)
        raise


def settled_view(record: BookingRecord | None) -> CheckoutView | None:
    """The record's view when it shows a settled checkout (its answer cannot change but by a cancellation)."""
    if record is None or record.status not in SETTLED:
        return None
    return record_view(record)


# Cancel is a no-op success for a checkout that holds nothing any more.
NOTHING_HELD = {CheckoutStatus.CANCELLED, CheckoutStatus.EXPIRED, CheckoutStatus.REJECTED, CheckoutStatus.FAILED}


async def cancel(
    client: Client, settings: Settings, records: BookingRecords | None, checkout_id: str, wanted: list[str]
) -> CheckoutView:
    """Cancel a checkout (`wanted` empty) or some of its parts (participant names), whatever its state: a HELD
    one's holds are released by its saga (`cancel` or `cancel_parts`), a sale's parts are given back by CancelSale.
    Repeatable. Raises ProblemError: 409 (not cancellable now, or `cancel-window-closed`), 422 (no such part, a
    REJECTED checkout's parts), 404, 503. One function for the route and the operator CLI."""
    record = await load(records, checkout_id)
    view = settled_view(record)
    if view is None:
        try:
            view = (await saga.cancel_parts(client, checkout_id, wanted) if wanted
                    else await saga.update(client, checkout_id, CANCEL))
        except saga.RefusedUpdate as refused:
            view = refused.view
            if view.status in (CheckoutStatus.PENDING, CheckoutStatus.HELD) and "CONFIRMED" in refused.reason:
                # A confirm is on its way: once it has settled, the sale is what gets cancelled.
                view = await _settled_confirm(client, checkout_id)
            check_parts_known(view, wanted)
            if view.status not in NOTHING_HELD and view.status != CheckoutStatus.CONFIRMED:
                raise conflict(view, "Cannot cancel",
                               f"the checkout is {view.status.value}: {refused.reason}") from None
    if view.status == CheckoutStatus.REJECTED and wanted:
        raise ProblemError(422, "invalid-request", "Invalid request",
                           "the checkout was REJECTED: it has no parts to cancel", checkout_id=checkout_id)
    check_parts_known(view, wanted)
    if not any(h.status == HoldStatus.CONFIRMED and (not wanted or h.service in wanted) for h in view.holds):
        return view
    outcome = await saga.cancel_sale(client, settings, checkout_id, wanted, view if record is None else None)
    if outcome.closed:
        closed = ", ".join(f"{c.part} (until {c.until.isoformat()})" for c in outcome.closed)
        problem = conflict(view, "Cancellation window closed",
                           f"past the cancellation window of {closed}: nothing was cancelled",
                           kind="cancel-window-closed")
        problem.extras["parts"] = [c.model_dump(mode="json") for c in outcome.closed]
        raise problem
    return CheckoutView.model_validate(outcome.view)


async def _settled_confirm(client: Client, checkout_id: str) -> CheckoutView:
    """The checkout once the confirm under way has settled (the saga's `confirm` is repeatable: joining it waits)."""
    try:
        return await saga.update(client, checkout_id, CONFIRM)
    except saga.RefusedUpdate as refused:
        return refused.view
