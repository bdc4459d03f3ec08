"""Operator routes: the ledger audit (and the saga audit), behind the operator bearer token. Each participant's
inventory upsert is built with its availability route (api/routes/availability.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import require_operator
from api.deps import ServicesDep, StateDep
from api.ledger_errors import ledger_problems
from api.problems import problem_docs
from api.routes.availability import service
from api.saga_audit import saga_audit
from api.schemas import AuditReport
from services.registry import NAMES
from services.types import Violation

router = APIRouter(prefix="/v1", tags=["operators"], dependencies=[Depends(require_operator)])


@router.get("/audit", response_model=AuditReport, summary="Check the ledger invariant",
            responses=problem_docs(401, 503))
async def audit(services: ServicesDep, state: StateDep, sagas: bool = False) -> AuditReport:
    """For every inventory row: held = the sum of its ACTIVE hold lines, sold = the sum of its CONFIRMED
    ones, and 0 <= held + sold <= capacity. `ok` is true when nothing breaks it.
    `sagas=true` also holds every checkout's saga against its holds (`sagas` in the answer)."""
    violations: list[Violation] = []
    for name in NAMES:
        with ledger_problems(name):
            violations += await service(services, name).audit()
    saga_report = await saga_audit(state) if sagas else None
    return AuditReport(ok=not violations and (saga_report is None or saga_report.ok), violations=violations,
                       sagas=saga_report)
