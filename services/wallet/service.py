"""The wallet service: travel credit per (customer, currency) on the shared hold ledger, plus refunds.

Operations (each ONE transaction, idempotent by key, conditional UPDATEs only, no read in one transaction of what
another writes):
- authorize = the ledger's `hold` of one line (the amount) on the customer's account in the total's currency: the
  conditional `UPDATE ... WHERE held + sold + amount <= capacity` is what makes 20 concurrent checkouts against one
  wallet never authorize more than it holds. Too little credit, or no wallet in that currency: Declined (the
  ledger records the key REJECTED, so a duplicate declines again);
- capture = the ledger's `confirm` (held -> sold); void = `release` (and the sweeper's expiry);
- refund(hold_key, refund_key, amount) = a CONFIRMED hold gives back `amount` (None: all that is left) of its
  capture: `sold` down, `holds.refunded` up, one `refunds` row per key. A duplicate key answers the recorded
  refund; a refund above what is left of the capture is refused (InvalidRequest) and records nothing.
Audit: per account, held = ACTIVE authorizations, sold = CONFIRMED captures less their refunds, and the CHECK
(balance = available + authorized + captured, none negative); per key, `refunded` = the sum of its refunds and never
above its capture.
"""

from __future__ import annotations

from datetime import date, datetime

from asyncpg import Record
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.errors import HoldNotActive, InvalidRequest, Unavailable, UnknownResource
from services.ledger.ledger import LedgerTables, LineRef
from services.ledger.service import LedgerService
from services.ledger.statements import qualified
from services.ledger.transaction import Driver, driver_transaction, ledger_transaction, pooled_driver, read_transaction
from services.participant import expect
from services.types import Alternative, HoldResult, HoldStatus, RefundResult, Shortage, Violation
from services.wallet.models import Hold, HoldLine, Inventory, Refund
from services.wallet.participant import WalletParticipant, declined
from services.wallet.schemas import WalletBody, WalletQuery, WalletRequest, WalletView

_INV, _HOLDS, _LINES, _REFUNDS = (
    qualified(table.__table__) for table in (Inventory, Hold, HoldLine, Refund)
)
HOLD_STATUS = f"SELECT status FROM {_HOLDS} WHERE hold_key = $1"
FIND_ACCOUNT = f"SELECT id FROM {_INV} WHERE customer_id = $1 AND currency = $2"
ACCOUNT_OF_HOLD = f"""SELECT i.currency, l.quantity AS captured FROM {_LINES} l JOIN {_INV} i ON i.id = l.inventory_id
    WHERE l.hold_key = $1"""
# A new refund key, recorded first: a concurrent duplicate waits on it, then finds it.
CLAIM_REFUND = f"""INSERT INTO {_REFUNDS} (refund_key, hold_key, amount) VALUES ($1, $2, 0)
    ON CONFLICT DO NOTHING RETURNING refund_key"""
RECORDED_REFUND = f"""SELECT r.hold_key, r.amount, h.refunded
    FROM {_REFUNDS} r JOIN {_HOLDS} h ON h.hold_key = r.hold_key WHERE r.refund_key = $1"""
# The hold's row lock, then its account's (the ledger's lock order). Conditional: only a capture, only what is left.
TAKE_BACK = f"""UPDATE {_HOLDS} h SET refunded = h.refunded + $2, updated_at = now()
    FROM {_LINES} l WHERE h.hold_key = $1 AND l.hold_key = h.hold_key AND h.status = 'CONFIRMED'
        AND h.refunded + $2 <= l.quantity
    RETURNING h.refunded, l.quantity AS captured, l.inventory_id"""
LEFT_TO_REFUND = f"""SELECT h.status, l.quantity - h.refunded AS left_over FROM {_HOLDS} h
    JOIN {_LINES} l ON l.hold_key = h.hold_key WHERE h.hold_key = $1"""
