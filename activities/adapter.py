"""The one adapter shape every service shares: Temporal activities named '<service>.<operation>'.

Activities stay thin: they call the InventoryService and translate its typed errors into ApplicationError,
so the workflow's retry policies see which failures are worth another attempt (Busy) and which are final.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.models import OPERATIONS, ExtendHoldInput, HoldInput, activity_name
from services.errors import LedgerError, Unavailable, UnknownResource
from services.protocol import InventoryService, ServiceRequest
from services.types import Alternative, HoldResult, ServiceName


def to_application_error(err: LedgerError) -> ApplicationError:
    """type = the error class name (the workflow matches on it); details carry what a caller needs."""
    details: list[Any] = []
    if isinstance(err, Unavailable):
        details = [[s.model_dump(mode="json") for s in err.shortages]]
    elif isinstance(err, UnknownResource):
        details = [err.resource]
    return ApplicationError(
        str(err), *details, type=type(err).__name__, non_retryable=not err.retryable,
        # A sold-out seat is an answer, not an incident: benign errors are not logged as activity failures.
        category=ApplicationErrorCategory.UNSPECIFIED if err.retryable else ApplicationErrorCategory.BENIGN,
    )


T = TypeVar("T")


async def _translated(call: Awaitable[T]) -> T:
    try:
        return await call
    except LedgerError as err:
        raise to_application_error(err) from err


class ServiceActivities:
    """Activities for one service. Subclasses only name the service; `activities()` hands them to a Worker."""

    service_name: ClassVar[ServiceName]

    def __init__(self, service: InventoryService) -> None:
        if service.name != self.service_name:
            raise ValueError(f"{type(self).__name__} needs the {self.service_name} service, got {service.name}")
        self.service = service

    async def hold(self, params: HoldInput) -> HoldResult:
        return await _translated(self.service.hold(params.hold_key, params.request, params.expires_at))

    async def confirm(self, hold_key: str) -> HoldResult:
        return await _translated(self.service.confirm(hold_key))

    async def release(self, hold_key: str) -> HoldResult:
        return await _translated(self.service.release(hold_key))

    async def extend(self, params: ExtendHoldInput) -> HoldResult:
        return await _translated(self.service.extend(params.hold_key, params.expires_at))

    async def alternatives(self, request: ServiceRequest) -> list[Alternative]:
        return await _translated(self.service.alternatives(request))

    def activities(self) -> list[Callable[..., Any]]:
        """The operations as activities named '<service>.<operation>' (names are per instance, not per class)."""
        return [_as_activity(activity_name(self.service_name, op), getattr(self, op)) for op in OPERATIONS]


def _as_activity(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    # A bound method cannot carry Temporal's definition attribute: wrap it in a plain function that keeps the
    # signature (the pydantic converter reads the parameter and return types from it).
    @functools.wraps(method)
    async def run(*args: Any) -> Any:
        return await method(*args)

    return activity.defn(name=name)(run)
