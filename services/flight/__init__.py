"""The flight service."""

from services.flight.service import FlightService

__all__ = ["FlightService"]
