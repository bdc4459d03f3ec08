"""The orders participant: stock per sku. Declared in participant.py, served by service.py."""

from services.orders.participant import OrdersParticipant

__all__ = ["OrdersParticipant"]
