"""The one adapter every participant shares: Temporal activities named '<participant>.<operation>'.

Activities stay thin: they call the participant's HoldOperations and translate its typed errors into
ApplicationError (type = the error's ErrorType), so the workflow's retry policies see which failures are worth
another attempt (Busy) and which are final.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ActivityError, ApplicationError, ApplicationErrorCategory

from activities.crash import CrashPoints
from activities.models import (
    DeclineInput,
    ExtendHoldInput,
    HoldInput,
    RefundInput,
    activity_name,
    hold_input_for,
    operations_of,
)
from services.errors import Declined, ErrorType, LedgerError, decode, error_type
from services.participant import HoldOperations
from services.registry import AnyParticipant
from services.types import Alternative, Frozen, HoldResult, RefundResult


def to_application_error(err: LedgerError) -> ApplicationError:
    """type = the error's ErrorType (the workflow matches on it); details carry what a caller needs (the error's
    own `details()`, services/errors.py)."""
    return ApplicationError(
        str(err), *err.details(), type=err.type.value, non_retryable=not err.retryable,
        # A sold-out seat is an answer, not an incident: benign errors are not logged as activity failures.
        category=ApplicationErrorCategory.UNSPECIFIED if err.retryable else ApplicationErrorCategory.BENIGN,
    )


def ledger_failure(error: BaseException | None) -> tuple[ErrorType | None, LedgerError | None]:
    """What a failed step's error carries, read back through services/errors.py: its ErrorType (None for a failure
    of another kind) and the ledger error (None when its details lack what the error needs). A remote activity's
    failure arrives as ActivityError(cause=ApplicationError); a local activity's as the ApplicationError itself."""
    cause = error.cause if isinstance(error, ActivityError) else error
    if not isinstance(cause, ApplicationError):
        return None, None
    return error_type(cause.type), decode(cause.type, cause.message, cause.details)


T = TypeVar("T")

COMPENSATION_METRIC = "booking_compensation_attempts"


def _count_release(participant: str, outcome: str) -> None:
    if not activity.in_activity():  # called directly (tests, the no-op floor): no activity, no meter
        return
    activity.metric_meter().create_counter(
        COMPENSATION_METRIC, "Release (compensation) attempts, retries included, by participant and outcome."
    ).add(1, {"participant": participant, "outcome": outcome})


async def _translated(call: Awaitable[T]) -> T:
    try:
        return await call
    except LedgerError as err:
        raise to_application_error(err) from err


class ParticipantActivities:
    """The activities of one participant over its HoldOperations; `activities()` hands them to a Worker."""

    def __init__(self, participant: AnyParticipant, operations: HoldOperations[Any]) -> None:
        if operations.name != participant.name:
            raise ValueError(f"the {participant.name} activities need its operations, got {operations.name}")
        self.participant = participant
        self.operations = operations
        self._crash = CrashPoints()

    async def _ledger(self, operation: str, call: Awaitable[T]) -> T:
        # BEFORE: nothing reached the ledger; AFTER: the ledger call returned (committed), its result is lost.
        name = activity_name(self.participant.name, operation)
        self._crash.before(name)
        result = await _translated(call)
        self._crash.after(name)
        return result

    async def hold(self, params: HoldInput) -> HoldResult:
        return await self._ledger("hold", self.operations.hold(params.hold_key, params.request, params.expires_at))

    async def confirm(self, hold_key: str) -> HoldResult:
        return await self._ledger("confirm", self.operations.confirm(hold_key))

    async def release(self, hold_key: str) -> HoldResult:
        return await self._compensation("release", self.operations.release(hold_key))

    async def decline(self, params: DeclineInput) -> HoldResult:
        # The saga declines a hold instead of releasing it: a compensation attempt all the same.
        return await self._compensation("decline", self.operations.decline(params.hold_key, Declined(params.shortage)))

    async def _compensation(self, operation: str, call: Awaitable[HoldResult]) -> HoldResult:
        # Every compensation attempt (retries included) is counted where it runs, the worker's SDK metrics endpoint
        # (booking_compensation_attempts_total{participant, outcome}).
        outcome = "failed"
        try:
            result = await self._ledger(operation, call)
            outcome = "released"
            return result
        finally:
            _count_release(self.participant.name, outcome)

    async def return_sale(self, hold_key: str) -> HoldResult:
        return await self._ledger("return_sale", self.operations.return_sale(hold_key))

    async def extend(self, params: ExtendHoldInput) -> HoldResult:
        return await self._ledger("extend", self.operations.extend(params.hold_key, params.expires_at))

    async def refund(self, params: RefundInput) -> RefundResult:
        return await self._ledger(
            "refund", self.operations.refund(params.hold_key, params.refund_key, params.amount)
        )

    async def alternatives(self, request: Frozen) -> list[Alternative]:
        return await _translated(self.operations.alternatives(request))

    def activities(self) -> list[Callable[..., Awaitable[object]]]:
        """The operations as activities named '<participant>.<operation>', each decoding its argument as this
        participant's models (the pydantic converter reads the parameter types from the signature)."""
        arguments: dict[str, object] = {
            "hold": hold_input_for(self.participant),
            "alternatives": self.participant.request_model,
        }
        return [
            _as_activity(activity_name(self.participant.name, op), getattr(self, op), arguments.get(op))
            for op in operations_of(self.participant)
        ]


def _as_activity(
    name: str, method: Callable[..., Awaitable[object]], argument: object | None
) -> Callable[..., Awaitable[object]]:
    # A bound method cannot carry Temporal's definition attribute: wrap it in a plain function that keeps the
    # signature, with the argument's type narrowed to the participant's own model where it has one.
    @functools.wraps(method)
    async def run(*args: object) -> object:
        return await method(*args)

    if argument is not None:
        run.__annotations__ = {**run.__annotations__, _first_parameter(method): argument}
    return activity.defn(name=name)(run)


def _first_parameter(method: Callable[..., object]) -> str:
    names: Sequence[str] = method.__code__.co_varnames[1 : method.__code__.co_argcount]
    return names[0]
