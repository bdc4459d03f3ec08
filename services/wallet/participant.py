"""The wallet participant's declaration: a payment, a participant of another kind.

It answers the checkout body's `payment` (`{"method": "wallet"}`) and holds (`stage` 1) the checkout's total: the API's
quote, beside the inventory's holds (`derive_quoted`), refused as `repriced` when the held lines add up to anything
else; without a quote, after the holds, the total of their priced lines (`derive`). It confirms (captures) before the
inventory, declines with services.errors.Declined (409 REJECTED naming `payment`), refunds a capture by key, and has no
inventory rows: no unit limits, no sold-out fast path, no catalogue offers. Its HTTP resource is an account: `PUT`
(operator) and `GET` (the customer's own, or the operator) `/v1/wallets/{customer_id}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

from services.errors import Declined
from services.money import MixedCurrencies, total_of
from services.participant import InventoryService, Participant, ResourceRoutes
from services.types import HoldResult, Money, Shortage
from services.wallet.schemas import PaymentMethod, WalletBody, WalletQuery, WalletRequest, WalletView

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.protocol import AvailabilitySink

# What a decline names in `unavailable` (the checkout-body field): "payment", not a row of stock.
PAYMENT = "payment"


def declined(requested: int, available: int, reason: str) -> Declined:
    return Declined(Shortage(resource=PAYMENT, requested=requested, available=available, reason=reason))


class WalletParticipant(Participant[WalletRequest]):
    name = "wallet"
    field = PAYMENT
    title = "Payment"
    request_model = WalletRequest
    stage = 1
    inventory = False
    requires_prices = True
    refunds = True
    routes = ResourceRoutes(
        collection="wallets", id_name="customer_id", noun="wallet", query=WalletQuery,
        availability=WalletView, upsert=WalletBody,
        availability_summary="A customer's travel-credit wallet",
        upsert_summary="Create a customer's wallet or set its balance",
        upsert_description="Sets the balance of the customer's wallet in `currency` (created when absent). A "
        "balance below what is authorized + captured is refused (422).",
        read_path="/{collection}/{id}", write_path="/{collection}/{id}", read_access="owner", tag="wallets",
    )

    def demo_offers(self, today: date) -> list[WalletRequest]:
        return [WalletRequest()]

    def body_type(self) -> object:
        return PaymentMethod

    def to_request(self, body: object) -> WalletRequest:
        return WalletRequest(method=PaymentMethod.model_validate(body).method)

    def to_body(self, request: WalletRequest) -> dict[str, object]:
        return {"method": request.method}

    def derive(self, request: WalletRequest, customer_id: str, holds: Mapping[str, HoldResult]) -> WalletRequest:
        """The authorization: the total of every other part's priced lines, in their one currency."""
        others = [hold for service, hold in holds.items() if service != self.name]
        unpriced = [line.resource for hold in others for line in hold.lines if line.unit_price is None]
        if unpriced:  # the API refuses these (422); an operator may have removed a price since
            raise declined(0, 0, f"no price for {', '.join(unpriced)}: a paid checkout needs a price on every line")
        try:
            total = total_of(others)
        except MixedCurrencies as error:
            raise declined(0, 0, str(error)) from None
        return self._authorization(request, customer_id, total)

    def derive_quoted(self, request: WalletRequest, customer_id: str, quote: Money) -> WalletRequest:
        """The authorization of the API's quote, placed while the inventory holds."""
        return self._authorization(request, customer_id, quote)

    def repriced(self, quoted: WalletRequest, held: WalletRequest) -> Declined:
        return declined(held.amount or 0, quoted.amount or 0, (
            f"the prices changed while the checkout was placed: the total is {held.amount} {held.currency}, "
            f"{quoted.amount} {quoted.currency} was quoted; place the checkout again"))

    @staticmethod
    def _authorization(request: WalletRequest, customer_id: str, total: Money | None) -> WalletRequest:
        if total is None or total.amount == 0:
            raise declined(0, 0, "nothing to pay: a paid checkout needs priced lines")
        return WalletRequest(
            method=request.method, customer_id=customer_id, amount=total.amount, currency=total.currency
        )

    def describe(self, request: WalletRequest) -> str:
        if request.amount is None:
            return f"{request.method} (the total)"
        return f"{request.method} {request.amount} {request.currency} for {request.customer_id}"

    def resources(self, request: WalletRequest) -> list[str]:
        return [request.method]  # CheckoutResources: 'wallet:wallet'

    def build_service(
        self, engine: AsyncEngine, sink: AvailabilitySink | None = None
    ) -> InventoryService[WalletRequest]:
        from services.wallet.service import WalletService

        # No availability cache: an account is no row of stock, and balances are nobody else's to read.
        return WalletService(engine, None)
