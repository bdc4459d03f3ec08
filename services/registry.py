"""The participants, listed once. Everything above services/ iterates this registry and names none of them.

Adding a participant: its package under services/<name>/ (participant.py declaring it, service.py serving it,
models.py with its ledger tables), its Alembic migration, and one line in PARTICIPANTS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.cars.participant import CarsParticipant
from services.flight.participant import FlightParticipant
from services.hotel.participant import HotelParticipant
from services.orders.participant import OrdersParticipant
from services.participant import InventoryService, Participant
from services.wallet.participant import WalletParticipant

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from services.protocol import AvailabilitySink

# The registry is heterogeneous: each participant is typed by its own request model, so the list can only say
# "some request model". Code that takes a participant from here hands it back only requests that participant
# produced (Participant.to_request), never another's.
AnyParticipant = Participant[Any]
AnyService = InventoryService[Any]

PARTICIPANTS: tuple[AnyParticipant, ...] = (
    FlightParticipant(),
    HotelParticipant(),
    CarsParticipant(),
    OrdersParticipant(),
    WalletParticipant(),
)

BY_NAME: Mapping[str, AnyParticipant] = {p.name: p for p in PARTICIPANTS}
BY_FIELD: Mapping[str, AnyParticipant] = {p.field: p for p in PARTICIPANTS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
# `worker --service`: the checkout worker, one participant's worker, or all of them.
WORKER_CHOICES: tuple[str, ...] = ("checkout", *NAMES, "all")


def participant(name: str) -> AnyParticipant:
    """The participant called `name` (KeyError naming the known ones otherwise)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown participant {name!r}: known are {', '.join(NAMES)}") from None


def local_names(placements: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The participants placed `local`: each one's own placement unless `placements` (PARTICIPANT_PLACEMENTS)
    overrides it by name."""
    overrides = placements or {}
    return tuple(p.name for p in PARTICIPANTS if overrides.get(p.name, p.placement) == "local")


def build_services(engine: AsyncEngine, sink: AvailabilitySink | None = None) -> dict[str, AnyService]:
    """Every participant's service on `engine` (one pool shared by all), by name."""
    return {p.name: p.build_service(engine, sink) for p in PARTICIPANTS}


def _check_declarations() -> None:
    for attribute in ("name", "field"):
        values = [getattr(p, attribute) for p in PARTICIPANTS]
        if len(set(values)) != len(values):
            raise RuntimeError(f"two participants share a {attribute}: {values}")
    for p in PARTICIPANTS:
        # An inventory participant's rows feed the unit limits and the sold-out fast path: the default (none)
        # would silently turn both off for it.
        if p.inventory and (type(p).rows is Participant.rows or p.routes is None):
            raise RuntimeError(f"{p.name} is an inventory participant: it declares its rows and its routes")
        if p.stage > 0 and p.inventory:
            raise RuntimeError(f"{p.name}: a later stage is for participants of another kind (inventory holds first)")


_check_declarations()
