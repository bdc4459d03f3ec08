"""The payload codec (runtime/codec.py): AES-GCM by key id, rotation, plaintext passing through, refusals."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload

from runtime.codec import ENCODING, KEY_ID, EncryptionCodec, PayloadKeyError, data_converter, new_key
from settings import Settings, parse_payload_keys
from workflows.models import CheckoutView


def _key() -> bytes:
    return os.urandom(32)


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_round_trip_hides_the_data_and_names_the_key() -> None:
    codec = EncryptionCodec({"k1": _key()})
    original = _plain('{"customer_id": "alice@example.com"}')
    (sealed,) = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"k1"
    assert b"alice" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [original]
    (again,) = await codec.encode([original])
    assert again.data != sealed.data  # a fresh nonce each time


async def test_rotation_reads_old_payloads_and_writes_with_the_chosen_key() -> None:
    old, new = _key(), _key()
    before = EncryptionCodec({"2025": old})
    (written_before,) = await before.encode([_plain("old")])
    # Step 1: every process learns the new key, still writing with the old one.
    both_old_first = EncryptionCodec({"2025": old, "2026": new})
    assert both_old_first.key_id == "2025"
    # Step 2: write with the new one (PAYLOAD_KEY_ID, or listing it first); the old payloads still decrypt.
    after = EncryptionCodec({"2025": old, "2026": new}, encrypt_with="2026")
    (written_after,) = await after.encode([_plain("new")])
    assert written_after.metadata[KEY_ID] == b"2026"
    assert [p.data for p in await after.decode([written_before, written_after])] == [b"old", b"new"]
    # Step 3, once no history holds a 2025 payload: the old key goes; a 2025 payload is then named, not garbled.
    with pytest.raises(PayloadKeyError, match="2025"):
        await EncryptionCodec({"2026": new}).decode([written_before])


async def test_plaintext_passes_through_decode() -> None:
    """Histories recorded before encryption (tests/replay/histories) still decode and replay."""
    codec = EncryptionCodec({"k1": _key()})
    plain = _plain('"x"')
    assert await codec.decode([plain]) == [plain]


async def test_a_tampered_or_relabelled_payload_is_refused() -> None:
    k1, k2 = _key(), _key()
    codec = EncryptionCodec({"k1": k1, "k2": k2})
    (sealed,) = await codec.encode([_plain("secret")])
    flipped = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadKeyError, match="authentication"):
        await codec.decode([flipped])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"k2"}, data=sealed.data)
    with pytest.raises(PayloadKeyError):
        await codec.decode([relabelled])


async def test_a_process_without_keys_says_what_is_missing() -> None:
    with_keys = data_converter(Settings(payload_keys=new_key("k1")))
    without = data_converter(Settings(payload_keys=""))
    view = CheckoutView.model_validate({"checkout_id": "co-1", "customer_id": "alice", "request_hash": "h",
                                         "status": "HELD"})
    (payload,) = await with_keys.encode([view])
    with pytest.raises(PayloadKeyError, match="PAYLOAD_KEYS"):
        await without.decode([payload], [CheckoutView])
    assert (await with_keys.decode([payload], [CheckoutView]))[0].customer_id == "alice"


def test_payload_keys_setting_is_checked() -> None:
    one, two = base64.b64encode(_key()).decode(), base64.b64encode(_key()).decode()
    assert list(parse_payload_keys(f"a:{one}, b:{two}")) == ["a", "b"]
    assert Settings(payload_keys=f"a:{one},b:{two}", payload_key_id="b").payload_key_id == "b"
    for bad, message in [
        ("nokey", "<id>:<base64"), (f"a:{one},a:{two}", "twice"), ("a:!!!", "base64"),
        ("a:" + base64.b64encode(b"short").decode(), "5 bytes"),
    ]:
        with pytest.raises(ValidationError, match=message):
            Settings(payload_keys=bad)
    with pytest.raises(ValidationError, match="PAYLOAD_KEY_ID"):
        Settings(payload_keys=f"a:{one}", payload_key_id="c")
    assert one not in repr(Settings(payload_keys=f"a:{one}"))  # never in a log line of the settings


def test_tls_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="TEMPORAL_TLS_KEY"):
        Settings(temporal_tls_cert="/x/client.pem")
    assert not Settings().temporal_tls_enabled
    assert Settings(temporal_api_key="k").temporal_tls_enabled  # Temporal Cloud's API keys go over TLS
    with pytest.raises(ValidationError, match="CODEC_CORS_ORIGINS"):
        Settings(codec_cors_origins=["*"])


def _without_keys() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "OPERATOR_TOKEN": "t" * 40, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
            "TEMPORAL_ADDRESS": "127.0.0.1:1"}


@pytest.mark.parametrize("command", [["api"], ["worker", "--service", "checkout", "--noop"]])
def test_production_processes_refuse_to_start_without_payload_keys(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "booking_saga.cli", *command], env=_without_keys(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "PAYLOAD_KEYS is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_allow_insecure_starts_without_payload_keys_and_says_so() -> None:
    # The worker gets past the refusal, warns, then fails on the unreachable Temporal (port 1).
    result = subprocess.run([sys.executable, "-m", "booking_saga.cli", "worker", "--service", "checkout", "--noop"],
                            env={**_without_keys(), "ALLOW_INSECURE": "1"}, capture_output=True, text=True,
                            timeout=60)
    assert "ALLOW_INSECURE=1: the worker starts although PAYLOAD_KEYS is not set" in result.stderr
    assert "refusing to start" not in result.stderr


def test_codec_endpoint_command_prints_the_ui_path() -> None:
    from runtime.codec import ui_codec_path

    result = subprocess.run([sys.executable, "-m", "booking_saga.cli", "codec-endpoint", "--api-url",
                             "https://api.example.com/"], env={"PATH": "/usr/bin:/bin", "OPERATOR_TOKEN": "t" * 40},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://api.example.com" + ui_codec_path("t" * 40)
    assert "t" * 40 not in result.stdout
