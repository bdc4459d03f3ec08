"""Inventory services (flight, hotel, orders) and the hold ledger they share."""
