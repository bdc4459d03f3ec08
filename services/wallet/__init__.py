"""The wallet participant: a travel-credit account per customer and currency, a payment of another kind.
Declared in participant.py, served by service.py."""

from services.wallet.participant import WalletParticipant

__all__ = ["WalletParticipant"]
