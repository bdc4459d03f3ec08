"""The OpenAPI document: FastAPI's, with every error response typed application/problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.guard import UNLIMITED_PATHS
from api.identity import optional_in_dev
from api.openapi_contract import describe_contract
from api.problems import PROBLEM_MEDIA_TYPE

DESCRIPTION = """
Multi-service bookings as one checkout: a flight seat, hotel rooms and shop items are held together or not at
all, for `hold_seconds`, then confirmed, cancelled, extended or left to expire. Each checkout is a Temporal
saga (`CheckoutSaga`), visible to operators in the Temporal UI.

* **Idempotency**: `POST /v1/checkouts` needs an `Idempotency-Key` header. Sending the same key and body again
  (a retry, a double click, a timeout) answers the same and never creates a second checkout.
* **Errors** are `application/problem+json` (RFC 9457) with a `detail` in words.
* **Operators** authenticate with `Authorization: Bearer <OPERATOR_TOKEN>`.
* **Customers** (when the deployment sets `CUSTOMER_AUTH=jwt`) send `Authorization: Bearer <JWT>` on the checkout
  routes; its `sub` is the customer. Another customer's checkout answers 404, as an unknown one does.
"""

TAGS = [
    {"name": "checkouts", "description": "Hold, confirm, cancel and extend multi-service checkouts."},
    {"name": "availability", "description": "What is left to book, straight from the ledgers."},
    {"name": "operators", "description": "Inventory upserts and the ledger audit (operator token)."},
    {"name": "events", "description": "The event feed: every checkout change, in commit order (operator or feed "
     "token). The same events are pushed as signed webhooks."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
]


def _problem_media_types(schema: dict[str, Any]) -> None:
    """FastAPI documents every response model as application/json; problems are served as problem+json.

    Its default 422 (HTTPValidationError) is replaced too: our handler answers validation errors with
    ValidationProblem (see api/problems.py).
    """
    components = schema.get("components", {}).get("schemas", {})
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                json_schema = content.get("application/json", {}).get("schema", {})
                if json_schema.get("$ref") == "#/components/schemas/HTTPValidationError":
                    json_schema["$ref"] = "#/components/schemas/ValidationProblem"
                    response["description"] = "The request is invalid; `errors` lists each problem."
                    components.setdefault("ValidationProblem", _validation_problem_schema())
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if ref.endswith("Problem"):
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


def _guard_answers(schema: dict[str, Any]) -> None:
    """What api/guard.py answers before any route: 429 on every operation but /healthz, 413 where there is a body."""
    problem = {"content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for path, path_item in schema.get("paths", {}).items():
        if path in UNLIMITED_PATHS:
            continue
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            rate_limited = "Too many requests from this caller (`rate-limited`): retry after Retry-After seconds."
            limited = responses.get("429")
            if limited is None:
                limited = responses["429"] = {**problem, "description": rate_limited}
            else:  # a route's own 429 (hold-limit): either answer
                content = limited["content"][PROBLEM_MEDIA_TYPE]
                content["schema"] = {"anyOf": [content["schema"], {"$ref": "#/components/schemas/Problem"}]}
                limited["description"] += f" Or: {rate_limited}"
            limited.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait (`rate-limited`).", "schema": {"type": "integer"}}
            if "requestBody" in operation:
                responses.setdefault("413", {**problem, "description": "The body is larger than MAX_BODY_BYTES "
                                                                       "(`body-too-large`)."})


def _validation_problem_schema() -> dict[str, Any]:
    from api.problems import ValidationProblem

    return ValidationProblem.model_json_schema(ref_template="#/components/schemas/{model}")


def _drop_unused(schema: dict[str, Any]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    # ValidationProblem's own definitions (FieldError) must exist when it was added here.
    for name, definition in _validation_problem_schema().get("$defs", {}).items():
        components.setdefault(name, definition)
    components.get("ValidationProblem", {}).pop("$defs", None)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes,
                tags=app.openapi_tags,
            )
            _problem_media_types(schema)
            _drop_unused(schema)
            _guard_answers(schema)
            optional_in_dev(schema, app.state.booking.settings)
            describe_contract(schema, app.state.booking.settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
