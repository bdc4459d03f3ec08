"""api/admission.py: a checkout's attempt is derived once (id, hash, rows, log binding) and handed on as it is."""

from __future__ import annotations

import pytest

from api import admission
from api.idempotency import checkout_id, request_hash
from api.problems import ProblemError
from api.schemas import CheckoutBody
from services.logcontext import checkout_context, current_checkout_id
from settings import Settings

SETTINGS = Settings(operator_token="t" * 32)
BODY = {"customer_id": "c-adm", "flight": {"flight_id": "BA117", "seat_class": "economy", "seats": 2}}


def test_an_attempt_derives_its_id_hash_and_rows_once() -> None:
    body = CheckoutBody.model_validate(BODY)
    with checkout_context("outside"):
        attempt = admission.attempt_of(SETTINGS, body, "key-1")
        assert current_checkout_id() == attempt.checkout_id  # later log lines carry it
    assert attempt.checkout_id == checkout_id(SETTINGS.checkout_id_secret, "c-adm", "key-1")
    assert attempt.digest == request_hash(attempt.request, attempt.hold_seconds)
    assert attempt.hold_seconds == SETTINGS.hold_seconds_default
    assert attempt.rows and all(units == 2 for rows in attempt.rows.values() for units in rows.values())
    assert attempt.claimed_rows() == {
        (service, resource): units for service, rows in attempt.rows.items() for resource, units in rows.items()
    }


def test_an_attempt_out_of_bounds_is_a_422_and_binds_nothing() -> None:
    body = CheckoutBody.model_validate({**BODY, "hold_seconds": SETTINGS.hold_seconds_max + 1})
    with checkout_context("outside"):
        with pytest.raises(ProblemError) as refused:
            admission.attempt_of(SETTINGS, body, "key-1")
        assert current_checkout_id() == "outside"
    assert (refused.value.status, refused.value.kind) == (422, "invalid-request")


def test_the_lane_hands_its_attempt_on_to_the_route() -> None:
    scope: dict[str, object] = {"type": "http"}
    assert admission.handed_on(scope) is None
    with checkout_context("outside"):  # attempt_of binds the id: not past this test
        attempt = admission.attempt_of(SETTINGS, CheckoutBody.model_validate(BODY), "key-2")
    admission.hand_on(scope, attempt)
    assert admission.handed_on(scope) is attempt
