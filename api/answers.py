"""A checkout that was not placed, as the problem the client gets: one rule for the route (api/routes/checkouts.py)
and the sold-out lane (api/sold_out.py), so a 409 reads the same whichever answered it."""

from __future__ import annotations

from api.problems import ProblemError, service_unavailable
from workflows.models import CheckoutStatus, CheckoutView


def conflict(view: CheckoutView, title: str, detail: str, kind: str = "checkout-conflict") -> ProblemError:
    return ProblemError(
        409, kind, title, detail,
        checkout_id=view.checkout_id,
        checkout_status=view.status.value,
        unavailable=[s.model_dump(mode="json") for s in view.unavailable],
        alternatives=[a.model_dump(mode="json") for a in view.alternatives],
    )


def not_placed(view: CheckoutView) -> ProblemError:
    """The problem for a checkout whose holds are not (or not yet) placed."""
    if view.status == CheckoutStatus.REJECTED:
        short = "; ".join(f"{s.resource}: requested {s.requested}, available {s.available}" for s in view.unavailable)
        return conflict(view, "Not available", f"not enough inventory ({short or 'sold out'}); nothing is held, "
                        "see `alternatives`", kind="checkout-rejected")
    if view.status == CheckoutStatus.PENDING:
        raise service_unavailable("the checkout is still being placed; retry the same request", dependency="temporal")
    if view.status == CheckoutStatus.NEEDS_ATTENTION:
        # Placing failed and releasing what was held is still being retried (operators are alerted): not placed,
        # and whatever is still held will be released, never sold.
        return conflict(view, "Checkout failed", "the checkout could not be placed; its holds are being released "
                        "(an operator is alerted). Retry with a new Idempotency-Key", kind="checkout-failed")
    return conflict(view, "Checkout failed", f"the checkout ended {view.status.value}: {view.error or 'see status'}; "
                    "nothing is held. Retry with a new Idempotency-Key", kind="checkout-failed")
