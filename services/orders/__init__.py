"""The orders service."""

from services.orders.service import OrdersService

__all__ = ["OrdersService"]