UNSELL = f"UPDATE {_INV} SET sold = sold - $2, version = version + 1 WHERE id = $1 RETURNING sold"
SET_REFUND = f"UPDATE {_REFUNDS} SET amount = $2 WHERE refund_key = $1"
AUDIT = f"""
    SELECT resource, capacity, held, sold, active, captured FROM (
        SELECT i.resource, i.capacity, i.held, i.sold,
            coalesce(sum(l.quantity) FILTER (WHERE h.status = 'ACTIVE'), 0) AS active,
            coalesce(sum(l.quantity - h.refunded) FILTER (WHERE h.status = 'CONFIRMED'), 0) AS captured
        FROM {_INV} i LEFT JOIN {_LINES} l ON l.inventory_id = i.id LEFT JOIN {_HOLDS} h ON h.hold_key = l.hold_key
        GROUP BY i.id
    ) counted
    WHERE held != active OR sold != captured OR held < 0 OR sold < 0 OR held + sold > capacity
    ORDER BY resource"""
AUDIT_KEYS = f"""
    SELECT h.hold_key, h.status, h.refunded, coalesce(l.quantity, 0) AS captured,
        (SELECT coalesce(sum(amount), 0) FROM {_REFUNDS} r WHERE r.hold_key = h.hold_key) AS refunds
    FROM {_HOLDS} h LEFT JOIN {_LINES} l ON l.hold_key = h.hold_key
    WHERE h.refunded != (SELECT coalesce(sum(amount), 0) FROM {_REFUNDS} r WHERE r.hold_key = h.hold_key)
        OR h.refunded > coalesce(l.quantity, 0) OR (h.refunded > 0 AND h.status != 'CONFIRMED')
    ORDER BY h.hold_key"""


def account_name(customer_id: str, currency: str) -> str:
    return f"{customer_id}/{currency}"


