"""checkout.webhook_delivered(): a webhook's 2xx recorded in one round trip (services/events/deliveries.py).

The row goes, then its checkout's next row on that endpoint is made due. It answers NULL when the row was not the
caller's to delete (its lease had run out and been taken), else 1 when the checkout has a next event waiting on
that endpoint and 0 when not, so that the relay goes back for more only when there is more.

Two statements, and they must be two: a fan-out writing a row behind the head holds the head FOR SHARE, so the
DELETE waits for that fan-out's commit, and only a statement begun after the wait sees the row it wrote. A VOLATILE
function takes a fresh snapshot for each statement it runs, which is that, without the relay's BEGIN, DELETE,
UPDATE and COMMIT round trips.

Self-contained on purpose: a revision is history and must not change when the Python around it does.

Revision ID: 0006_webhook_delivered
Revises: 0004_events
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006_webhook_delivered"
down_revision = "0004_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION checkout.webhook_delivered(endpoint integer, event bigint, owner text, attempt integer)
RETURNS integer LANGUAGE plpgsql VOLATILE SET lock_timeout = '1s' AS $$
DECLARE
    delivered_checkout text;
BEGIN
    DELETE FROM checkout.webhook_deliveries d
        WHERE d.endpoint_id = endpoint AND d.event_id = event AND d.lease_owner = owner AND d.attempts = attempt
        RETURNING d.checkout_id INTO delivered_checkout;
    IF delivered_checkout IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE checkout.webhook_deliveries w SET next_attempt_at = now()
        WHERE w.endpoint_id = endpoint AND w.state = 'PENDING' AND w.next_attempt_at = 'infinity'
          AND w.event_id = (SELECT min(q.event_id) FROM checkout.webhook_deliveries q
                            WHERE q.endpoint_id = endpoint AND q.checkout_id = delivered_checkout);
    -- Its checkout's next event, due now (written due, when the fan-out wrote both in one statement, or promoted
    -- just above), or backing off.
    RETURN (SELECT count(*) FROM (SELECT 1 FROM checkout.webhook_deliveries n
                                  WHERE n.endpoint_id = endpoint AND n.checkout_id = delivered_checkout
                                    AND n.state = 'PENDING' LIMIT 1) AS next_one);
END
$$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION checkout.webhook_delivered(integer, bigint, text, integer)")
