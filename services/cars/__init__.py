"""The car-rental participant: cars per (depot, car class, day). Declared in participant.py, served by service.py."""

from services.cars.participant import CarsParticipant

__all__ = ["CarsParticipant"]
