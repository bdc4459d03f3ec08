"""The calls into CheckoutSaga (Update-with-Start, updates, the state query, the retry signal) and CancelSale, for
the API and the operator CLI, with Temporal's errors turned into problems. Nothing here knows about HTTP routes; it
answers CheckoutViews or raises ProblemError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from checkouts.problems import ProblemError, service_unavailable
from services.registry import NAMES, local_names
from services.types import Money
from settings import Settings
from workflows import search_attributes
from workflows.cancel_sale import CANCEL_SALE_WORKFLOW, CancelSaleInput, CancelSaleResult
from workflows.cancel_sale import workflow_id as cancel_sale_id
from workflows.models import (
    CANCEL_PARTS,
    RETRY_COMPENSATION_SIGNAL,
    STATE_QUERY,
    SUBMIT,
    WORKFLOW_NAME,
    CancelPartsInput,
    CheckoutInput,
    CheckoutRequest,
    CheckoutView,
    ExtendInput,
)
from workflows.summaries import checkout_summary

if TYPE_CHECKING:
    from workflows.checkout_saga import CheckoutSaga

log = logging.getLogger(__name__)
T = TypeVar("T")

# A checkout answers once its holds are placed or rolled back; past this, the client retries with the same
# Idempotency-Key and joins the same saga, which kept going meanwhile.
ANSWER_TIMEOUT_SECONDS = 30.0


def unknown_checkout(checkout_id: str) -> ProblemError:
    return ProblemError(404, "checkout-not-found", "Unknown checkout", f"there is no checkout {checkout_id}")


async def _call(awaitable: Awaitable[T], what: str) -> T:
    """Await a Temporal call; transport trouble and timeouts become 503 + Retry-After."""
    try:
        return await asyncio.wait_for(awaitable, ANSWER_TIMEOUT_SECONDS)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
        raise service_unavailable(f"{what} did not finish in time; retry the same request",
                                  dependency="temporal") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise
        log.warning("temporal error during %s: %s (%s)", what, exc, exc.status)
        raise service_unavailable(f"the workflow service could not {what}; retry the same request",
                                  dependency="temporal") from exc
    except RuntimeError as exc:  # the SDK's transport failures (connection refused and the like)
        log.warning("temporal unreachable during %s: %s", what, exc)
        raise service_unavailable(f"the workflow service is unreachable ({what})", dependency="temporal") from exc


async def submit(
    client: Client,
    settings: Settings,
    checkout_id: str,
    request: CheckoutRequest,
    request_hash: str,
    hold_seconds: int,
    quote: Money | None = None,
) -> CheckoutView:
    """Start the saga (or join the running one) and wait until its holds are placed or rolled back. `quote`: a
    paid checkout's total at the prices the API read (CheckoutInput.quote)."""
    start: WithStartWorkflowOperation[CheckoutSaga, CheckoutView] = WithStartWorkflowOperation(
        WORKFLOW_NAME,
        CheckoutInput(
            checkout_id=checkout_id,
            request=request,
            request_hash=request_hash,
            hold_seconds=hold_seconds,
            extend_max_seconds=settings.hold_seconds_max,
            hold_lifetime_max_seconds=settings.hold_lifetime_max_seconds,
            task_queues={service: settings.task_queue(service) for service in NAMES},
            local_participants=list(local_names(settings.participant_placements)),
            quote=quote,
        ),
        id=checkout_id,
        task_queue=settings.task_queue_checkout,
        # A checkout worker that dies inside a workflow task (its local participants' holds run there) is replaced
        # after this, not after the server's default 10 s; the SDK heartbeats a task running long local activities.
        task_timeout=timedelta(seconds=settings.workflow_task_timeout_seconds),
        # What an operator sees for this checkout in the Temporal UI's list and detail views.
        static_summary=checkout_summary(request),
        search_attributes=search_attributes.at_start(request, settings.checkout_id_secret),
        # USE_EXISTING: a retried or concurrent POST joins the running saga.
        # REJECT_DUPLICATE: a closed saga is never started again; its final answer is returned instead.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        result_type=CheckoutView,
    )
    try:
        return await _call(
            client.execute_update_with_start_workflow(SUBMIT, start_workflow_operation=start, result_type=CheckoutView),
            "place the holds",
        )
    except WorkflowAlreadyStartedError:
        # REJECT_DUPLICATE refused a second saga: this key's checkout has closed; answer from its result.
        await _collect_start_error(start)
        return await current_view(client, checkout_id)
    except RPCError as exc:  # NOT_FOUND: the saga closed between the start and the update
        await _collect_start_error(start)
        log.info("saga %s closed while joining it: %s", checkout_id, exc)
        return await current_view(client, checkout_id)
    except WorkflowUpdateFailedError as exc:
        # The saga refused `submit` (it has moved on, e.g. already confirmed): answer with where it is.
        log.info("saga %s refused submit: %s", checkout_id, _reason(exc))
        return await current_view(client, checkout_id)
    except BaseException:
        await _collect_start_error(start)
        raise


