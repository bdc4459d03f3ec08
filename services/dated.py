"""Dated inventory, the declarations: one ledger row per (site, class, date), shared by the participants that sell
a thing per date (hotel rooms per night, cars per day, a team's tours per day).

A dated request asks for `quantity` units of one class at one site for every date from `first` up to, not
including, `end` (check-out, drop-off): it holds one row per date, all or nothing. The rules kept here once:
- the dates of a span (`dates_between`) and a row's ledger name (`resource_name`: `H1/deluxe/2031-01-01`);
- the span rule (`end` after `first`, at most `max_span` dates) and the upsert range rule (`last` not before
  `first`, at most `max_upsert` dates, both ends included), as pydantic validators on the later field
  (`DatedRules.span_validator`, `DatedRules.range_validator`);
- what a request holds, how operators read it and what it is searched by (`DatedParticipant`).

A dated participant declares only its own names: its request model's fields (`DatedParticipant.line` and
`DatedParticipant.request` translate them to and from a `DatedLine`), the nouns of its messages (`DatedRules`),
its models and their OpenAPI descriptions. The database half (availability, alternatives, operator upsert, the
hold's resolver) is services/ledger/dated.py.

Pure declarations (pydantic only): safe to import in workflow code, like every participant.py.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationInfo, field_validator

from services.participant import Participant, RequestT

if TYPE_CHECKING:
    # A validator of this module, to assign as a model's class attribute (pydantic collects it from there).
    DateValidator = classmethod[BaseModel, [date, ValidationInfo], date]
# (first field's name, its value, later field's name, its value): raises ValueError with the message for people.
_Check = Callable[[str, date, str, date], None]


def dates_between(first: date, end: date) -> list[date]:
    """The dates from `first` up to, not including, `end` (a check-out, a drop-off date)."""
    return [first + timedelta(days=i) for i in range((end - first).days)]


def resource_name(site_id: str, kind: str, day: date) -> str:
    """A dated ledger row's name: `{site}/{class}/{YYYY-MM-DD}`."""
    return f"{site_id}/{kind}/{day.isoformat()}"


@dataclass(frozen=True)
class DatedRules:
    """The date limits of one dated participant and the nouns its messages use."""

    unit: str  # 'night': "a stay may not exceed 60 nights", "at most 366 nights per upsert"
    span: str  # 'stay': what a request's dates are called ("shifted stay")
    kind: str  # 'room type': what a class is called ("another room type")
    max_span: int  # a request covers at most this many dates
    max_upsert: int  # an upsert offers at most this many dates (both ends included)

    def check_span(self, first_name: str, first: date, end_name: str, end: date) -> None:
        if end <= first:
            raise ValueError(f"{end_name} must be after {first_name}")
        if (end - first).days > self.max_span:
            raise ValueError(f"a {self.span} may not exceed {self.max_span} {self.unit}s")

    def check_range(self, first_name: str, first: date, last_name: str, last: date) -> None:
        if last < first:
            raise ValueError(f"{last_name} must not be before {first_name}")
        if (last - first).days >= self.max_upsert:
            raise ValueError(f"at most {self.max_upsert} {self.unit}s per upsert")

    # On the later field, not the model: a 422 then names it (`body.{field}.check_out`, `query.check_out`).
    def span_validator(self, first: str, end: str) -> DateValidator:
        """The validator of field `end` (a model attribute): after field `first`, at most `max_span` dates."""
        return self._later_field(first, end, self.check_span)

    def range_validator(self, first: str, last: str) -> DateValidator:
        """The validator of field `last`: not before field `first`, at most `max_upsert` dates (inclusive)."""
        return self._later_field(first, last, self.check_range)

    @staticmethod
    def _later_field(first: str, later: str, check: _Check) -> DateValidator:
        def validate(cls: type[BaseModel], value: date, info: ValidationInfo) -> date:
            earlier = info.data.get(first)
            if isinstance(earlier, date):  # absent when that field failed its own validation
                check(first, earlier, later, value)
            return value

        return field_validator(later)(classmethod(validate))


@dataclass(frozen=True)
class DatedLine:
    """A dated request in the shared names: `quantity` units of class `kind` at `site` for every date from
    `first` up to, not including, `end`."""

    site: str
    kind: str
    first: date
    end: date
    quantity: int

    def dates(self) -> list[date]:
        return dates_between(self.first, self.end)

    def shifted(self, days: int) -> DatedLine:
        delta = timedelta(days=days)
        return replace(self, first=self.first + delta, end=self.end + delta)


class DatedParticipant(Participant[RequestT]):
    """A participant selling one row per (site, class, date). Subclasses declare their names (Participant's
    attributes, `rules`; `routes.noun` names a site) and the two translations below; rows, description and
    resources follow."""

    rules: DatedRules

    @abstractmethod
    def line(self, request: RequestT) -> DatedLine:
        """The request in the shared names."""

    @abstractmethod
    def request(self, line: DatedLine) -> RequestT:
        """The request model for `line` (alternatives offer these)."""

    def starts_on(self, request: RequestT) -> date | None:
        return self.line(request).first

    def rows(self, request: RequestT) -> dict[str, int]:
        line = self.line(request)
        return {resource_name(line.site, line.kind, day): line.quantity for day in line.dates()}

    def describe(self, request: RequestT) -> str:
        line = self.line(request)
        return f"{line.site}/{line.kind} {line.first}..{line.end} x{line.quantity}"

    def resources(self, request: RequestT) -> list[str]:
        line = self.line(request)
        return [f"{line.site}/{line.kind}"]
