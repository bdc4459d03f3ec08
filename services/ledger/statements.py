"""The ledger's SQL text for one service schema, generated from that service's table metadata.

Sent on a pooled asyncpg connection (services.ledger.transaction.driver_transaction, or `pooled_driver` for reads):
asyncpg prepares each text once per connection and reuses it, so a call costs a round trip and little Python.
Parameters are positional ($1, $2, ...). Hold statuses are written as literals from HoldStatus.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import FromClause, Table
from sqlalchemy.dialects import postgresql

from services.ledger.transaction import LOCK_TIMEOUT
from services.types import HoldStatus

_PREPARER = postgresql.dialect().identifier_preparer

# The columns a RowState is built from, in RowState's order.
ROW_COLUMNS = "resource, capacity, held, sold, version"


def _prefixed(alias: str, columns: str) -> str:
    """`a.x, a.y` from `x, y`."""
    return ", ".join(f"{alias}.{column.strip()}" for column in columns.split(","))


def qualified(table: FromClause) -> str:
    """`schema.table`, quoted where PostgreSQL needs it (takes a mapped class's `__table__`)."""
    if not isinstance(table, Table):
        raise TypeError(f"not a table: {table!r}")
    return _PREPARER.format_table(table)


def _status(status: HoldStatus) -> str:
    return f"'{status.value}'"


ACTIVE = _status(HoldStatus.ACTIVE)
# The ledger transaction's lock_timeout (services.ledger.transaction), for a statement that runs without one:
# set_config(..., true) lasts until the statement's implicit transaction ends. A CTE named `bounded`; a statement
# makes sure it runs before any lock wait by reading it (its value is never NULL).
BOUNDED = f"bounded AS (SELECT set_config('lock_timeout', '{LOCK_TIMEOUT}', true) AS lock_timeout)"


def _new_key(holds: str) -> str:
    """The extra condition of a hold outside a transaction: the key is new, and the lock wait is bounded."""
    return f"""AND NOT EXISTS (SELECT FROM {holds} WHERE hold_key = $1)
                    AND (SELECT lock_timeout FROM bounded) IS NOT NULL"""


def _take_line(inv: str, lines: str, guard: str = "", by: str = "id") -> str:
    """CTEs `taken` and `added` of one line: $1 key, $2 the row's `by` (its id, or its resource name), $3 quantity."""
    return f"""taken AS (
                    UPDATE {inv} SET held = held + $3, version = version + 1
                    WHERE {by} = $2 AND held + sold + $3 <= capacity {guard}
                    RETURNING id, {ROW_COLUMNS}, unit_price, currency
                ), added AS (
                    INSERT INTO {lines} (hold_key, inventory_id, quantity, unit_price, currency)
                    SELECT $1, id, $3, unit_price, currency FROM taken
                )"""


def _take_lines(inv: str, lines: str, guard: str = "", by: str = "id") -> str:
    """CTEs of several lines, all or nothing: $1 key, $2 the rows' `by` (inventory ids, or resource names), $3
    quantities. `locked` takes the rows' locks in ascending id (the one lock order, whatever names them; a FOR
    UPDATE CTE is never inlined, and `room`, which `taken` joins, reads all of it first) and sees each row as last
    committed; `taken` raises `held` only when every row has room (the CHECK on the counters stands behind it), and
    `added` writes the lines with the rows' prices as they are under those locks. A short or missing row changes
    nothing, so nothing is left to undo (no savepoint)."""
    array = "bigint[]" if by == "id" else "text[]"
    return f"""wanted AS (
                    SELECT t.{by}, t.quantity FROM unnest($2::{array}, $3::integer[]) AS t({by}, quantity)
                ), locked AS (
                    SELECT id, {ROW_COLUMNS} FROM {inv} WHERE {by} = ANY($2::{array}) {guard}
                    ORDER BY id FOR UPDATE
                ), room AS (
                    SELECT count(*) = 0 AS ok FROM wanted w LEFT JOIN locked l ON l.{by} = w.{by}
                    WHERE l.id IS NULL OR l.held + l.sold + w.quantity > l.capacity
                ), taken AS (
                    UPDATE {inv} i SET held = i.held + w.quantity, version = i.version + 1
                    FROM wanted w, room WHERE i.{by} = w.{by} AND room.ok
                    RETURNING i.id, {_prefixed("i", ROW_COLUMNS)}, i.unit_price, i.currency
                ), added AS (
                    INSERT INTO {lines} (hold_key, inventory_id, quantity, unit_price, currency)
                    SELECT $1, t.id, w.quantity, t.unit_price, t.currency FROM taken t JOIN wanted w ON w.{by} = t.{by}
                )"""


def _claim_taken(holds: str) -> str:
    """CTE `claimed`: the key ACTIVE until $4, written only when `taken` took the lines."""
    return f"""claimed AS (
                    INSERT INTO {holds} (hold_key, status, expires_at)
                    SELECT $1, {ACTIVE}, $4::timestamptz WHERE EXISTS (SELECT FROM taken)
                )"""


@dataclass(frozen=True)
class LedgerStatements:
    # hold
    claim_key: str
    take_line: str
    take_lines: str
    hold_line: str
    hold_lines: str
    hold_named_line: str
    hold_named_lines: str
    row: str
    reject: str
    # confirm, release, decline, expire
    tombstone: str
    refusal_tombstone: str
    end_active: str
    end_refused: str
    expire: str
    lines: str
    sell: str
    unhold: str
    # return (a cancelled sale)
    end_confirmed: str
    unsell: str
    # extend
    extend: str
    # duplicates and not-ACTIVE answers
    recorded: str
    recorded_lines: str
    # reads
    available: str
    prices: str
    # operators
    overdue: str
    audit: str
    # the saga-vs-ledger audit (workflows.saga_audit)
    holds_page: str

    @classmethod
    def build(cls, inventory: Table, holds: Table, hold_lines: Table, holdable: str = "") -> LedgerStatements:
        """`holdable`: the participant's own condition on an inventory row for a hold by name (SQL on the row,
        named by its qualified table, e.g. a flight not departed), where its resolver would refuse a row that
        exists; empty when a row's existence is all its resolver checks."""
        inv, h, lines = qualified(inventory), qualified(holds), qualified(hold_lines)
        named_guard = _new_key(h) + (f" AND {holdable}" if holdable else "")
        # reason is jsonb: sent and read as text, so these statements do not depend on the driver's json codec.
        return cls(
            # ON CONFLICT waits for a concurrent insert of the same key to commit, then sees its outcome.
            claim_key=f"""INSERT INTO {h} (hold_key, status, expires_at) VALUES ($1, {ACTIVE}, $2)
                ON CONFLICT DO NOTHING RETURNING hold_key""",
            # One line (a seat class, a single sku), in one statement: the row's `held` raised if it has room, and the
            # line written with the row's price as it is under the lock that UPDATE holds. No row: short, nothing
            # written. Lighter than `take_lines` (no array, no sort, no second lock pass) for the commonest hold.
            take_line=f"WITH {_take_line(inv, lines)} SELECT * FROM taken",
            # The lines of a hold of more than one in one statement, all or nothing (see `_take_lines`); the answer
            # is every row taken, or, when one is short, every row as locked, for the shortages.
            take_lines=f"""WITH {_take_lines(inv, lines)}
                SELECT true AS taken, * FROM taken
                UNION ALL
                SELECT false, l.*, NULL, NULL FROM locked l, room WHERE NOT room.ok""",
            # The commonest hold whole, in one statement outside a transaction block (PostgreSQL commits it alone):
            # the lines taken as above, and the key claimed ACTIVE only if they were. No row answered: nothing was
            # written (a known key, a short row), and the transaction (claim_key ...) decides and records the
            # outcome. A concurrent claim of the same key fails the statement (unique violation), all of it.
            # `bounded`: the transaction's lock_timeout, set for this statement's implicit transaction alone, before
            # any lock is waited for.
            hold_line=f"""WITH {BOUNDED}, {_take_line(inv, lines, _new_key(h))}, {_claim_taken(h)}
                SELECT * FROM taken""",
            hold_lines=f"""WITH {BOUNDED}, {_take_lines(inv, lines, _new_key(h))}, {_claim_taken(h)}
                SELECT * FROM taken""",
            # The same, the rows named by their resource (unique, never changed) rather than resolved to ids first:
            # one round trip for the whole hold. A row that is missing, short or not `holdable` takes nothing, and
            # the transaction resolves the request and refuses it for its reason.
            hold_named_line=f"""WITH {BOUNDED}, {_take_line(inv, lines, named_guard, by="resource")},
                {_claim_taken(h)} SELECT * FROM taken""",
            hold_named_lines=f"""WITH {BOUNDED}, {_take_lines(inv, lines, named_guard, by="resource")},
                {_claim_taken(h)} SELECT * FROM taken""",
            row=f"SELECT {ROW_COLUMNS} FROM {inv} WHERE id = $1",
            reject=f"""UPDATE {h} SET status = {_status(HoldStatus.REJECTED)}, expires_at = NULL,
                reason = $2::text::jsonb WHERE hold_key = $1""",
            tombstone=f"""INSERT INTO {h} (hold_key, status, reason)
                VALUES ($1, {_status(HoldStatus.RELEASED)}, '{{"tombstone": true}}')
                ON CONFLICT DO NOTHING RETURNING hold_key""",
            # A key refused by the saga after it was held (Ledger.decline): REJECTED with the refusal as its reason,
            # so that the same key asked again is refused for it.
            refusal_tombstone=f"""INSERT INTO {h} (hold_key, status, reason)
                VALUES ($1, {_status(HoldStatus.REJECTED)}, $2::text::jsonb)
                ON CONFLICT DO NOTHING RETURNING hold_key""",
            end_active=f"""UPDATE {h} SET status = $2, updated_at = now()
                WHERE hold_key = $1 AND status = {ACTIVE} RETURNING expires_at""",
            end_refused=f"""UPDATE {h} SET status = {_status(HoldStatus.REJECTED)}, reason = $2::text::jsonb,
                updated_at = now() WHERE hold_key = $1 AND status = {ACTIVE} RETURNING expires_at""",
            expire=f"""UPDATE {h} SET status = {_status(HoldStatus.EXPIRED)}, updated_at = now()
                WHERE hold_key = $1 AND status = {ACTIVE} AND expires_at < $2 RETURNING hold_key""",
            # Ascending inventory id: the one lock order every ledger transaction follows.
            lines=f"""SELECT inventory_id, quantity, unit_price, currency FROM {lines} WHERE hold_key = $1
                ORDER BY inventory_id""",
            sell=f"""UPDATE {inv} SET held = held - $2, sold = sold + $2, version = version + 1
                WHERE id = $1 RETURNING {ROW_COLUMNS}""",
            unhold=f"""UPDATE {inv} SET held = held - $2, version = version + 1
                WHERE id = $1 RETURNING {ROW_COLUMNS}""",
            end_confirmed=f"""UPDATE {h} SET status = {_status(HoldStatus.RETURNED)}, updated_at = now()
                WHERE hold_key = $1 AND status = {_status(HoldStatus.CONFIRMED)} RETURNING expires_at""",
            # Never more than was sold: a row that would go below zero matches nothing (the caller rolls back).
            unsell=f"""UPDATE {inv} SET sold = sold - $2, version = version + 1
                WHERE id = $1 AND sold >= $2 RETURNING {ROW_COLUMNS}""",
            extend=f"""UPDATE {h} SET expires_at = $2, updated_at = now()
                WHERE hold_key = $1 AND status = {ACTIVE} RETURNING hold_key""",
            recorded=f"SELECT status, expires_at, reason::text AS reason FROM {h} WHERE hold_key = $1",
            recorded_lines=f"""SELECT i.resource, l.quantity, l.unit_price, l.currency
                FROM {lines} l JOIN {inv} i ON i.id = l.inventory_id
                WHERE l.hold_key = $1 ORDER BY l.inventory_id""",
            available=f"""SELECT resource, capacity - held - sold AS available FROM {inv}
                WHERE resource = ANY($1::text[])""",
            prices=f"SELECT resource, unit_price, currency FROM {inv} WHERE resource = ANY($1::text[])",
            overdue=f"""SELECT hold_key FROM {h} WHERE status = {ACTIVE} AND expires_at < $1
                ORDER BY expires_at LIMIT $2""",
            audit=f"""SELECT resource, capacity, held, sold, active, confirmed FROM (
                    SELECT i.resource, i.capacity, i.held, i.sold,
                        coalesce(sum(l.quantity) FILTER (WHERE h.status = {ACTIVE}), 0) AS active,
                        coalesce(sum(l.quantity) FILTER (WHERE h.status = {_status(HoldStatus.CONFIRMED)}), 0)
                            AS confirmed
                    FROM {inv} i
                    LEFT JOIN {lines} l ON l.inventory_id = i.id
                    LEFT JOIN {h} h ON h.hold_key = l.hold_key
                    GROUP BY i.id
                ) counted
                WHERE held != active OR sold != confirmed OR held < 0 OR sold < 0 OR held + sold > capacity
                ORDER BY resource""",
            # ACTIVE only, with the literal the partial index holds_active_expiry is declared with: a page reads the
            # ACTIVE holds (bounded by what is on sale), never the finished ones, however many the ledger keeps.
            holds_page=f"""SELECT hold_key, status, expires_at, updated_at FROM {h}
                WHERE status = {ACTIVE} AND hold_key > $1
                ORDER BY hold_key LIMIT $2""",
        )
