"""The hotel participant: rooms per (hotel, room type, night). Declared in participant.py, served by service.py."""

from services.hotel.participant import HotelParticipant

__all__ = ["HotelParticipant"]
