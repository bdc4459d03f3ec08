"""Custom search attributes operators filter on in the Temporal UI, registered by `booking-saga dev`.

Search attributes are indexed by Temporal in plaintext (the payload codec never sees them), so what goes here is
chosen: the checkout's status, the resources it touches (catalogue ids such as 'flight:BA117/economy': public
inventory, nothing of the customer) and, for the customer, a pseudonym: CustomerId = customer_pseudonym(id), a
keyed hash under CHECKOUT_ID_SECRET. An operator finds a customer's checkouts by computing it (`booking-saga
checkouts list --customer <id>` does); whoever reads Temporal without the secret learns only that some checkouts
share a customer. The customer id itself travels only inside encrypted payloads (runtime/codec.py).
"""

from __future__ import annotations

import hashlib
import hmac

from temporalio.common import SearchAttributeKey, SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes

from workflows.models import CheckoutRequest, CheckoutStatus
from workflows.summaries import resources

CHECKOUT_STATUS = SearchAttributeKey.for_keyword("CheckoutStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
# e.g. ["flight:BA117/economy", "hotel:H1/deluxe", "orders:SKU-1"]: find every checkout touching a resource.
RESOURCES = SearchAttributeKey.for_keyword_list("CheckoutResources")

ALL = (CHECKOUT_STATUS, CUSTOMER_ID, RESOURCES)


_PSEUDONYM_CONTEXT = b"booking-saga CustomerId search attribute\x00"


def customer_pseudonym(customer_id: str, secret: str) -> str:
    """The CustomerId search attribute of `customer_id`: 'c-' and 128 bits of HMAC-SHA256 under `secret`
    (CHECKOUT_ID_SECRET), so that ids that are guessable (e-mail addresses, sequence numbers) stay unreadable."""
    digest = hmac.new(secret.encode(), _PSEUDONYM_CONTEXT + customer_id.encode(), hashlib.sha256).hexdigest()
    return "c-" + digest[:32]


def describing(request: CheckoutRequest) -> list[SearchAttributeUpdate]:
    """Who the checkout is for and what it touches, as the workflow publishes them when its starter did not
    (a starter other than the API: tests, an operator's CLI). The workflow has no secret, so this carries the
    plain customer id: only at_start's pseudonym keeps it out of Temporal."""
    return [CUSTOMER_ID.value_set(request.customer_id), RESOURCES.value_set(resources(request))]


def at_start(request: CheckoutRequest, secret: str) -> TypedSearchAttributes:
    """Every search attribute of a new checkout, for the API to set when it starts the saga (CustomerId as the
    pseudonym under `secret`): the workflow then need not upsert them (each upsert is a history event and a
    visibility write on the server)."""
    return TypedSearchAttributes([
        SearchAttributePair(CUSTOMER_ID, customer_pseudonym(request.customer_id, secret)),
        SearchAttributePair(RESOURCES, resources(request)),
        SearchAttributePair(CHECKOUT_STATUS, CheckoutStatus.PENDING.value),
    ])


_TYPE_NAMES = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList"}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags
