"""The hotel service."""

from services.hotel.service import HotelService

__all__ = ["HotelService"]
