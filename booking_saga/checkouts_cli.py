"""`booking-saga checkouts ...`: find a checkout and act on it, for operators (the runbook's commands).

- `list [--status S] [--customer C] [--resource R] [--limit N]`: a visibility query on the search attributes
  CheckoutStatus, CustomerId, CheckoutResources (workflows/search_attributes.py), newest first; the customer is
  looked for, and shown, as its CustomerId pseudonym (CHECKOUT_ID_SECRET).
- `show ID`: the checkout's view (the saga's while it runs, its booking record once settled or once Temporal has
  deleted the workflow: checkouts.bookings.view_of) and, for each participant, that hold beside the ledger's own row for
  that hold key (status, expiry, lines).
- `retry-compensation ID`: the `retry_compensation` signal (a NEEDS_ATTENTION checkout releases again now).
- `cancel ID [--part P ...]`: cancel the checkout, or only the parts named by their checkout-body field, as the
  API's cancel does (checkouts.bookings.cancel): a HELD one's holds released, a sale given back; a refusal (a closed
  cancellation window, a state that cannot be cancelled) prints the reason and exits 1.

Each command prints plain text (or JSON with --json) and returns the process exit code: 0 done, 1 refused or not
found. The functions take a Client and the services, so tests drive them against real servers.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from services.registry import NAMES
from services.types import HoldResult
from settings import Settings, get_settings
from workflows import search_attributes
from workflows.models import WORKFLOW_NAME, CheckoutStatus, CheckoutView

if TYPE_CHECKING:
    from temporalio.client import Client

    from services.bookings.records import BookingRecords

# The checkout calls (checkouts/: the API's own, below it) are imported where used: every `booking-saga` command
# builds this parser. Nothing of api/ is imported here.

DEFAULT_LIMIT = 50
# Values go into a visibility query between quotes: refuse anything that could close them.
_QUERY_VALUE = re.compile(r"^[A-Za-z0-9._:/@-]{1,200}$")


def add_parser(sub: Any) -> None:
    """The `checkouts` sub-command and its own sub-commands, on `booking-saga`'s subparsers."""
    checkouts = sub.add_parser("checkouts", help="operators: list, show, retry a compensation, cancel a checkout")
    actions = checkouts.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="checkouts by status, customer or resource (newest first)")
    listing.add_argument("--status", choices=[s.value for s in CheckoutStatus])
    listing.add_argument("--customer", help="the customer id (matched through its CustomerId pseudonym)")
    listing.add_argument("--resource", help='CheckoutResources, e.g. "orders:SKU-MUG"')
    listing.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="status, holds, history, and the ledgers' rows for the same holds")
    show.add_argument("checkout_id")
    show.add_argument("--json", action="store_true")
    retry = actions.add_parser("retry-compensation", help="signal a NEEDS_ATTENTION checkout to release again now")
    retry.add_argument("checkout_id")
    cancel = actions.add_parser("cancel", help="cancel a checkout or some of its parts, a sale included")
    cancel.add_argument("checkout_id")
    cancel.add_argument("--part", action="append", default=[], dest="parts",
                        help="a part to cancel, by its checkout-body field (repeat for several)")


def visibility_query(status: str | None = None, customer: str | None = None, resource: str | None = None) -> str:
    clauses = [f"WorkflowType = '{WORKFLOW_NAME}'"]
    for key, value in ((search_attributes.CHECKOUT_STATUS, status), (search_attributes.CUSTOMER_ID, customer),
                       (search_attributes.RESOURCES, resource)):
        if value is None:
            continue
        if not _QUERY_VALUE.fullmatch(value):
            raise ValueError(f"{key.name}: {value!r} is not a valid value")
        clauses.append(f"{key.name} = '{value}'")
    return " AND ".join(clauses)


