"""Custom search attributes operators filter on in the Temporal UI, registered by `booking-saga dev`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CHECKOUT_STATUS = SearchAttributeKey.for_keyword("CheckoutStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
# e.g. ["flight:BA117/economy", "hotel:H1/deluxe", "orders:SKU-1"]: find every checkout touching a resource.
RESOURCES = SearchAttributeKey.for_keyword_list("CheckoutResources")

ALL = (CHECKOUT_STATUS, CUSTOMER_ID, RESOURCES)

_TYPE_NAMES = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList"}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags
