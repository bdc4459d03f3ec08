"""`GET /v1/audit?sagas=true`: the saga-vs-ledger audit (workflows.saga_audit) on the app's clients.

Temporal or PostgreSQL out of reach is a 503 + Retry-After, like every route's; the failure's own words are logged,
never answered.
"""

from __future__ import annotations

import logging

from temporalio.service import RPCError

from api.deps import AppState
from api.problems import service_unavailable
from services.errors import LedgerError
from workflows.saga_audit import SagaAuditReport, audit_sagas, ledgers_of

log = logging.getLogger(__name__)


async def saga_audit(state: AppState) -> SagaAuditReport:
    client = state.temporal.require()
    try:
        return await audit_sagas(
            client, ledgers_of(state.services), grace_seconds=state.settings.sweeper_grace_seconds,
            task_queue=state.settings.task_queue_checkout, records=state.records,
        )
    except LedgerError as exc:
        log.warning("saga audit: a ledger failed: %s", exc)
        raise service_unavailable("the saga audit could not read a ledger", dependency="database") from exc
    except (RPCError, RuntimeError) as exc:  # RuntimeError: the SDK's transport failures
        log.warning("saga audit: Temporal failed: %s", exc)
        raise service_unavailable(
            "the saga audit could not read the sagas", dependency="temporal", kind="temporal-unavailable"
        ) from exc
