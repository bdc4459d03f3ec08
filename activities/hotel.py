"""Activities of the hotel service: 'hotel.hold', '.confirm', '.release', '.extend', '.alternatives'."""

from __future__ import annotations

from activities.adapter import ServiceActivities


class HotelActivities(ServiceActivities):
    service_name = "hotel"
