"""The flight participant: seats per (flight, seat class). Declared in participant.py, served by service.py."""

from services.flight.participant import FlightParticipant

__all__ = ["FlightParticipant"]
