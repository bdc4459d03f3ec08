"""An InventoryService that touches nothing: `booking-saga worker --noop` measures Temporal alone (benchmarks)."""

from __future__ import annotations

from datetime import datetime

from services.participant import HoldOperations
from services.types import Alternative, Frozen, HoldResult, HoldStatus, Violation


class NoopService(HoldOperations[Frozen]):
    """Answers every hold as placed and every other call as done, without a database."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _result(self, hold_key: str, status: HoldStatus, expires_at: datetime | None = None) -> HoldResult:
        return HoldResult(hold_key=hold_key, service=self.name, status=status, expires_at=expires_at)

    async def hold(self, hold_key: str, request: Frozen, expires_at: datetime) -> HoldResult:
        return self._result(hold_key, HoldStatus.ACTIVE, expires_at)

    async def confirm(self, hold_key: str) -> HoldResult:
        return self._result(hold_key, HoldStatus.CONFIRMED)

    async def release(self, hold_key: str) -> HoldResult:
        return self._result(hold_key, HoldStatus.RELEASED)

    async def extend(self, hold_key: str, expires_at: datetime) -> HoldResult:
        return self._result(hold_key, HoldStatus.ACTIVE, expires_at)

    async def return_sale(self, hold_key: str) -> HoldResult:
        return self._result(hold_key, HoldStatus.RETURNED)

    async def alternatives(self, request: Frozen) -> list[Alternative]:
        return []

    async def expire_overdue(self, now: datetime, grace_seconds: int) -> int:
        return 0

    async def audit(self) -> list[Violation]:
        return []
