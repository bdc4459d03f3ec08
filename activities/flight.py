"""Activities of the flight service: 'flight.hold', '.confirm', '.release', '.extend', '.alternatives'."""

from __future__ import annotations

from activities.adapter import ServiceActivities


class FlightActivities(ServiceActivities):
    service_name = "flight"
