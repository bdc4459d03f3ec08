"""A checkout that was not placed, or that refused an update, as the problem the client gets: one rule for every
checkout answer (api/admission.py, the routes, checkouts/bookings.py), so a 409 reads the same whichever answered
it. The status, kind and title are the error table's (services/errors.py: REJECTED, CHECKOUT_FAILED,
REFUSED_UPDATE)."""

from __future__ import annotations

from checkouts.problems import ProblemError, service_unavailable
from services.errors import CHECKOUT_FAILED, REFUSED_UPDATE, REJECTED, HttpProblem
from workflows.models import CheckoutStatus, CheckoutView


def conflict(view: CheckoutView, title: str, detail: str, kind: str = REFUSED_UPDATE.kind) -> ProblemError:
    """A 409 with the checkout as it is; `title` says what was refused ("Cannot extend")."""
    return ProblemError(
        REFUSED_UPDATE.status, kind, title, detail,
        checkout_id=view.checkout_id,
        checkout_status=view.status.value,
        unavailable=[s.model_dump(mode="json") for s in view.unavailable],
        alternatives=[a.model_dump(mode="json") for a in view.alternatives],
    )


def not_placed(view: CheckoutView) -> ProblemError:
    """The problem for a checkout whose holds are not (or not yet) placed."""
    if view.status == CheckoutStatus.REJECTED:
        short = "; ".join(f"{s.resource}: requested {s.requested}, available {s.available}" for s in view.unavailable)
        return _answer(view, REJECTED, f"not enough inventory ({short or 'sold out'}); nothing is held, "
                       "see `alternatives`")
    if view.status == CheckoutStatus.PENDING:
        raise service_unavailable("the checkout is still being placed; retry the same request", dependency="temporal")
    if view.status == CheckoutStatus.NEEDS_ATTENTION:
        # Placing failed and releasing what was held is still being retried (operators are alerted): not placed,
        # and whatever is still held will be released, never sold.
        return _answer(view, CHECKOUT_FAILED, "the checkout could not be placed; its holds are being released "
                       "(an operator is alerted). Retry with a new Idempotency-Key")
    return _answer(view, CHECKOUT_FAILED, f"the checkout ended {view.status.value}: {view.error or 'see status'}; "
                   "nothing is held. Retry with a new Idempotency-Key")


def _answer(view: CheckoutView, problem: HttpProblem, detail: str) -> ProblemError:
    answer = conflict(view, problem.title, detail, kind=problem.kind)
    answer.status = problem.status
    return answer
