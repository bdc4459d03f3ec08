"""Money without servers: totals of recorded lines, the wallet's derived request and its declines, currencies."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from services.errors import Declined
from services.money import MixedCurrencies, total_of
from services.types import Currency, HoldLine, HoldResult, HoldStatus, Money
from services.wallet.participant import WalletParticipant
from services.wallet.schemas import WalletRequest


def hold(service: str, *lines: tuple[int, int | None, str | None]) -> HoldResult:
    return HoldResult(hold_key=f"co-1:{service}", service=service, status=HoldStatus.ACTIVE, lines=[
        HoldLine(resource=f"r{i}", quantity=q, unit_price=p, amount=None if p is None else p * q, currency=c)
        for i, (q, p, c) in enumerate(lines)
    ])


def test_total_adds_the_recorded_amounts_in_one_currency() -> None:
    total = total_of([hold("flight", (2, 10_000, "EUR")), hold("orders", (3, 1_999, "EUR"), (1, None, None))])
    assert total is not None and (total.amount, total.currency) == (25_997, "EUR")
    assert total_of([hold("orders", (1, None, None))]) is None
    with pytest.raises(MixedCurrencies, match="EUR, USD"):
        total_of([hold("flight", (1, 100, "EUR")), hold("orders", (1, 100, "USD"))])


def test_the_wallet_derives_the_total_or_declines() -> None:
    wallet = WalletParticipant()
    derived = wallet.derive(WalletRequest(), "cust-1", {"flight": hold("flight", (2, 10_000, "EUR"))})
    assert (derived.customer_id, derived.amount, derived.currency) == ("cust-1", 20_000, "EUR")
    for holds, reason in [
        ({"orders": hold("orders", (1, None, None))}, "no price"),
        ({"flight": hold("flight", (1, 1, "EUR")), "orders": hold("orders", (1, 1, "GBP"))}, "one currency"),
        ({"orders": hold("orders", (1, 0, "EUR"))}, "nothing to pay"),
    ]:
        with pytest.raises(Declined, match=reason) as declined:
            wallet.derive(WalletRequest(), "cust-1", holds)
        assert declined.value.shortage.resource == "payment"


def test_the_wallet_authorizes_the_quote_as_it_would_the_held_total() -> None:
    wallet = WalletParticipant()
    quoted = wallet.derive_quoted(WalletRequest(), "cust-1", Money(amount=20_000, currency="EUR"))
    held = wallet.derive(WalletRequest(), "cust-1", {"flight": hold("flight", (2, 10_000, "EUR"))})
    assert quoted == held  # what the saga compares once the holds are placed
    with pytest.raises(Declined, match="nothing to pay"):
        wallet.derive_quoted(WalletRequest(), "cust-1", Money(amount=0, currency="EUR"))
    dearer = wallet.derive(WalletRequest(), "cust-1", {"flight": hold("flight", (2, 10_500, "EUR"))})
    refused = wallet.repriced(quoted, dearer)
    assert (refused.shortage.resource, refused.shortage.requested, refused.shortage.available) == (
        "payment", 21_000, 20_000)
    assert "the total is 21000 EUR, 20000 EUR was quoted" in (refused.shortage.reason or "")


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "GBP"])
def test_iso_4217_codes_are_currencies(code: str) -> None:
    assert TypeAdapter(Currency).validate_python(code) == code


@pytest.mark.parametrize("code", ["EUX", "eur", "EURO", "", "€"])
def test_anything_else_is_not(code: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Currency).validate_python(code)