async def list_checkouts(
    client: Client, *, status: str | None = None, customer: str | None = None, resource: str | None = None,
    limit: int = DEFAULT_LIMIT, customer_secret: str = "",
) -> list[dict[str, Any]]:
    """One row per matching checkout: id, status, customer (the CustomerId pseudonym), resources, started,
    closed. `customer` is a customer id, looked for as its pseudonym under `customer_secret` (CHECKOUT_ID_SECRET)."""
    if customer is not None:
        visibility_query(customer=customer)  # the same check of the value as the other filters
        customer = search_attributes.customer_pseudonym(customer, customer_secret)
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(visibility_query(status, customer, resource), limit=limit):
        attributes = execution.typed_search_attributes
        rows.append({
            "checkout_id": execution.id,
            "status": attributes.get(search_attributes.CHECKOUT_STATUS),
            "customer": attributes.get(search_attributes.CUSTOMER_ID),
            "resources": list(attributes.get(search_attributes.RESOURCES) or []),
            "started": _iso(execution.start_time),
            "closed": _iso(execution.close_time),
        })
    return rows


async def show_checkout(
    client: Client, services: Mapping[str, object], checkout_id: str, records: BookingRecords | None = None
) -> dict[str, Any]:
    """The checkout's view (saga or record) and, per participant, its hold as the view and the ledger show it."""
    from checkouts import bookings

    view = await bookings.view_of(client, records, checkout_id)
    by_service = {hold.service: hold for hold in view.holds}
    holds: list[dict[str, Any]] = []
    for name in NAMES:
        in_ledger = await _ledger_hold(services.get(name), f"{checkout_id}:{name}")
        in_saga = by_service.get(name)
        if in_saga is None and in_ledger is None:
            continue
        holds.append({"service": name, "saga": _hold(in_saga), "ledger": _hold(in_ledger)})
    return {
        "checkout_id": view.checkout_id,
        "customer_id": view.customer_id,
        "status": view.status.value,
        "expires_at": _iso(view.expires_at),
        "error": view.error,
        "holds": holds,
        "history": [{"status": c.status.value, "at": _iso(c.at), "reason": c.reason} for c in view.history],
    }


async def retry_compensation(client: Client, checkout_id: str) -> CheckoutView:
    """Signal the retry; answers the view as it was (the retry runs in the saga's next workflow task)."""
    from checkouts import saga

    return await saga.retry_compensation(client, checkout_id)


async def cancel_checkout(
    client: Client, checkout_id: str, parts: list[str] | None = None, *, settings: Settings | None = None,
    records: BookingRecords | None = None,
) -> CheckoutView:
    """Cancel as the API does (checkouts.bookings.cancel); raises ProblemError with the reason when refused."""
    from checkouts import bookings
    from checkouts.parts import cancellable_parts

    wanted = cancellable_parts(argparse.Namespace(parts=parts)) if parts else []
    return await bookings.cancel(client, settings or Settings(), records, checkout_id, wanted)


async def _ledger_hold(service: object | None, hold_key: str) -> HoldResult | None:
    ledger = getattr(service, "ledger", None)  # a participant served elsewhere has no ledger here
    read: Callable[[str], Any] | None = getattr(ledger, "hold_view", None)
    if read is None:
        return None
    found: HoldResult | None = await read(hold_key)
    return found


