"""Checks on operator input that the pydantic request models do not cover (upserts take plain values)."""

from __future__ import annotations

import re

from services.errors import InvalidRequest

IDENTIFIER = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_CAPACITY = 1_000_000


def identifier(what: str, value: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise InvalidRequest(f"{what} must be 1-64 of A-Za-z0-9._:- (got {value!r})")
    return value


def label(what: str, value: str) -> str:
    """A free-text name such as a city or an airport: non-empty, bounded."""
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise InvalidRequest(f"{what} must be 1-100 characters")
    return value.strip()


def capacity(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAPACITY:
        raise InvalidRequest(f"{what} must be an integer from 0 to {MAX_CAPACITY} (got {value!r})")
    return value


def capacities(what: str, values: dict[str, int]) -> dict[str, int]:
    if not values:
        raise InvalidRequest(f"{what} must name at least one")
    if len(values) > 50:
        raise InvalidRequest(f"{what} may name at most 50")
    return {identifier(what, name): capacity(f"{what}[{name}]", n) for name, n in values.items()}
