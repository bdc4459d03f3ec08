"""The saga-vs-ledger audit: every checkout's saga (Temporal) held against its holds (the ledgers).

Violations (docs/faults-and-chaos.md, "Saga-vs-ledger audit"):
- `active_hold_saga_closed`: an ACTIVE hold whose saga has closed (completed, terminated, failed, timed out).
- `active_hold_saga_not_held`: an ACTIVE hold whose running saga has settled as CANCELLED, EXPIRED, REJECTED or
  FAILED: those statuses are recorded only after every release has succeeded.
- `confirmed_saga_hold_not_confirmed`: a CONFIRMED saga with a hold that is not CONFIRMED (or missing).
- `hold_without_saga`: an ACTIVE hold whose checkout has no saga.
- `held_past_expiry`: a running saga still HELD after its holds' `expires_at` + grace (SWEEPER_GRACE_SECONDS).
- With the booking records (services/bookings) given: `record_missing`, a closed CONFIRMED saga without a record;
  `record_disagrees`, a record whose hold status differs from the ledger's, or whose status is not one a closed
  CONFIRMED saga's record can have (CONFIRMED, or CANCELLED / NEEDS_ATTENTION once its sale is cancelled). A
  CONFIRMED saga's hold that its record shows RELEASED (a part cancelled while HELD) or RETURNED (a sale's part
  cancelled) is then no violation.

Not violations, by decision:
- An ACTIVE hold of a running saga in PENDING (its holds are being placed, or the others rolled back) or
  NEEDS_ATTENTION (a release keeps failing; the saga retries it and an operator has been told): both are the
  saga at work, and a saga stuck there is visible in the UI by its CheckoutStatus.
- A finished hold (CONFIRMED, RELEASED, EXPIRED, REJECTED) without a saga: Temporal deletes closed workflows after
  the namespace's retention, and the ledger keeps its records for good.

Cost stays bounded: ACTIVE holds are read in key order, `page_size` at a time (their number is bounded by what is
on sale); sagas come from a visibility query of HELD and CONFIRMED checkouts (`since` narrows it to those started
since then), read `page_size` per call; `limit` caps both. Only candidates are looked at closely: a describe of
the saga (authoritative, unlike visibility) and a re-read of the hold, so a checkout moving while the audit reads
it is not reported; a violation is stable and survives that second look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from services.bookings.models import BookingRecord
from services.ledger.ledger import HoldRecord
from services.participant import HoldLedger as _HoldLedger
from services.registry import AnyService
from services.types import HoldStatus
from workflows import search_attributes
from workflows.models import WORKFLOW_NAME, CheckoutStatus

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 500
# Describes and hold reads in flight at once: enough to hide round trips, few enough not to crowd the servers.
CONCURRENCY = 8
# A running saga's ACTIVE holds are the saga at work in these statuses (see the module docstring).
_WORKING = frozenset({CheckoutStatus.PENDING, CheckoutStatus.HELD, CheckoutStatus.NEEDS_ATTENTION})


class ViolationKind(StrEnum):
    ACTIVE_HOLD_SAGA_CLOSED = "active_hold_saga_closed"
    ACTIVE_HOLD_SAGA_NOT_HELD = "active_hold_saga_not_held"
    CONFIRMED_SAGA_HOLD_NOT_CONFIRMED = "confirmed_saga_hold_not_confirmed"
    HOLD_WITHOUT_SAGA = "hold_without_saga"
    HELD_PAST_EXPIRY = "held_past_expiry"
    RECORD_MISSING = "record_missing"
    RECORD_DISAGREES = "record_disagrees"


class RecordReader(Protocol):
    """What the audit reads of the booking records (services.bookings.records.BookingRecords)."""

    async def load(self, checkout_id: str) -> BookingRecord | None: ...


# What a closed CONFIRMED saga's record may say: confirmed, or its sale (being) cancelled since.
_RECORD_AFTER_SALE = frozenset({"CONFIRMED", "CANCELLED", "NEEDS_ATTENTION"})


class SagaViolation(BaseModel):
    kind: ViolationKind
    checkout_id: str
    service: str | None = None
    hold_status: str | None = Field(default=None, description="the hold's ledger status; null when there is no hold")
    saga_status: str | None = Field(
        default=None, description="the saga's CheckoutStatus, or its execution status once closed; null without a saga"
    )
    detail: str


class SagaAuditChecked(BaseModel):
    checkouts: int = 0
    holds: int = 0


class SagaAuditReport(BaseModel):
    ok: bool
    violations: list[SagaViolation]
    checked: SagaAuditChecked
    complete: bool = Field(default=True, description="false when `limit` stopped the audit before the end")


# What the audit reads from one participant (InventoryService.hold_ledger).
HoldLedger = _HoldLedger


@dataclass(frozen=True)
class Saga:
    """A checkout's saga as `describe` (or visibility) shows it."""

    checkout_id: str
    running: bool
    execution: str
    status: CheckoutStatus | None
    services: tuple[str, ...]

    @property
    def shown_status(self) -> str:
        if self.running:
            return self.status.value if self.status else "RUNNING"
        return f"{self.execution} ({self.status.value})" if self.status else self.execution