async def _collect_start_error(start: WithStartWorkflowOperation[Any, Any]) -> None:
    """A failed Update-with-Start leaves its error in the start operation's future too: read it, so that
    asyncio does not log "Future exception was never retrieved" for an error already handled."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(start.workflow_handle(), 1)


async def current_view(client: Client, checkout_id: str) -> CheckoutView:
    """The checkout now: the state query while the saga runs, its result once it has closed."""
    handle: WorkflowHandle[object, CheckoutView] = client.get_workflow_handle(checkout_id, result_type=CheckoutView)
    try:
        description = await _call(handle.describe(), "read the checkout")
    except RPCError as exc:
        raise unknown_checkout(checkout_id) from exc
    if description.workflow_type != WORKFLOW_NAME:
        raise unknown_checkout(checkout_id)
    try:
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return await _call(handle.result(), "read the checkout")
        return await _call(handle.query(STATE_QUERY, result_type=CheckoutView), "read the checkout")
    except (WorkflowFailureError, WorkflowQueryFailedError, WorkflowQueryRejectedError, RPCError) as exc:
        # Terminated or failed by an operator, or a query the saga could not answer: nothing to show but that.
        log.warning("checkout %s has no readable state: %s", checkout_id, exc)
        raise ProblemError(
            409, "checkout-unreadable", "Checkout state unavailable",
            f"checkout {checkout_id} ended abnormally ({description.status.name if description.status else '?'}); "
            "an operator can inspect it in the Temporal UI",
        ) from exc


async def update(client: Client, checkout_id: str, name: str, arg: ExtendInput | None = None) -> CheckoutView:
    """Send confirm / cancel / extend. A refusal raises RefusedUpdate carrying the checkout as it is."""
    handle = client.get_workflow_handle(checkout_id)
    call = (
        handle.execute_update(name, arg, result_type=CheckoutView)
        if arg is not None
        else handle.execute_update(name, result_type=CheckoutView)
    )
    try:
        return await _call(call, f"{name} the checkout")
    except WorkflowUpdateFailedError as exc:
        raise RefusedUpdate(await current_view(client, checkout_id), _reason(exc)) from exc
    except RPCError as exc:
        # NOT_FOUND: no such workflow, or it has closed; current_view tells which (404 or its final state).
        raise RefusedUpdate(await current_view(client, checkout_id), "the checkout is closed") from exc


async def cancel_parts(client: Client, checkout_id: str, parts: list[str]) -> CheckoutView:
    """Release some parts of a HELD checkout (the saga's `cancel_parts` update). A refusal (the checkout is not
    HELD any more: confirmed, settled, closed) raises RefusedUpdate with the checkout as it is."""
    handle = client.get_workflow_handle(checkout_id)
    try:
        return await _call(
            handle.execute_update(CANCEL_PARTS, CancelPartsInput(parts=parts), result_type=CheckoutView),
            "cancel the parts",
        )
    except WorkflowUpdateFailedError as exc:
        raise RefusedUpdate(await current_view(client, checkout_id), _reason(exc)) from exc
    except RPCError as exc:
        raise RefusedUpdate(await current_view(client, checkout_id), "the checkout is closed") from exc


async def cancel_sale(
    client: Client, settings: Settings, checkout_id: str, parts: list[str], view: CheckoutView | None
) -> CancelSaleResult:
    """Give a sale's parts back (all of them when `parts` is empty) through its CancelSale workflow, started or
    joined (concurrent cancels of the same parts share one run; a repeated one gives nothing back twice).
    `view`: the checkout as the saga answered it, when it has no record yet."""
    return await _call(
        client.execute_workflow(
            CANCEL_SALE_WORKFLOW,
            CancelSaleInput(
                checkout_id=checkout_id, parts=parts,
                task_queues={service: settings.task_queue(service) for service in NAMES},
                local_participants=list(local_names(settings.participant_placements)),
                view=view.model_dump(mode="json") if view is not None else None,
                local_records=settings.cancel_sale_local_activities,
            ),
            id=cancel_sale_id(checkout_id, parts),
            task_queue=settings.task_queue_checkout,
            task_timeout=timedelta(seconds=settings.workflow_task_timeout_seconds),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"cancel the sale {checkout_id}" + (f": {', '.join(parts)}" if parts else ""),
            result_type=CancelSaleResult,
        ),
        "cancel the sale",
    )


async def retry_compensation(client: Client, checkout_id: str) -> CheckoutView:
    """Signal `retry_compensation` (a NEEDS_ATTENTION checkout releases again now); answers the view as it was (the
    retry runs in the saga's next workflow task)."""
    view = await current_view(client, checkout_id)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(checkout_id)
    await handle.signal(RETRY_COMPENSATION_SIGNAL)
    return view


class RefusedUpdate(Exception):
    def __init__(self, view: CheckoutView, reason: str) -> None:
        super().__init__(reason)
        self.view = view
        self.reason = reason


def _reason(exc: WorkflowUpdateFailedError) -> str:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.message:
        return cause.message
    return str(cause) or "refused"
