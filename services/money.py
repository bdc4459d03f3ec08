"""Money: amounts in integer minor units with an ISO 4217 currency, and a checkout's total.

Contract:
- An amount is a JSON integer of minor units (cents, pence, yen): no fraction, no float, never negative, at most
  `MAX_AMOUNT` (no int64 overflow when multiplied by a quantity and summed over a checkout's lines).
- A currency is an ISO 4217 alphabetic code from pycountry's maintained list (upper case, e.g. `EUR`); anything
  else is refused at the model, so an unknown code is a 422 before any ledger sees it.
- `total_of(holds)` adds up the priced lines of a checkout's holds; lines in two currencies raise MixedCurrencies.
  A line's `amount` is `unit_price * quantity`, fixed when the hold was placed (the ledger records the unit price).

Pure (no I/O): safe to import in workflow code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, model_validator

from services.types import MAX_AMOUNT, Amount, Currency, HoldLine, HoldResult, Money, Price, price_of

__all__ = ["MAX_AMOUNT", "Amount", "Currency", "MixedCurrencies", "Money", "Price", "price_of", "total_of"]

CURRENCY_FIELD = "currency"


def prices_rule(prices: str, kinds: str) -> Any:
    """The model validator of an operator upsert with a price map (`prices`, e.g. `fares`) beside its capacity map
    (`kinds`, e.g. `seats`) and a `currency`: prices need their currency and name only kinds the upsert names."""

    def check(model: BaseModel) -> BaseModel:
        priced: dict[str, int] | None = getattr(model, prices)
        currency: str | None = getattr(model, CURRENCY_FIELD)
        if priced is None and currency is None:
            return model
        if priced is None or currency is None:
            raise ValueError(f"`{prices}` and `currency` go together: give both or neither")
        named: dict[str, int] = getattr(model, kinds)
        extra = sorted(set(priced) - set(named))
        if extra:
            raise ValueError(f"`{prices}` names {', '.join(extra)}, not in `{kinds}`: price only what is offered")
        return model

    return model_validator(mode="after")(check)


class MixedCurrencies(ValueError):
    """One checkout's lines are priced in more than one currency."""

    def __init__(self, currencies: Iterable[str]) -> None:
        self.currencies = sorted(set(currencies))
        super().__init__(f"one checkout is paid in one currency; its lines are priced in {', '.join(self.currencies)}")


def priced_line(line: HoldLine) -> bool:
    return line.unit_price is not None and line.currency is not None


def total_of(holds: Iterable[HoldResult], *, services: Iterable[str] | None = None) -> Money | None:
    """The sum of every priced line of `holds` (of `services` only, when given); None when no line is priced.
    MixedCurrencies when two lines disagree."""
    wanted = set(services) if services is not None else None
    amount = 0
    currencies: set[str] = set()
    for hold in holds:
        if wanted is not None and hold.service not in wanted:
            continue
        for line in hold.lines:
            if line.unit_price is None or line.currency is None:
                continue
            currencies.add(line.currency)
            amount += line.amount if line.amount is not None else line.unit_price * line.quantity
    if not currencies:
        return None
    if len(currencies) > 1:
        raise MixedCurrencies(currencies)
    return Money(amount=amount, currency=currencies.pop())