def hold_key(checkout_id: str, service: str) -> str:
    return f"{checkout_id}:{service}"


def split_hold_key(key: str) -> tuple[str, str]:
    """'co-1:flight' -> ('co-1', 'flight'): the saga's workflow id is the checkout id."""
    checkout_id, _, service = key.rpartition(":")
    return checkout_id, service


def ledgers_of(services: Mapping[str, AnyService]) -> dict[str, HoldLedger]:
    """What each participant's service gives the audit to read (InventoryService.hold_ledger), by name."""
    return {name: found for name, service in services.items() if (found := service.hold_ledger()) is not None}


async def audit_sagas(
    client: Client,
    ledgers: Mapping[str, HoldLedger],
    *,
    grace_seconds: int,
    task_queue: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    since: datetime | None = None,
    limit: int | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    records: RecordReader | None = None,
) -> SagaAuditReport:
    """`task_queue`: only the sagas of this checkout task queue (this deployment's; a shared server may run
    others against other ledgers). `records`: hold the booking records against sagas and ledgers too."""
    audit = _Audit(client, ledgers, timedelta(seconds=grace_seconds), page_size, limit, now)
    audit.records = records
    await audit.active_holds()
    await audit.sagas(since, task_queue)
    return SagaAuditReport(
        ok=not audit.violations,
        violations=list(audit.violations.values()),
        checked=SagaAuditChecked(checkouts=audit.checkouts, holds=audit.holds),
        complete=audit.complete,
    )


