"""The storefront against an API with CUSTOMER_AUTH=jwt: without a token the page says one is needed; with the
customer's token in the token field (sent as `Authorization: Bearer`) the same checkout is held."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import jwt
import pytest

from tests.browser.conftest import DevStack, start_dev, stop_dev
from tests.browser.store import KEY, WAIT, expect, hold, item_label, offer, open_store

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

SECRET = secrets.token_urlsafe(48)


@pytest.fixture(scope="module")
def jwt_stack(chromium: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    process, stack = start_dev(
        tmp_path_factory.mktemp("dev-jwt") / "data", CUSTOMER_AUTH="jwt", CUSTOMER_JWT_SECRET=SECRET
    )
    try:
        yield stack
    finally:
        stop_dev(process)


def test_the_token_field_logs_the_customer_in(jwt_stack: DevStack, page: Page) -> None:
    label = item_label(jwt_stack, "SKU-TSHIRT")
    open_store(page, jwt_stack)
    offer(page, label).get_by_role("checkbox").check()
    hold(page)
    expect(page.get_by_role("status")).to_contain_text("A customer token is needed", timeout=WAIT)
    expect(page.locator("#checkout")).to_be_hidden()

    token = jwt.encode({"sub": "demo-customer", "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    page.get_by_label("Customer token").fill(token)
    hold(page)
    expect(page.locator("#checkout-status")).to_have_text("HELD", timeout=WAIT)
    expect(page.locator("#idempotency-key")).to_have_text(KEY)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#checkout-status")).to_have_text("CONFIRMED", timeout=WAIT)
