"""The storefront page (`GET /demo`) in Chromium against a real `booking-saga dev` stack.

A person books, sees the countdown, confirms and sees availability drop; a sold-out request shows alternatives
and one click books one; a short hold left alone ends EXPIRED (the server's timer decides, the page polls);
a request that gets no answer, a 503 or a rate-limited 429 is sent again with the same Idempotency-Key. Waits are
generous upper bounds for outcomes, never timings.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from api.problems import TYPE_BASE
from tests.browser.conftest import ACTIVE_CHECKOUTS_MAX, DevStack, keep_screenshot
from tests.browser.store import KEY, WAIT, available, expect, hold, item_label, offer, open_store

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

def test_book_see_countdown_confirm_and_availability_drops(dev_stack: DevStack, page: Page, tmp_path: Path) -> None:
    label = item_label(dev_stack, "SKU-MUG")
    open_store(page, dev_stack)
    # Every participant the catalogue lists gets its box, whatever it is called: nothing is hardcoded.
    participants = httpx.get(f"{dev_stack.url}/v1/catalogue", timeout=10).json()["participants"]
    expect(page.locator("#catalogue fieldset legend")).to_have_text([p["title"] for p in participants])
    row = offer(page, label)
    before = available(row)
    assert before > 0

    row.get_by_role("checkbox").check()
    hold(page)
    status = page.locator("#checkout-status")
    expect(status).to_have_text("HELD", timeout=WAIT)
    expect(page.locator("#idempotency-key")).to_have_text(KEY)
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^\d+:\d{2}$"))
    expect(page.get_by_role("button", name="Confirm")).to_be_enabled()
    expect(row.locator(".available")).to_have_attribute("data-available", str(before - 1), timeout=WAIT)
    keep_screenshot(page, tmp_path, "storefront.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    keep_screenshot(page, tmp_path, "storefront-wide.png")

    page.get_by_role("button", name="Confirm").click()
    expect(status).to_have_text("CONFIRMED", timeout=WAIT)
    expect(page.get_by_role("status")).to_contain_text("CONFIRMED")
    expect(page.get_by_role("button", name="Confirm")).to_be_disabled()
    expect(row.locator(".available")).to_have_attribute("data-available", str(before - 1), timeout=WAIT)
    checkout_id = page.locator("#checkout-id").inner_text()
    answer = httpx.get(f"{dev_stack.url}/v1/checkouts/{checkout_id}", timeout=10).json()
    assert answer["status"] == "CONFIRMED"
    sold = httpx.get(f"{dev_stack.url}/v1/items/SKU-MUG/availability", timeout=10).json()["sold"]
    assert sold >= 1


def test_sold_out_shows_alternatives_and_one_click_books_one(dev_stack: DevStack, page: Page, tmp_path: Path) -> None:
    restock = httpx.put(
        f"{dev_stack.url}/v1/inventory/items/SKU-LIMITED",
        json={"stock": 2},
        headers={"Authorization": f"Bearer {dev_stack.operator_token}"},
        timeout=10,
    )
    assert restock.status_code == 200, restock.text
    label = item_label(dev_stack, "SKU-LIMITED")
    open_store(page, dev_stack)
    row = offer(page, label)
    expect(row.locator(".available")).to_have_attribute("data-available", "2", timeout=WAIT)

    row.get_by_role("checkbox").check()
    row.get_by_role("spinbutton").fill("3")
    hold(page)
    expect(page.get_by_role("status")).to_contain_text("Not available", timeout=WAIT)
    expect(page.locator("#unavailable")).to_contain_text("SKU-LIMITED")
    expect(page.locator("#unavailable")).to_contain_text("you asked for 3, 2 available")
    first_key = page.locator("#idempotency-key").inner_text()
    alternative = page.locator("#alternatives").get_by_role("button", name=re.compile("Hold this instead"))
    expect(alternative.first).to_be_visible()
    keep_screenshot(page, tmp_path, "storefront-alternatives.png")

    alternative.first.click()
    expect(page.locator("#checkout-status")).to_have_text("HELD", timeout=WAIT)
    expect(page.locator("#holds")).to_contain_text("SKU-LIMITED \u00d7 2")
    second_key = page.locator("#idempotency-key").inner_text()
    assert KEY.match(second_key) and second_key != first_key  # a new attempt, a new key
    expect(page.locator("#alternatives-block")).to_be_hidden()

    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator("#checkout-status")).to_have_text("CANCELLED", timeout=WAIT)
    expect(row.locator(".available")).to_have_attribute("data-available", "2", timeout=WAIT)


def test_a_short_hold_left_alone_shows_expired(dev_stack: DevStack, page: Page) -> None:
    label = item_label(dev_stack, "SKU-CAP")
    open_store(page, dev_stack)
    row = offer(page, label)
    page.get_by_label("Hold for (seconds)").fill("5")
    row.get_by_role("checkbox").check()
    hold(page)
    status = page.locator("#checkout-status")
    expect(status).to_have_text("HELD", timeout=WAIT)
    # The server's timer decides; the page polls once its countdown reaches zero.
    expect(status).to_have_text("EXPIRED", timeout=WAIT)
    expect(page.get_by_role("status")).to_contain_text("EXPIRED")
    expect(page.get_by_role("button", name="Confirm")).to_be_disabled()


@pytest.mark.parametrize("fault", ["no answer", "503", "rate limited"])
def test_a_retry_reuses_the_idempotency_key(dev_stack: DevStack, page: Page, fault: str) -> None:
    keys: list[str] = []

    def first_attempt_fails(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) > 1:
            route.continue_()
        elif fault == "503":
            route.fulfill(status=503, headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
                          body='{"type": "about:blank", "title": "Service temporarily unavailable", "status": 503, '
                               '"detail": "injected by the test"}')
        elif fault == "rate limited":  # as api/guard.py answers it, before any route
            route.fulfill(status=429, headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
                          body=json.dumps({"type": TYPE_BASE + "rate-limited", "title": "Too many requests",
                                           "status": 429, "detail": "injected by the test"}))
        else:
            route.abort("connectionreset")

    page.route("**/v1/checkouts", first_attempt_fails)
    label = item_label(dev_stack, "SKU-POSTER")
    open_store(page, dev_stack)
    offer(page, label).get_by_role("checkbox").check()
    hold(page)
    expect(page.locator("#checkout-status")).to_have_text("HELD", timeout=WAIT)
    assert len(keys) == 2 and keys[0] == keys[1] and KEY.match(keys[0]), keys
    expect(page.locator("#idempotency-key")).to_have_text(keys[0])
    expect(page.locator("#attempt-note")).to_contain_text("attempt 2")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator("#checkout-status")).to_have_text("CANCELLED", timeout=WAIT)


def test_the_per_customer_hold_limit_is_explained(dev_stack: DevStack, page: Page) -> None:
    label = item_label(dev_stack, "SKU-TSHIRT")
    open_store(page, dev_stack)
    page.get_by_label("Customer id").fill("limit-customer")
    offer(page, label).get_by_role("checkbox").check()
    status = page.locator("#checkout-status")
    held: list[str] = []
    for _ in range(ACTIVE_CHECKOUTS_MAX):
        hold(page)  # every click is a new attempt with a new key: another checkout
        expect(status).to_have_text("HELD", timeout=WAIT)
        expect(page.locator("#checkout-id")).not_to_have_text(held[-1] if held else "", timeout=WAIT)
        held.append(page.locator("#checkout-id").inner_text())
    hold(page)
    expect(page.get_by_role("status")).to_contain_text("Too many holds for this customer", timeout=WAIT)
    expect(page.get_by_role("status")).to_contain_text(
        f"already has {ACTIVE_CHECKOUTS_MAX} checkouts held or being placed, and at most {ACTIVE_CHECKOUTS_MAX}"
    )
    # Releasing one makes room again.
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(status).to_have_text("CANCELLED", timeout=WAIT)
    hold(page)
    expect(status).to_have_text("HELD", timeout=WAIT)
    assert len(set(held)) == ACTIVE_CHECKOUTS_MAX
    for checkout_id in [*held, page.locator("#checkout-id").inner_text()]:
        httpx.post(f"{dev_stack.url}/v1/checkouts/{checkout_id}/cancel", timeout=30)


def test_a_paid_checkout_shows_prices_the_total_and_the_wallet(dev_stack: DevStack, page: Page) -> None:
    """Prices beside the offers, a line's amount and the checkout's total, paid from the travel-credit wallet whose
    balance the page shows before and after."""
    customer = f"payer-{uuid.uuid4().hex[:8]}"
    funded = httpx.put(f"{dev_stack.url}/v1/wallets/{customer}", json={"currency": "EUR", "balance": 100_000},
                       headers={"Authorization": f"Bearer {dev_stack.operator_token}"}, timeout=10)
    assert funded.status_code == 200, funded.text
    label = item_label(dev_stack, "SKU-MUG")
    open_store(page, dev_stack)
    page.locator("#customer-id").fill(customer)
    page.locator("#customer-id").dispatch_event("change")
    expect(page.locator("#wallet")).to_contain_text("Travel credit", timeout=WAIT)
    row = offer(page, label)
    expect(row.locator(".price")).not_to_be_empty()
    row.get_by_role("checkbox").check()
    page.locator("#payments input.pay").first.check()
    hold(page)
    expect(page.locator("#checkout-status")).to_have_text("HELD", timeout=WAIT)
    expect(page.locator("#total")).not_to_have_text("—")
    expect(page.locator("#holds")).to_contain_text("wallet")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#checkout-status")).to_have_text("CONFIRMED", timeout=WAIT)
    wallet = httpx.get(f"{dev_stack.url}/v1/wallets/{customer}", timeout=10,
                       headers={"Authorization": f"Bearer {dev_stack.operator_token}"}).json()
    checkout_id = page.locator("#checkout-id").inner_text()
    total = httpx.get(f"{dev_stack.url}/v1/checkouts/{checkout_id}", timeout=10).json()["total"]
    assert wallet["captured"] == total["amount"] > 0


def test_my_bookings_cancels_one_part_then_the_whole_sale(dev_stack: DevStack, page: Page, tmp_path: Path) -> None:
    """A person books a flight and an item, confirms, then in "My bookings" gives the item back, then the rest:
    the booking stays CONFIRMED while the flight remains, then is CANCELLED; the stock comes back."""
    label = item_label(dev_stack, "SKU-MUG")
    open_store(page, dev_stack)
    page.get_by_label("Customer id").fill("my-bookings-customer")
    page.locator("#catalogue fieldset[data-participant=flight] input.pick").first.check()
    row = offer(page, label)
    row.get_by_role("checkbox").check()
    hold(page)
    expect(page.locator("#checkout-status")).to_have_text("HELD", timeout=WAIT)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#checkout-status")).to_have_text("CONFIRMED", timeout=WAIT)
    checkout_id = page.locator("#checkout-id").inner_text()
    sold_before = httpx.get(f"{dev_stack.url}/v1/items/SKU-MUG/availability", timeout=10).json()["sold"]

    booking = page.locator(f"#bookings li.booking[data-checkout-id='{checkout_id}']")
    expect(booking).to_be_visible(timeout=WAIT)
    expect(booking.locator(".status").first).to_have_text("CONFIRMED", timeout=WAIT)
    booking.get_by_role("button", name="Cancel items").click()
    expect(booking.locator("li.part[data-part=items]")).to_contain_text("RETURNED", timeout=WAIT)
    expect(booking.locator(".status").first).to_have_text("CONFIRMED")
    keep_screenshot(page, tmp_path, "storefront-my-bookings.png")
    after_part = httpx.get(f"{dev_stack.url}/v1/items/SKU-MUG/availability", timeout=10).json()["sold"]
    assert after_part == sold_before - 1

    booking.get_by_role("button", name="Cancel booking").click()
    expect(booking.locator(".status").first).to_have_text("CANCELLED", timeout=WAIT)
    expect(booking.locator("li.part[data-part=flight]")).to_contain_text("RETURNED")
    answer = httpx.get(f"{dev_stack.url}/v1/checkouts/{checkout_id}", timeout=10).json()
    assert answer["status"] == "CANCELLED"
    assert {hold["status"] for hold in answer["holds"]} == {"RETURNED"}
    assert [change["status"] for change in answer["history"]][-2:] == ["CONFIRMED", "CANCELLED"]