class _Audit:
    def __init__(
        self,
        client: Client,
        ledgers: Mapping[str, HoldLedger],
        grace: timedelta,
        page_size: int,
        limit: int | None,
        now: Callable[[], datetime],
    ) -> None:
        self.client = client
        self.ledgers = ledgers
        self.grace = grace
        self.page_size = page_size
        self.limit = limit
        self.now = now
        self.violations: dict[tuple[ViolationKind, str, str | None], SagaViolation] = {}
        self.checkouts = 0
        self.holds = 0
        self.complete = True
        # Bounded by what is held at once: pass two counts each checkout and hold once.
        self._active_keys: set[str] = set()
        self._active_checkouts: set[str] = set()
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self.records: RecordReader | None = None

    def _room(self) -> bool:
        if self.limit is not None and self.checkouts >= self.limit:
            self.complete = False
            return False
        return True

    def _add(self, violation: SagaViolation) -> None:
        self.violations.setdefault((violation.kind, violation.checkout_id, violation.service), violation)

    async def _gated(self, work: Awaitable[T]) -> T:
        async with self._gate:
            return await work

    # -- pass one: every ACTIVE hold has a saga at work -----------------------------------------------------------

    async def active_holds(self) -> None:
        for service, ledger in self.ledgers.items():
            after = ""
            while self._room():
                page = await ledger.holds_page(after, self.page_size)
                if not page:
                    break
                after = page[-1].hold_key
                await self._check_active_page(service, ledger, page)

    async def _check_active_page(self, service: str, ledger: HoldLedger, page: list[HoldRecord]) -> None:
        ids = {split_hold_key(hold.hold_key)[0] for hold in page}
        new = ids - self._active_checkouts
        self._active_checkouts |= new
        self.checkouts += len(new)
        self.holds += len(page)
        self._active_keys.update(hold.hold_key for hold in page)
        sagas = dict(zip(ids, await asyncio.gather(*(self._gated(self._describe(i)) for i in ids)), strict=True))
        candidates = [hold for hold in page if _active_hold_problem(sagas[split_hold_key(hold.hold_key)[0]])]
        # A second look: the saga first, then the hold, so a hold released while its saga closed is let go.
        for hold in candidates:
            checkout_id, _ = split_hold_key(hold.hold_key)
            saga = await self._describe(checkout_id)
            again = await ledger.hold_record(hold.hold_key)
            kind = _active_hold_problem(saga)
            if kind is None or again is None or again.status is not HoldStatus.ACTIVE:
                continue
            self._add(SagaViolation(
                kind=kind, checkout_id=checkout_id, service=service, hold_status=again.status.value,
                saga_status=saga.shown_status if saga else None, detail=_active_detail(kind, saga),
            ))

    # -- pass two: HELD and CONFIRMED sagas against their holds --------------------------------------------------

    async def sagas(self, since: datetime | None, task_queue: str | None) -> None:
        statuses = ", ".join(f"'{s.value}'" for s in (CheckoutStatus.HELD, CheckoutStatus.CONFIRMED))
        query = f"WorkflowType = '{WORKFLOW_NAME}' AND {search_attributes.CHECKOUT_STATUS.name} IN ({statuses})"
        if task_queue is not None:
            query += f" AND TaskQueue = '{_quoted(task_queue)}'"
        if since is not None:
            query += f" AND StartTime >= '{since.astimezone(UTC).isoformat()}'"
        batch: list[Saga] = []
        async for execution in self.client.list_workflows(query, page_size=self.page_size):
            if not self._room():
                break
            saga = _saga(execution.id, execution.status, execution.typed_search_attributes)
            if saga.checkout_id not in self._active_checkouts:
                self.checkouts += 1
            batch.append(saga)
            if len(batch) >= self.page_size:
                await self._check_sagas(batch)
                batch = []
        await self._check_sagas(batch)

    async def _check_sagas(self, batch: list[Saga]) -> None:
        await asyncio.gather(*(self._gated(self._check_saga(saga)) for saga in batch))

    async def _check_saga(self, saga: Saga) -> None:
        records = await self._hold_records(saga)
        if saga.status is CheckoutStatus.CONFIRMED and self.records is not None:
            if await self._record_problems(saga, records, report=False):
                # A second look: a cancellation may have been between its ledger and its record write.
                await self._record_problems(saga, await self._hold_records(saga), report=True)
            return
        if saga.status is CheckoutStatus.CONFIRMED:
            # Final: a CONFIRMED saga's holds were confirmed before it said so, and a sale is never undone.
            for service, record in records.items():
                if record is None or record.status is not HoldStatus.CONFIRMED:
                    self._add(SagaViolation(
                        kind=ViolationKind.CONFIRMED_SAGA_HOLD_NOT_CONFIRMED, checkout_id=saga.checkout_id,
                        service=service, hold_status=record.status.value if record else None,
                        saga_status=saga.shown_status,
                        detail="the saga is CONFIRMED but this hold " + (
                            f"is {record.status.value}" if record else "is not in the ledger"),
                    ))
            return
        if saga.status is CheckoutStatus.HELD and saga.running and self._overdue(records.values()):
            fresh = await self._describe(saga.checkout_id)  # visibility lags: is it still HELD?
            if fresh is None or not fresh.running or fresh.status is not CheckoutStatus.HELD:
                return
            records = await self._hold_records(fresh)
            if self._overdue(records.values()):
                expiry = max((r.expires_at for r in records.values() if r and r.expires_at), default=None)
                self._add(SagaViolation(
                    kind=ViolationKind.HELD_PAST_EXPIRY, checkout_id=saga.checkout_id, saga_status=fresh.shown_status,
                    detail=f"still HELD although its holds expired at {expiry.isoformat() if expiry else '?'} "
                    f"(grace {int(self.grace.total_seconds())}s)",
                ))

    async def _record_problems(self, saga: Saga, holds: dict[str, HoldRecord | None], *, report: bool) -> bool:
        """A CONFIRMED saga held against its record and its holds; True when something disagrees."""
        assert self.records is not None
        record = await self.records.load(saga.checkout_id)
        found: list[SagaViolation] = []
        if record is None:
            if not saga.running:  # a running saga writes its record just after answering
                found.append(SagaViolation(
                    kind=ViolationKind.RECORD_MISSING, checkout_id=saga.checkout_id, saga_status=saga.shown_status,
                    detail="the saga is CONFIRMED and closed but the checkout has no booking record",
                ))
            expected = {service: HoldStatus.CONFIRMED.value for service in holds}
        else:
            if not saga.running and record.status not in _RECORD_AFTER_SALE:
                found.append(SagaViolation(
                    kind=ViolationKind.RECORD_DISAGREES, checkout_id=saga.checkout_id, saga_status=saga.shown_status,
                    detail=f"the saga is CONFIRMED but its record says {record.status}",
                ))
            shown = {str(h.get("service")): str(h.get("status")) for h in record.view.get("holds") or []}
            expected = {service: shown.get(service, HoldStatus.CONFIRMED.value) for service in holds}
            if saga.running and record.status not in _RECORD_AFTER_SALE:
                expected = {service: HoldStatus.CONFIRMED.value for service in holds}  # the record lags behind
        for service, hold in holds.items():
            if hold is not None and hold.status.value == expected[service]:
                continue
            kind = (ViolationKind.CONFIRMED_SAGA_HOLD_NOT_CONFIRMED if record is None
                    else ViolationKind.RECORD_DISAGREES)
            found.append(SagaViolation(
                kind=kind, checkout_id=saga.checkout_id, service=service,
                hold_status=hold.status.value if hold else None, saga_status=saga.shown_status,
                detail=f"the record says {expected[service]} but this hold " + (
                    f"is {hold.status.value}" if hold else "is not in the ledger"),
            ))
        if report:
            for violation in found:
                self._add(violation)
        return bool(found)

    async def _hold_records(self, saga: Saga) -> dict[str, HoldRecord | None]:
        services = [s for s in saga.services if s in self.ledgers]
        found = await asyncio.gather(*(self.ledgers[s].hold_record(hold_key(saga.checkout_id, s)) for s in services))
        for service in services:
            if hold_key(saga.checkout_id, service) not in self._active_keys:
                self.holds += 1
        return dict(zip(services, found, strict=True))

    def _overdue(self, records: Iterable[HoldRecord | None]) -> bool:
        """Past every hold's expiry + grace (the hold clocks are the saga's: extend moves the ledger first)."""
        expiries = [r.expires_at for r in records if r is not None and r.expires_at is not None]
        return bool(expiries) and max(expiries) + self.grace < self.now()

    async def _describe(self, checkout_id: str) -> Saga | None:
        if not checkout_id:  # a hold key that names no checkout (not a saga's): no saga owns it
            return None
        try:
            description = await self.client.get_workflow_handle(checkout_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if description.workflow_type != WORKFLOW_NAME:
            return None
        return _saga(checkout_id, description.status, description.typed_search_attributes)


def _saga(
    checkout_id: str, status: WorkflowExecutionStatus | None, attributes: TypedSearchAttributes
) -> Saga:
    shown = attributes.get(search_attributes.CHECKOUT_STATUS)
    resources = attributes.get(search_attributes.RESOURCES) or []
    services = tuple(dict.fromkeys(resource.split(":", 1)[0] for resource in resources))
    return Saga(
        checkout_id=checkout_id,
        running=status == WorkflowExecutionStatus.RUNNING,
        execution=status.name if status else "UNKNOWN",
        status=CheckoutStatus(shown) if shown is not None and shown in CheckoutStatus.__members__ else None,
        services=services,
    )


def _active_hold_problem(saga: Saga | None) -> ViolationKind | None:
    if saga is None:
        return ViolationKind.HOLD_WITHOUT_SAGA
    if not saga.running:
        return ViolationKind.ACTIVE_HOLD_SAGA_CLOSED
    if saga.status is None or saga.status in _WORKING:
        return None
    if saga.status is CheckoutStatus.CONFIRMED:
        return ViolationKind.CONFIRMED_SAGA_HOLD_NOT_CONFIRMED
    return ViolationKind.ACTIVE_HOLD_SAGA_NOT_HELD


def _active_detail(kind: ViolationKind, saga: Saga | None) -> str:
    if saga is None:
        return "the hold is ACTIVE but its checkout has no saga"
    if kind is ViolationKind.ACTIVE_HOLD_SAGA_CLOSED:
        return f"the hold is ACTIVE but its saga has closed ({saga.shown_status})"
    return f"the hold is ACTIVE but its saga is {saga.shown_status}"


def _quoted(value: str) -> str:
    """A value inside a visibility query's single quotes."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
