"""What the storefront tests share: finding an offer by its catalogue label, opening the page, holding."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

from tests.browser.conftest import DevStack

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

# Milliseconds: an upper bound on a loaded 2-core machine, not an expectation.
WAIT = 90_000
KEY = re.compile(r"^demo-[0-9a-f]{32}$")


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def item_label(stack: DevStack, sku: str) -> str:
    """The catalogue's label for the list offer that asks for `sku` (the page shows offers by label)."""
    participants = httpx.get(f"{stack.url}/v1/catalogue", timeout=10).json()["participants"]
    for participant in participants:
        if not participant["list_field"]:
            continue
        for offer in participant["offers"]:
            if any(line.get("sku") == sku for line in offer["request"]):
                return str(offer["label"])
    raise AssertionError(f"{sku} is not in the catalogue")


def open_store(page: Page, stack: DevStack) -> None:
    page.goto(f"{stack.url}/demo")
    expect(page.locator("#catalogue .offer").first).to_be_visible(timeout=WAIT)


def offer(page: Page, label: str) -> Locator:
    return page.locator("#catalogue .offer").filter(has=page.get_by_text(label, exact=True))


def available(row: Locator) -> int:
    value = row.locator(".available").get_attribute("data-available")
    assert value is not None
    return int(value)


def hold(page: Page) -> None:
    page.get_by_role("button", name="Hold the selection").click()
