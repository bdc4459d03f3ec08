"""Each participant's HTTP resource, built from its declaration (Participant.routes):

- `GET /v1/{collection}/{id}/availability` (public): what is left to book, read straight from its ledger
  (PostgreSQL), never from the cache;
- `PUT /v1/inventory/{collection}/{id}` (operators): create or change the resource.

The routes' bodies, queries and answers are the participant's own models, so the OpenAPI document and the
validation come from one declaration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import Parameter, Signature
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel

from api.auth import require_operator
from api.deps import ServicesDep
from api.ledger_errors import ledger_problems
from api.problems import problem_docs, service_unavailable
from services.participant import NoQuery
from services.registry import PARTICIPANTS, AnyParticipant, AnyService
from services.types import Identifier

router = APIRouter(prefix="/v1", tags=["availability"])
operator_router = APIRouter(prefix="/v1", tags=["operators"], dependencies=[Depends(require_operator)])

Endpoint = Callable[..., Awaitable[BaseModel]]


def service(services: dict[str, AnyService], name: str) -> AnyService:
    if name not in services:
        raise service_unavailable("no database is configured (DATABASE_URL)", dependency="database")
    return services[name]


def _resource_id(participant: AnyParticipant) -> Parameter:
    spec = participant.routes
    annotation = Annotated[Identifier, Path(description=f"The {spec.noun} id as the operator created it.")]
    return Parameter(spec.id_name, Parameter.KEYWORD_ONLY, annotation=annotation)


def availability_operation(participant: AnyParticipant) -> str:
    """The operationId of its availability route (api/openapi.py adds its examples by this id)."""
    return f"{participant.name}_availability"


def upsert_operation(participant: AnyParticipant) -> str:
    return f"put_{participant.name}"


def _services() -> Parameter:
    return Parameter("services", Parameter.KEYWORD_ONLY, annotation=ServicesDep)


def _availability(participant: AnyParticipant) -> Endpoint:
    spec = participant.routes

    async def endpoint(services: dict[str, AnyService], **params: object) -> BaseModel:
        query = params.get("query")
        with ledger_problems(spec.noun):
            return await service(services, participant.name).availability(
                str(params[spec.id_name]), query if isinstance(query, BaseModel) else NoQuery()
            )

    parameters = [_resource_id(participant), _services()]
    if spec.query is not NoQuery:
        parameters.append(Parameter("query", Parameter.KEYWORD_ONLY, annotation=Annotated[spec.query, Query()]))
    endpoint.__signature__ = Signature(parameters, return_annotation=spec.availability)  # type: ignore[attr-defined]
    endpoint.__name__ = f"{participant.name}_availability"
    endpoint.__doc__ = spec.availability_summary
    return endpoint


def _upsert(participant: AnyParticipant) -> Endpoint:
    spec = participant.routes

    async def endpoint(services: dict[str, AnyService], body: BaseModel, **params: object) -> BaseModel:
        with ledger_problems(spec.noun):
            return await service(services, participant.name).upsert(str(params[spec.id_name]), body)

    body = Parameter("body", Parameter.KEYWORD_ONLY, annotation=Annotated[spec.upsert, Body()])
    endpoint.__signature__ = Signature(  # type: ignore[attr-defined]
        [_resource_id(participant), body, _services()], return_annotation=spec.availability
    )
    endpoint.__name__ = f"put_{participant.name}"
    endpoint.__doc__ = spec.upsert_description or spec.upsert_summary
    return endpoint


for _participant in PARTICIPANTS:
    _spec = _participant.routes
    router.add_api_route(
        f"/{_spec.collection}/{{{_spec.id_name}}}/availability", _availability(_participant), methods=["GET"],
        response_model=_spec.availability, summary=_spec.availability_summary,
        operation_id=availability_operation(_participant), responses=problem_docs(404, 422, 503),
    )
    operator_router.add_api_route(
        f"/inventory/{_spec.collection}/{{{_spec.id_name}}}", _upsert(_participant), methods=["PUT"],
        response_model=_spec.availability, summary=_spec.upsert_summary,
        operation_id=upsert_operation(_participant), responses=problem_docs(400, 401, 422, 503),
    )
