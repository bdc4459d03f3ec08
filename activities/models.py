"""What the workflow sends the service activities. Pure pydantic: safe to import from workflow code."""

from __future__ import annotations

from datetime import datetime

from services.types import FlightRequest, Frozen, HotelRequest, ItemsRequest

# A union the pydantic converter resolves unambiguously: every request model forbids extra fields.
AnyRequest = FlightRequest | HotelRequest | ItemsRequest


class HoldInput(Frozen):
    hold_key: str
    request: AnyRequest
    expires_at: datetime


class ExtendHoldInput(Frozen):
    hold_key: str
    expires_at: datetime


def activity_name(service: str, operation: str) -> str:
    """'flight.hold', 'hotel.release', ...: one place decides how activities are named."""
    return f"{service}.{operation}"


OPERATIONS = ("hold", "confirm", "release", "extend", "alternatives")
