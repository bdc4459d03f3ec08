"""Custom search attributes operators filter on in the Temporal UI, registered by `booking-saga dev`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes

from workflows.models import CheckoutRequest, CheckoutStatus
from workflows.summaries import resources

CHECKOUT_STATUS = SearchAttributeKey.for_keyword("CheckoutStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
# e.g. ["flight:BA117/economy", "hotel:H1/deluxe", "orders:SKU-1"]: find every checkout touching a resource.
RESOURCES = SearchAttributeKey.for_keyword_list("CheckoutResources")

ALL = (CHECKOUT_STATUS, CUSTOMER_ID, RESOURCES)


def describing(request: CheckoutRequest) -> list[SearchAttributeUpdate]:
    """Who the checkout is for and what it touches: set once, at the start."""
    return [CUSTOMER_ID.value_set(request.customer_id), RESOURCES.value_set(resources(request))]


def at_start(request: CheckoutRequest) -> TypedSearchAttributes:
    """Every search attribute of a new checkout, for the API to set when it starts the saga: the workflow then
    need not upsert them (each upsert is a history event and a visibility write on the server)."""
    pairs = [SearchAttributePair(update.key, update.value) for update in describing(request)]
    return TypedSearchAttributes([*pairs, SearchAttributePair(CHECKOUT_STATUS, CheckoutStatus.PENDING.value)])


_TYPE_NAMES = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList"}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags
