"""The wallet's HTTP and saga models: the checkout part (`payment`), the derived authorization request, the
operator's account body and the account view."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.types import MAX_AMOUNT, Amount, Currency, Frozen, Identifier, JsonInt


class PaymentMethod(Frozen):
    """The checkout body's `payment`: pay the checkout's total from the customer's travel-credit wallet once the
    inventory is held (the wallet in the currency of the lines' prices)."""

    method: Literal["wallet"] = Field(description="`wallet`: the customer's travel credit.")


class WalletRequest(Frozen):
    """What the saga asks the wallet: the checkout's `payment` part, and once the inventory holds are placed, the
    customer, the total and its currency (Participant.derive)."""

    method: Literal["wallet"] = "wallet"
    customer_id: Identifier | None = None
    amount: JsonInt | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    currency: str | None = None


class WalletQuery(Frozen):
    currency: Currency | None = Field(
        default=None, description="Which of the customer's wallets; absent: the only one (422 when it has several)."
    )


class WalletBody(Frozen):
    """Create the customer's wallet in `currency`, or set its balance. A balance below what is authorized + captured
    is refused (422)."""

    currency: Currency
    balance: Amount = Field(description="Travel credit in minor units of `currency`.")


class WalletView(BaseModel):
    customer_id: str
    currency: str
    balance: int = Field(description="available + authorized + captured, in minor units.")
    authorized: int = Field(description="Held for checkouts not yet confirmed.")
    captured: int = Field(description="Paid for confirmed checkouts (less what was refunded).")
    available: int
