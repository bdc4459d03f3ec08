"""One-line descriptions for operators: the workflow's static summary, activity summaries, resources touched."""

from __future__ import annotations

from services.protocol import ServiceRequest
from services.types import FlightRequest, HotelRequest, ItemsRequest, ServiceName
from workflows.models import CheckoutRequest


def request_parts(request: CheckoutRequest) -> list[tuple[ServiceName, ServiceRequest]]:
    parts: list[tuple[ServiceName, ServiceRequest | None]] = [
        ("flight", request.flight), ("hotel", request.hotel), ("orders", request.items)
    ]
    return [(name, part) for name, part in parts if part is not None]


def describe(request: ServiceRequest) -> str:
    """'BA117/economy x2', 'H1/deluxe 2026-12-01..2026-12-03 x1', 'SKU-1 x3, SKU-2 x1'."""
    if isinstance(request, FlightRequest):
        return f"{request.flight_id}/{request.seat_class} x{request.seats}"
    if isinstance(request, HotelRequest):
        return f"{request.hotel_id}/{request.room_type} {request.check_in}..{request.check_out} x{request.rooms}"
    return ", ".join(f"{line.sku} x{line.quantity}" for line in request.items)


def resources(request: CheckoutRequest) -> list[str]:
    """The CheckoutResources search attribute: 'flight:BA117/economy', 'hotel:H1/deluxe', 'orders:SKU-1'."""
    found: list[str] = []
    for service, part in request_parts(request):
        if isinstance(part, FlightRequest):
            found.append(f"{service}:{part.flight_id}/{part.seat_class}")
        elif isinstance(part, HotelRequest):
            found.append(f"{service}:{part.hotel_id}/{part.room_type}")
        elif isinstance(part, ItemsRequest):
            found += [f"{service}:{line.sku}" for line in part.items]
    return found


def checkout_summary(request: CheckoutRequest) -> str:
    """The workflow's static summary (pass it as `static_summary=` when starting CheckoutSaga)."""
    return f"checkout for {request.customer_id}: " + "; ".join(
        f"{service} {describe(part)}" for service, part in request_parts(request)
    )


def activity_summary(operation: str, service: ServiceName, request: ServiceRequest) -> str:
    return f"{operation} {service} {describe(request)}"
