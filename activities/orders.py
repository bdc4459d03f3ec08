"""Activities of the orders service: 'orders.hold', '.confirm', '.release', '.extend', '.alternatives'."""

from __future__ import annotations

from activities.adapter import ServiceActivities


class OrdersActivities(ServiceActivities):
    service_name = "orders"
