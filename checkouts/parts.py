"""A cancellation's `parts`: checkout-body field names (`flight`, `hotel`, `items`, `car`) to participant names,
and the 422s for parts that do not exist or that the checkout does not have."""

from __future__ import annotations

from checkouts.problems import ProblemError
from services.registry import PARTICIPANTS
from workflows.models import CheckoutView

_BY_FIELD = {p.field: p.name for p in PARTICIPANTS}
_FIELD_OF = {p.name: p.field for p in PARTICIPANTS}
# Participants that are not inventory (a payment): refunded with the parts they paid for.
_PAYMENTS = {p.field for p in PARTICIPANTS if not p.inventory}


def _invalid(detail: str) -> ProblemError:
    return ProblemError(422, "invalid-request", "Invalid request", detail)


def cancellable_parts(body: object) -> list[str]:
    """The participant names a cancel body asks for; [] without a body (the whole checkout)."""
    given = getattr(body, "parts", None)
    if given is None:
        return []
    parts = [str(getattr(p, "value", p)) for p in given]
    unknown = [p for p in parts if p not in _BY_FIELD]
    if unknown:
        raise _invalid(f"unknown parts {', '.join(map(repr, unknown))}: name them by checkout-body field "
                       f"({', '.join(_BY_FIELD)})")
    paying = [p for p in parts if p in _PAYMENTS]
    if paying:  # a payment is given back with what it paid for (a refund), never on its own
        raise _invalid(f"{', '.join(paying)} cannot be cancelled on its own: cancel the parts it paid for "
                       "(their share is refunded) or the whole checkout")
    return sorted({_BY_FIELD[p] for p in parts})


def check_parts_known(view: CheckoutView, wanted: list[str]) -> None:
    """422 when the checkout has no such part."""
    have = {h.service for h in view.holds}
    missing = [_FIELD_OF[p] for p in wanted if p not in have]
    if missing:
        raise _invalid(f"the checkout has no {', '.join(missing)} part")


def field_of(name: str) -> str:
    return _FIELD_OF.get(name, name)
