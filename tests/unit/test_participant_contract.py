"""The participant contract: nothing above services/ names a participant, and a participant missing an operation
fails the type check (mypy), not a checkout at run time."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import pytest

from api.schemas import CheckoutBody
from services.registry import NAMES, PARTICIPANTS
from workflows.models import CheckoutRequest

ROOT = Path(__file__).resolve().parents[2]
ABOVE_SERVICES = ("api", "checkouts", "workflows", "activities", "runtime", "booking_saga")


def _named_participants(path: Path) -> list[str]:
    """Identifiers and string literals in `path` that are exactly a participant's name or checkout field."""
    words = {p.name for p in PARTICIPANTS} | {p.field for p in PARTICIPANTS}
    found = []
    previous = ""
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        text = token.string.strip("'\"") if token.type == tokenize.STRING else token.string
        # `.items()` is a dict's method, not the orders participant's field.
        attribute = token.type == tokenize.NAME and previous == "."
        if token.type in (tokenize.NAME, tokenize.STRING) and text in words and not attribute:
            found.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string}")
        previous = token.string
    return found


def test_nothing_above_services_names_a_participant() -> None:
    found = [hit for folder in ABOVE_SERVICES for path in sorted((ROOT / folder).rglob("*.py"))
             for hit in _named_participants(path)]
    assert found == []


def test_the_checkout_body_and_request_have_one_field_per_participant() -> None:
    for participant in PARTICIPANTS:
        assert participant.field in CheckoutBody.model_fields
        assert participant.field in CheckoutRequest.model_fields
    assert len(set(NAMES)) == len(PARTICIPANTS)


def test_a_participant_missing_an_operation_fails_the_type_check(tmp_path: Path) -> None:
    module = tmp_path / "half_participant.py"
    module.write_text(textwrap.dedent('''
        from datetime import date

        from services.flight.schemas import FlightRequest
        from services.participant import Participant


        class Half(Participant[FlightRequest]):
            name = "half"
            field = "half"
            title = "Half"
            request_model = FlightRequest
            quantity_field = "seats"

            def describe(self, request: FlightRequest) -> str:
                return "half"

            def demo_offers(self, today: date) -> list[FlightRequest]:
                return []


        REGISTRY = (Half(),)
    '''))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(module)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0, result.stdout
    assert 'Cannot instantiate abstract class "Half"' in result.stdout
    # `rows` has a default (a payment holds no inventory rows); the registry refuses an inventory participant
    # without its own (services/registry.py).
    for missing in ("resources", "build_service"):
        assert missing in result.stdout


@pytest.mark.parametrize("participant", [p for p in PARTICIPANTS if p.inventory],
                         ids=[p.name for p in PARTICIPANTS if p.inventory])
def test_every_inventory_participant_answers_its_demo_offers(participant: object) -> None:
    from datetime import date

    from services.registry import AnyParticipant

    assert isinstance(participant, AnyParticipant.__origin__)  # type: ignore[attr-defined]
    offers = participant.demo_offers(date(2030, 1, 1))  # type: ignore[attr-defined]
    assert offers, "a participant offers something from its demo inventory"
    for offer in offers:
        rows = participant.rows(offer)  # type: ignore[attr-defined]
        assert rows and all(units >= 1 for units in rows.values())
        body = participant.to_body(offer)  # type: ignore[attr-defined]
        assert participant.to_request(body) == offer  # type: ignore[attr-defined]


def test_the_compose_file_runs_the_checkout_worker_and_one_per_remote_participant() -> None:
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workers = {name for name in services if name.startswith("worker-")}
    remote = {f"worker-{p.name}" for p in PARTICIPANTS if p.placement == "remote"}
    assert workers == {"worker-checkout"} | remote