class WalletService(LedgerService[WalletRequest]):
    participant = WalletParticipant()
    tables = LedgerTables(Inventory, Hold, HoldLine)

    # -- authorize, refund ---------------------------------------------------------------------------------------

    async def hold(self, hold_key: str, request: WalletRequest, expires_at: datetime) -> HoldResult:
        """Authorize the request's amount (derived by the saga); Declined when the wallet cannot cover it."""
        customer_id, amount, currency = request.customer_id, request.amount or 0, request.currency

        async def resolve(db: Driver) -> list[LineRef]:
            # Only for a new key: a known one answers as recorded, whatever the request (a saga's task run again
            # asks with the request it had not derived yet). Raising here records nothing.
            if customer_id is None or currency is None or request.amount is None:
                raise InvalidRequest("a wallet authorization needs the customer, the amount and the currency")
            account = account_name(customer_id, currency)
            found: int | None = await db.fetchval(FIND_ACCOUNT, customer_id, currency)
            if found is None:
                raise UnknownResource(account)
            return [LineRef(found, account, amount)]

        # An account is no row of stock (the participant's `rows` is empty): named here. A request without all three
        # is only a known key's (see resolve): the transaction answers it.
        named = (None if customer_id is None or currency is None or request.amount is None
                 else {account_name(customer_id, currency): amount})
        try:
            return await self.ledger.hold(hold_key, resolve, expires_at, named)
        except Unavailable as short:
            # From the ledger's record (a duplicate answers with what the first delivery was refused for).
            first = short.shortages[0] if short.shortages else Shortage(resource="", requested=amount, available=0)
            unit = first.resource.rpartition("/")[2] or currency
            raise declined(first.requested, first.available, f"the wallet holds {first.available} {unit}, the "
                           f"total is {first.requested} {unit}") from None
        except UnknownResource as unknown:
            owner, _, unit = unknown.resource.rpartition("/")
            raise declined(amount, 0, f"{owner} has no wallet in {unit}") from None

    async def refund(self, hold_key: str, refund_key: str, amount: int | None = None) -> RefundResult:
        if amount is not None and amount < 0:
            raise InvalidRequest("a refund amount is never negative")
        if not refund_key or len(refund_key) > 256:
            raise InvalidRequest("a refund key must have 1 to 256 characters")
        async with driver_transaction(self.engine) as db:
            status = await db.fetchval(HOLD_STATUS, hold_key)
            if status is None:
                raise HoldNotActive(hold_key, None)
            if await db.fetchval(CLAIM_REFUND, refund_key, hold_key) is None:
                return await self._recorded_refund(db, refund_key, hold_key)
            left = await db.fetchrow(LEFT_TO_REFUND, hold_key)
            if left is None or left["status"] != HoldStatus.CONFIRMED.value:
                raise HoldNotActive(hold_key, HoldStatus(left["status"]) if left is not None else None)
            wanted = left["left_over"] if amount is None else amount
            taken = await db.fetchrow(TAKE_BACK, hold_key, wanted)
            if taken is None:
                raise InvalidRequest(f"refund of {wanted} is more than is left of the capture ({left['left_over']})")
            await db.fetchval(UNSELL, taken["inventory_id"], wanted)
            await db.execute(SET_REFUND, refund_key, wanted)
            currency = await db.fetchval(f"SELECT currency FROM {_INV} WHERE id = $1", taken["inventory_id"])
        return RefundResult(
            hold_key=hold_key, refund_key=refund_key, amount=wanted, refunded=taken["refunded"],
            captured=taken["captured"] - taken["refunded"], currency=currency,
        )

    async def _recorded_refund(self, db: Driver, refund_key: str, hold_key: str) -> RefundResult:
        row: Record = await db.fetchrow(RECORDED_REFUND, refund_key)
        if row["hold_key"] != hold_key:
            raise InvalidRequest(f"refund key {refund_key} was used for another hold")
        account = await db.fetchrow(ACCOUNT_OF_HOLD, hold_key)
        return RefundResult(
            hold_key=hold_key, refund_key=refund_key, amount=row["amount"], refunded=row["refunded"],
            captured=account["captured"] - row["refunded"], currency=account["currency"],
        )

    async def alternatives(self, request: WalletRequest) -> list[Alternative]:
        return []

    async def audit(self) -> list[Violation]:
        async with pooled_driver(self.engine) as db:
            rows = await db.fetch(AUDIT)
            keys = await db.fetch(AUDIT_KEYS)
        found = [
            Violation(service=self.name, resource=row["resource"], problem=(
                f"balance {row['capacity']}, authorized {row['held']} (ACTIVE: {row['active']}), captured "
                f"{row['sold']} (captures less refunds: {row['captured']})"
            ))
            for row in rows
        ]
        found += [
            Violation(service=self.name, resource=row["hold_key"], problem=(
                f"{row['status']} hold: refunded {row['refunded']}, refunds recorded {row['refunds']}, captured "
                f"{row['captured']}"
            ))
            for row in keys
        ]
        return found

    # -- the account ---------------------------------------------------------------------------------------------

    async def unknown(self, request: WalletRequest) -> str | None:
        return None  # a missing wallet is a decline (409 naming payment), decided under the ledger's lock

    async def availability(self, resource_id: str, query: BaseModel = WalletQuery()) -> WalletView:
        currency = expect(query, WalletQuery).currency
        async with read_transaction(self.engine) as conn:
            return await self._view(conn, resource_id, currency)

    async def upsert(self, resource_id: str, body: BaseModel) -> WalletView:
        wanted = expect(body, WalletBody)
        async with ledger_transaction(self.engine) as conn:
            await self._lock_rows(conn, Inventory.customer_id == resource_id, Inventory.currency == wanted.currency)
            await self._set_capacity(
                conn, {"customer_id": resource_id, "currency": wanted.currency},
                account_name(resource_id, wanted.currency), wanted.balance,
            )
            return await self._view(conn, resource_id, wanted.currency)

    async def seed_demo(self, today: date) -> None:
        """Nothing: wallets are the operator's to fund (the storefront shows how)."""

    async def _view(self, conn: AsyncConnection, customer_id: str, currency: str | None) -> WalletView:
        query = select(Inventory.currency, Inventory.capacity, Inventory.held, Inventory.sold).where(
            Inventory.customer_id == customer_id
        )
        if currency is not None:
            query = query.where(Inventory.currency == currency)
        rows = (await conn.execute(query.order_by(Inventory.currency))).all()
        if not rows:
            raise UnknownResource(customer_id if currency is None else account_name(customer_id, currency))
        if len(rows) > 1:
            held = ", ".join(row.currency for row in rows)
            raise InvalidRequest(f"{customer_id} has wallets in {held}: name one with ?currency=")
        row = rows[0]
        return WalletView(
            customer_id=customer_id, currency=row.currency, balance=row.capacity, authorized=row.held,
            captured=row.sold, available=row.capacity - row.held - row.sold,
        )
