"""Prometheus metrics, in a registry per app (so tests can build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from workflows.models import CheckoutView

# A checkout answers in tens of milliseconds when all is well and in seconds behind a slow ledger or lock
# retries; the buckets cover both.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.checkouts = Counter(
            "booking_checkouts",
            "POST /v1/checkouts answers, by outcome (held, rejected, failed, replayed statuses, errors).",
            ["outcome"],
            registry=self.registry,
        )
        self.checkout_latency = Histogram(
            "booking_checkout_seconds",
            "Time to answer POST /v1/checkouts, holds placed or rolled back included.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.checkout_actions = Counter(
            "booking_checkout_actions",
            "POST /v1/checkouts/{id}/confirm and /cancel answers, by action and outcome (the checkout's status "
            "lower-cased, or refused). A repeated confirm is counted again: conversion uses the workers' "
            "booking_checkout_status_total, once per checkout.",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.holds = Counter(
            "booking_holds",
            "Holds reported in checkout answers, by service and hold outcome.",
            ["service", "outcome"],
            registry=self.registry,
        )
        self.fast_path_rejections = Counter(
            "booking_fast_path_rejections",
            "Checkouts answered 409 from the availability cache, without starting a saga.",
            registry=self.registry,
        )
        self.dependency_errors = Counter(
            "booking_dependency_errors",
            "Readiness checks (/readyz) of a dependency (temporal, database, redis) that failed.",
            ["dependency"],
            registry=self.registry,
        )
        self.unavailable_answers = Counter(
            "booking_saga_unavailable_answers",
            "503 answers (problem+json with Retry-After), by the dependency that was down (database, temporal, "
            "redis). /readyz's own 503 is not counted: it reports, it does not refuse a request.",
            ["dependency"],
            registry=self.registry,
        )

        self.rate_limited = Counter(
            "booking_rate_limited",
            "Requests refused 429 by the per-caller rate limit (RATE_LIMIT), by caller kind (customer, operator, "
            "address).",
            ["caller"],
            registry=self.registry,
        )
        self.rate_limit_unchecked = Counter(
            "booking_rate_limit_unchecked",
            "Requests let through without a rate-limit check because the limiter's store (Redis) failed or was "
            "slower than REDIS_BUDGET_MS (fail open).",
            registry=self.registry,
        )

    def observe_action(self, action: str, outcome: str) -> None:
        self.checkout_actions.labels(action=action, outcome=outcome).inc()

    def observe_checkout(self, outcome: str, seconds: float, view: CheckoutView | None = None) -> None:
        self.checkouts.labels(outcome=outcome).inc()
        self.checkout_latency.labels(outcome=outcome).observe(seconds)
        if view is not None:
            for hold in view.holds:
                self.holds.labels(service=hold.service, outcome=hold.status.value.lower()).inc()
