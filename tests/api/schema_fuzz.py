"""schemathesis against the app's own OpenAPI document: no 5xx, and every response matches the document."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.main import create_app
from settings import Settings
from tests.api.app_runner import OPERATOR_TOKEN, with_test_defaults

EXAMPLES_PER_OPERATION = 15


def run_schemathesis(app_settings: Settings) -> list[str]:
    """Blocking: call from a thread. The app runs in schemathesis's own event loop thread (its ASGI
    client starts the lifespan there). Returns the operations tested."""
    app = create_app(with_test_defaults(app_settings))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tested: list[str] = []
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            _fuzz(operation)
            tested.append(operation.label)
    finally:
        asgi.shutdown_lifespans()
    return tested


def _fuzz(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Cross-field rules (check_out after check_in, nights_to after nights_from) cannot be written in
        # JSON Schema: schema-valid bodies that break them get a documented 422, which is right.
        case.call_and_validate(
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, excluded_checks=[positive_data_acceptance]
        )

    check()
