"""What the OpenAPI document says beyond what FastAPI derives from the models, so that a client generator (or a
fuzzer) reading only the document sends what the API accepts and expects what it answers:

- the bounds that come from the settings (`hold_seconds`, extend's `seconds`);
- the shape of a checkout id on every route that takes one (any other id answers 404);
- links from `POST /v1/checkouts` (201) to read, confirm, cancel and extend the checkout it created;
- examples that work against the demo inventory (`make dev`), generated from the participants: each operator
  upsert's body and id, each availability route's id and query, extend's body (the checkout body's example is
  in api/schemas.py);
- in each operation's description, the rules a schema cannot state and how they are answered.

Nothing here names a participant: everything is read from the registry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.idempotency import CHECKOUT_ID_PATTERN
from api.routes.availability import availability_operation, upsert_operation
from services.participant import NoQuery
from services.registry import PARTICIPANTS, AnyParticipant
from settings import Settings

CREATE = "create_checkout"
# The operations a created checkout's id leads to (their operationIds, api/routes/checkouts.py).
FOLLOW_UPS = {"get_checkout": "Read it", "confirm_checkout": "Confirm it", "cancel_checkout": "Cancel it",
              "extend_checkout": "Extend its holds"}
EXTEND_EXAMPLE = {"seconds": 300}

CHECKOUT_RULES = (
    "\n\nRules the schema cannot state, answered 422 with `errors` naming the field: a part that names "
    "something that does not exist (problem `unknown-resource`, `resource` says what), a part's dates out of "
    "order or too far apart (see each date's description), a sku twice in `items`."
)
UPSERT_RULES = (
    "\n\nRules the schema cannot state, answered 422 with `errors` naming the field: dates out of order or too "
    "far apart (see each date's description), a capacity below what is already held + sold."
)
AVAILABILITY_RULES = (
    "\n\nAn id that does not exist answers 404. Rules the schema cannot state (the query's dates out of order or "
    "too far apart, see their descriptions) answer 422 with `errors` naming the field."
)


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for path_item in schema.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def _integer_branch(prop: dict[str, Any]) -> dict[str, Any]:
    """The `integer` schema of a property typed `int` or `int | None`."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "integer":
            return branch
    raise KeyError("no integer branch")


def _settings_bounds(schema: dict[str, Any], settings: Settings) -> None:
    components = schema.get("components", {}).get("schemas", {})
    hold = _integer_branch(components["CheckoutBody"]["properties"]["hold_seconds"])
    hold.update(minimum=settings.hold_seconds_min, maximum=settings.hold_seconds_max)
    components["ExtendBody"]["properties"]["seconds"]["maximum"] = settings.hold_seconds_max


def _checkout_links(operations: dict[str, dict[str, Any]]) -> None:
    for operation in operations.values():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "checkout_id":
                parameter["schema"]["pattern"] = CHECKOUT_ID_PATTERN
    created = operations[CREATE]["responses"]["201"]
    created["links"] = {
        operation_id.removesuffix("_checkout").capitalize() + "Checkout": {
            "operationId": operation_id,
            "parameters": {"checkout_id": "$response.body#/checkout_id"},
            "description": f"{summary}: the `checkout_id` of this answer.",
        }
        for operation_id, summary in FOLLOW_UPS.items()
    }
    extend = operations["extend_checkout"]["requestBody"]["content"]["application/json"]
    extend["example"] = EXTEND_EXAMPLE


def _path_example(operation: dict[str, Any], name: str, value: object) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["name"] == name:
            parameter["example"] = value


def _first_offer(participant: AnyParticipant) -> dict[str, object] | None:
    """The first demo offer's checkout-body value (the first line of a list field)."""
    offers = participant.demo_offers(datetime.now(UTC).date())
    if not offers:
        return None
    body = participant.to_body(offers[0])
    first = body[0] if isinstance(body, list) and body else body
    return first if isinstance(first, dict) else None


def _participant_examples(operations: dict[str, dict[str, Any]]) -> None:
    today = datetime.now(UTC).date()
    for participant in PARTICIPANTS:
        spec = participant.routes
        if spec is None:
            continue
        upsert = operations[upsert_operation(participant)]
        availability = operations[availability_operation(participant)]
        if participant.inventory:
            upsert["description"] = upsert.get("description", "") + UPSERT_RULES
            availability["description"] = availability.get("description", "") + AVAILABILITY_RULES
        demo = participant.demo_upsert(today)
        if demo is not None:
            resource_id, body = demo
            _path_example(upsert, spec.id_name, resource_id)
            upsert["requestBody"]["content"]["application/json"]["example"] = body.model_dump(mode="json")
        offer = _first_offer(participant)
        if offer is None:
            continue
        if spec.id_name in offer:
            _path_example(availability, spec.id_name, offer[spec.id_name])
        if spec.query is not NoQuery:
            for parameter in availability.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in offer:
                    parameter["example"] = offer[parameter["name"]]


def describe_contract(schema: dict[str, Any], settings: Settings) -> None:
    operations = _operations(schema)
    _settings_bounds(schema, settings)
    _checkout_links(operations)
    _participant_examples(operations)
    create = operations[CREATE]
    create["description"] = create.get("description", "") + CHECKOUT_RULES
