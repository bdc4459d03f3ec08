"""schemathesis with CUSTOMER_AUTH=jwt: a customer token on the checkout routes, the operator token on the
operator routes; no 5xx, and every response (401, 403, 404 included) matches the document."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.main import create_app
from settings import Settings
from tests.api.app_runner import with_test_defaults

# Small: CI runs this next to the CUSTOMER_AUTH=none fuzz of every operation (tests/api/schema_fuzz.py).
EXAMPLES_PER_OPERATION = 8


def run_schemathesis_with_tokens(
    app_settings: Settings, customer: dict[str, str], operator: dict[str, str]
) -> list[str]:
    """Blocking: call from a thread (see tests/api/schema_fuzz.py). Returns the operations tested."""
    app = create_app(with_test_defaults(app_settings))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tested: list[str] = []
    try:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            headers = customer if operation.path.startswith("/v1/checkouts") else operator
            _fuzz(operation, headers)
            tested.append(operation.label)
    finally:
        asgi.shutdown_lifespans()
    return tested


def _fuzz(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Schema-valid bodies may break cross-field rules (a documented 422) or name another customer than the
        # token's (a documented 403): both are right.
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()