def _hold(hold: HoldResult | None) -> dict[str, Any] | None:
    if hold is None:
        return None
    return {
        "status": hold.status.value,
        "expires_at": _iso(hold.expires_at),
        "lines": [f"{line.resource} x{line.quantity}" for line in hold.lines],
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


# -- printing ------------------------------------------------------------------------------------------------


def print_list(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        print("no checkout matches", file=out)
        return
    print(f"{'CHECKOUT':<40} {'STATUS':<16} {'CUSTOMER':<20} {'STARTED':<26} RESOURCES", file=out)
    for row in rows:
        print(f"{row['checkout_id']:<40} {row['status'] or '?':<16} {row['customer'] or '?':<20} "
              f"{row['started'] or '':<26} {', '.join(row['resources'])}", file=out)


def print_show(shown: dict[str, Any], out: TextIO) -> None:
    print(f"checkout {shown['checkout_id']}  customer {shown['customer_id']}", file=out)
    print(f"status   {shown['status']}" + (f"  expires {shown['expires_at']}" if shown["expires_at"] else ""),
          file=out)
    if shown["error"]:
        print(f"error    {shown['error']}", file=out)
    print("\nholds (saga | ledger)", file=out)
    if not shown["holds"]:
        print("  none", file=out)
    for hold in shown["holds"]:
        print(f"  {hold['service']:<10} saga: {_hold_text(hold['saga']):<60} | ledger: {_hold_text(hold['ledger'])}",
              file=out)
    print("\nhistory", file=out)
    for change in shown["history"]:
        print(f"  {change['at']}  {change['status']:<16} {change['reason'] or ''}", file=out)


def _hold_text(hold: dict[str, Any] | None) -> str:
    if hold is None:
        return "-"
    expiry = f" until {hold['expires_at']}" if hold["expires_at"] else ""
    return f"{hold['status']}{expiry} [{'; '.join(hold['lines'])}]"


# -- the command ---------------------------------------------------------------------------------------------


async def run(
    client: Client, services: Mapping[str, object], args: argparse.Namespace, out: TextIO,
    records: BookingRecords | None = None, settings: Settings | None = None,
) -> int:
    """Run one `checkouts` action; the exit code."""
    from temporalio.service import RPCError

    from checkouts import saga
    from checkouts.problems import ProblemError

    try:
        if args.action == "list":
            rows = await list_checkouts(client, status=args.status, customer=args.customer,
                                        resource=args.resource, limit=args.limit,
                                        customer_secret=(settings or get_settings()).checkout_id_secret)
            if args.json:
                print(json.dumps(rows, indent=2), file=out)
            else:
                print_list(rows, out)
            return 0
        if args.action == "show":
            shown = await show_checkout(client, services, args.checkout_id, records)
            if args.json:
                print(json.dumps(shown, indent=2), file=out)
            else:
                print_show(shown, out)
            return 0
        if args.action == "retry-compensation":
            view = await retry_compensation(client, args.checkout_id)
            note = "" if view.status == CheckoutStatus.NEEDS_ATTENTION else " (it is not NEEDS_ATTENTION: no effect)"
            print(f"retry_compensation sent to {args.checkout_id}, which was {view.status.value}{note}", file=out)
            return 0
        if args.action == "cancel":
            try:
                view = await cancel_checkout(client, args.checkout_id, getattr(args, "parts", None),
                                             settings=settings, records=records)
            except saga.RefusedUpdate as refused:
                print(f"cancel refused: {args.checkout_id} is {refused.view.status.value}: {refused.reason}",
                      file=out)
                return 1
            except ProblemError as problem:
                if problem.status == 404:
                    raise
                print(f"cancel refused: {problem.detail}", file=out)
                return 1
            holds = ", ".join(f"{h.service} {h.status.value}" for h in view.holds)
            print(f"{args.checkout_id} is {view.status.value}" + (f" ({holds})" if holds else ""), file=out)
            return 0
    except ProblemError as problem:  # unknown checkout, unreadable state, Temporal down
        print(f"{problem.detail}", file=out)
        return 1
    except (ValueError, RPCError) as error:
        print(f"error: {error}", file=out)
        return 1
    raise ValueError(f"unknown checkouts action {args.action!r}")


async def main(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Connect to Temporal (and, for `show`, the ledgers' databases) and run the action."""
    from runtime.temporal import connect

    client = await connect(settings)
    if args.action not in ("show", "cancel") or not settings.database_url:
        # Without a database `show` prints the saga's side only, and `cancel` reaches running sagas only.
        return await run(client, {}, args, out, settings=settings)
    from services.bookings.records import BookingRecords
    from services.db import Engines

    engines = Engines(settings.database_url, settings.participant_database_urls, pool_size=1)
    try:
        return await run(client, engines.services(), args, out, BookingRecords(engines.default), settings)
    finally:
        await engines.dispose()
