"""Each participant's HTTP resource, built from its declaration (Participant.routes):

- `GET /v1/{collection}/{id}/availability` (public): what is left to book, read straight from its ledger
  (PostgreSQL), never from the cache;
- `PUT /v1/inventory/{collection}/{id}` (operators): create or change the resource.

The routes' bodies, queries and answers are the participant's own models, so the OpenAPI document and the
validation come from one declaration. A participant may move both paths (an account such as the wallet:
`GET`/`PUT /v1/{collection}/{id}`) and make the read its owner's (`read_access` "owner": under CUSTOMER_AUTH=jwt
only the customer the id names, or the operator; another customer gets 404, as for a checkout).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import Parameter, Signature
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel

from api.auth import require_operator
from api.deps import ReadServicesDep, ServicesDep
from api.identity import Caller, CallerOrOperatorDep
from api.ledger_errors import ledger_problems
from api.problems import ProblemError, problem_docs, service_unavailable
from services.participant import NoQuery, ResourceRoutes
from services.registry import PARTICIPANTS, AnyParticipant, AnyService
from services.types import Identifier

router = APIRouter(prefix="/v1", tags=["availability"])
operator_router = APIRouter(prefix="/v1", tags=["operators"], dependencies=[Depends(require_operator)])

Endpoint = Callable[..., Awaitable[BaseModel]]


def service(services: dict[str, AnyService], name: str) -> AnyService:
    if name not in services:
        raise service_unavailable("no database is configured (DATABASE_URL)", dependency="database")
    return services[name]


def _routes(participant: AnyParticipant) -> ResourceRoutes:
    if participant.routes is None:
        raise ValueError(f"{participant.name} declares no HTTP resource")
    return participant.routes


def _resource_id(participant: AnyParticipant) -> Parameter:
    spec = _routes(participant)
    annotation = Annotated[Identifier, Path(description=f"The {spec.noun} id as the operator created it.")]
    return Parameter(spec.id_name, Parameter.KEYWORD_ONLY, annotation=annotation)


def availability_operation(participant: AnyParticipant) -> str:
    """The operationId of its availability route (api/openapi.py adds its examples by this id)."""
    return f"{participant.name}_availability"


def upsert_operation(participant: AnyParticipant) -> str:
    return f"put_{participant.name}"


def _services(*, read: bool = False) -> Parameter:
    """The services dependency: `read` is an anonymous read's (its own pool, api/deps.py)."""
    return Parameter("services", Parameter.KEYWORD_ONLY, annotation=ReadServicesDep if read else ServicesDep)


def _check_owner(caller: object, spec: ResourceRoutes, resource_id: str) -> None:
    """An owner's resource: a customer reads only its own (another's answers 404, as if it did not exist)."""
    if isinstance(caller, Caller) and caller.kind == "customer" and caller.customer_id != resource_id:
        raise ProblemError(404, "not-found", "Not found", f"there is no {spec.noun} {resource_id} for this caller")


def _availability(participant: AnyParticipant) -> Endpoint:
    spec = _routes(participant)

    async def endpoint(services: dict[str, AnyService], **params: object) -> BaseModel:
        query = params.get("query")
        if spec.read_access == "owner":
            _check_owner(params.get("caller"), spec, str(params[spec.id_name]))
        with ledger_problems(spec.noun):
            return await service(services, participant.name).availability(
                str(params[spec.id_name]), query if isinstance(query, BaseModel) else NoQuery()
            )

    parameters = [_resource_id(participant), _services(read=True)]
    if spec.read_access == "owner":
        parameters.append(Parameter("caller", Parameter.KEYWORD_ONLY, annotation=CallerOrOperatorDep))
    if spec.query is not NoQuery:
        parameters.append(Parameter("query", Parameter.KEYWORD_ONLY, annotation=Annotated[spec.query, Query()]))
    endpoint.__signature__ = Signature(parameters, return_annotation=spec.availability)  # type: ignore[attr-defined]
    endpoint.__name__ = f"{participant.name}_availability"
    endpoint.__doc__ = spec.availability_summary
    return endpoint


def _upsert(participant: AnyParticipant) -> Endpoint:
    spec = _routes(participant)

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
    if _spec is None:
        continue
    router.add_api_route(
        _spec.path(_spec.read_path), _availability(_participant), methods=["GET"], tags=[_spec.tag],
        response_model=_spec.availability, summary=_spec.availability_summary,
        operation_id=availability_operation(_participant),
        responses=problem_docs(*((401, 404, 422, 503) if _spec.read_access == "owner" else (404, 422, 503))),
    )
    operator_router.add_api_route(
        _spec.path(_spec.write_path), _upsert(_participant), methods=["PUT"],
        response_model=_spec.availability, summary=_spec.upsert_summary,
        operation_id=upsert_operation(_participant), responses=problem_docs(400, 401, 422, 503),
    )
