"""How the ledger tells the availability cache about committed changes (the participant contract itself is in
services/participant.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.types import RowAvailability


@dataclass(frozen=True)
class RowState:
    """One inventory row as a committed transaction left it (read with RETURNING inside that transaction).

    `resource` names the row the way HoldLine and Shortage do: 'BA117/economy', 'H1/deluxe/2026-12-01', 'SKU-1'.
    `version` grows by one on every change of the row, so a cache can refuse to go back in time.
    """

    service: str
    resource: str
    capacity: int
    held: int
    sold: int
    version: int

    @property
    def available(self) -> int:
        return self.capacity - self.held - self.sold

    @property
    def availability(self) -> RowAvailability:
        return RowAvailability(
            capacity=self.capacity, held=self.held, sold=self.sold, available=self.available, version=self.version
        )


class RowChange(Protocol):
    """A ledger row after a committed change, for the availability cache. RowState satisfies it."""

    @property
    def service(self) -> str: ...

    @property
    def resource(self) -> str: ...

    @property
    def availability(self) -> RowAvailability: ...


class AvailabilitySink(Protocol):
    """Told about every committed ledger change (the Redis cache implements it).

    Called after the commit with every row the transaction changed, at most once per transaction, never with
    an empty list. Should not raise: the ledger logs and swallows anything it raises, because the change is
    already committed and the cache is only a hint.
    """

    async def publish(self, rows: list[RowState]) -> None: ...

    def publish_soon(self, rows: list[RowState]) -> None:
        """Publish without waiting for it: for a change that only lowers availability (a hold) or refreshes
        what is cached (a refusal), which the cache may show late at no risk: a row shown with more units than it
        has only sends a checkout to its saga, where PostgreSQL decides. A change that raises availability (a
        release, an expiry) is published with `publish`, before its caller answers, so that released inventory
        is never turned away. Publishes still on their way when the sink closes are finished first."""
        ...
