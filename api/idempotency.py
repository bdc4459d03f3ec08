"""Idempotency: the checkout id a (customer, Idempotency-Key) pair maps to, and the hash of a request.

The checkout id is the workflow id, so a retried POST reaches the same saga. It is an HMAC so that nobody
can derive another customer's checkout id from a guessed key.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from workflows.models import CheckoutRequest

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
CHECKOUT_ID_PREFIX = "co-"
# 32 hex characters = 128 bits of the HMAC: collisions and guesses are out of reach.
CHECKOUT_ID_HEX_CHARS = 32
CHECKOUT_ID_PATTERN = r"^co-[0-9a-f]{32}$"


def checkout_id(secret: str, customer_id: str, idempotency_key: str) -> str:
    # "\0" cannot appear in either part, so ("ab", "c") and ("a", "bc") never collide.
    message = f"{customer_id}\0{idempotency_key}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return CHECKOUT_ID_PREFIX + digest[:CHECKOUT_ID_HEX_CHARS]


def request_hash(request: CheckoutRequest, hold_seconds: int) -> str:
    """sha256 of the canonical JSON of the validated request: equal for equal requests, whatever the formatting.

    Absent parts are left out, so adding a participant to the registry never changes an existing request's hash.
    """
    canonical = json.dumps(
        {"request": request.model_dump(mode="json", exclude_none=True), "hold_seconds": hold_seconds},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
