"""checkout.webhook_delivered_next(): a webhook's 2xx recorded and its checkout's next event leased, in one round trip
(services/events/deliveries.py).

As checkout.webhook_delivered() (0006) does, the row goes and its checkout's next row on that endpoint is made due,
each in a statement of its own (0006 says why they must be two). Then, in a third statement, that next row is leased
to the caller when it is the checkout's head, due and not leased, so the relay sends it at once without a lease
round of its own: a checkout's events go out back to back.

It answers no row when the row was not the caller's to delete (its lease had run out and been taken); else one row:
whether the checkout has a next event waiting on that endpoint, and that event and its attempt when it leased it
(NULLs when not: none waiting, backing off, or leased by another relay).

0006's function stays: a relay of the former code calls it until it is replaced.

Self-contained on purpose: a revision is history and must not change when the Python around it does.

Revision ID: 0007_webhook_delivered_next
Revises: 0006_webhook_delivered
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007_webhook_delivered_next"
down_revision = "0006_webhook_delivered"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION checkout.webhook_delivered_next(endpoint integer, event bigint, owner text, attempt integer,
                                                lease_seconds double precision)
RETURNS TABLE (waiting boolean, next_id bigint, next_type text, next_checkout_id text, next_customer_id text,
               next_occurred_at timestamptz, next_part text, next_data text, next_recorded_at timestamptz,
               next_attempt integer)
LANGUAGE plpgsql VOLATILE SET lock_timeout = '1s' AS $$
DECLARE
    delivered_checkout text;
BEGIN
    DELETE FROM checkout.webhook_deliveries d
        WHERE d.endpoint_id = endpoint AND d.event_id = event AND d.lease_owner = owner AND d.attempts = attempt
        RETURNING d.checkout_id INTO delivered_checkout;
    IF delivered_checkout IS NULL THEN
        RETURN;
    END IF;
    UPDATE checkout.webhook_deliveries w SET next_attempt_at = now()
        WHERE w.endpoint_id = endpoint AND w.state = 'PENDING' AND w.next_attempt_at = 'infinity'
          AND w.event_id = (SELECT min(q.event_id) FROM checkout.webhook_deliveries q
                            WHERE q.endpoint_id = endpoint AND q.checkout_id = delivered_checkout);
    RETURN QUERY
    WITH head AS (
        -- The checkout's first row on the endpoint, whatever its state: only a PENDING one is leased below.
        SELECT h.event_id FROM checkout.webhook_deliveries h
        WHERE h.endpoint_id = endpoint AND h.checkout_id = delivered_checkout
        ORDER BY h.event_id LIMIT 1
    ), due AS (
        -- SKIP LOCKED, as the relay's lease: a row another relay is leasing right now is that relay's.
        SELECT n.event_id FROM checkout.webhook_deliveries n, head
        WHERE n.endpoint_id = endpoint AND n.event_id = head.event_id AND n.state = 'PENDING'
          AND n.next_attempt_at <= now() AND (n.leased_until IS NULL OR n.leased_until < now())
        FOR UPDATE OF n SKIP LOCKED
    ), leased AS (
        UPDATE checkout.webhook_deliveries n
            SET leased_until = now() + make_interval(secs => lease_seconds), lease_owner = owner,
                attempts = n.attempts + 1
        FROM due
        WHERE n.endpoint_id = endpoint AND n.event_id = due.event_id
        RETURNING n.event_id, n.attempts
    )
    SELECT EXISTS (SELECT 1 FROM checkout.webhook_deliveries p
                   WHERE p.endpoint_id = endpoint AND p.checkout_id = delivered_checkout AND p.state = 'PENDING'),
           e.id, e.type, e.checkout_id, e.customer_id, e.occurred_at, e.part, e.data::text, e.recorded_at,
           l.attempts
    FROM (SELECT 1) AS one LEFT JOIN leased l ON true LEFT JOIN checkout.events e ON e.id = l.event_id;
END
$$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION checkout.webhook_delivered_next(integer, bigint, text, integer, double precision)")
