"""Payload encryption for Temporal: an AES-256-GCM PayloadCodec whose keys are known by id, so they rotate.

Contract:
- encode: each payload becomes a new payload with metadata `encoding: binary/encrypted` and
  `encryption-key-id: <id>`, whose data is a random 12-byte nonce followed by the AES-GCM ciphertext (with its tag)
  of the original payload serialized whole (metadata included). The key id is authenticated too (associated data),
  so a payload cannot be passed off as another key's.
- decode: a payload with that encoding is decrypted with the key its metadata names; any other payload passes
  through unchanged, so histories recorded before encryption (or by a process without keys) still decode and replay.
  A payload whose key is unknown, or that fails authentication, raises an error naming PAYLOAD_KEYS.
- Rotation: PAYLOAD_KEYS lists every key still needed to read (`id:<base64 of 32 bytes>,...`); new payloads use
  PAYLOAD_KEY_ID, else the first key. Add the new key first everywhere, then (once every process has it) encrypt
  with it, and drop the old key only after the last history written with it is gone (the namespace's retention).

Every process that talks to Temporal builds its data converter here (runtime.temporal.connect, the Replayer,
the tests' environments), on top of the pydantic converter. Search attributes are not payloads of this kind: the
server indexes them, so they stay plaintext (workflows/search_attributes.py says what of the customer goes there).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from settings import Settings, parse_payload_keys

# The codec server's routes on the API (api/routes/codec.py); the dev stack points the Temporal UI at them.
CODEC_PREFIX = "/codec"
_UI_KEY_CONTEXT = b"booking-saga temporal-ui codec endpoint"

log = logging.getLogger(__name__)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE_BYTES = 12
_AAD_PREFIX = b"booking-saga payload key "


class PayloadKeyError(ValueError):
    """A payload this process cannot decrypt (unknown key id, or tampered with)."""


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads; see the module docstring for the format."""

    def __init__(self, keys: Mapping[str, bytes], encrypt_with: str | None = None) -> None:
        if not keys:
            raise ValueError("EncryptionCodec needs at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_id = encrypt_with or next(iter(keys))
        if self.key_id not in self._ciphers:
            raise ValueError(f"PAYLOAD_KEY_ID={self.key_id} is not one of the ids in PAYLOAD_KEYS")

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE_BYTES)
        aad = _AAD_PREFIX + self.key_id.encode()
        sealed = self._ciphers[self.key_id].encrypt(nonce, payload.SerializeToString(), aad)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # not ours: plaintext from before encryption, or from a process without keys
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"a payload is encrypted with key id {key_id!r}, which PAYLOAD_KEYS does not hold")
        try:
            plain = cipher.decrypt(payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:],
                                   _AAD_PREFIX + key_id.encode())
        except InvalidTag as error:
            raise PayloadKeyError(f"a payload under key id {key_id!r} failed authentication: wrong key for that id "
                                  "in PAYLOAD_KEYS, or the payload was altered") from error
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


class MissingKeyCodec(PayloadCodec):
    """The codec of a process without PAYLOAD_KEYS: writes plaintext, reads plaintext, and says what is missing
    when it meets an encrypted payload (instead of the pydantic converter's "unknown encoding")."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for payload in payloads:
            if payload.metadata.get("encoding") == ENCODING:
                key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
                raise PayloadKeyError(f"a payload is encrypted (key id {key_id!r}): set PAYLOAD_KEYS to read it")
        return list(payloads)


def payload_codec(settings: Settings) -> PayloadCodec:
    keys = parse_payload_keys(settings.payload_keys)
    if not keys:
        return MissingKeyCodec()
    return EncryptionCodec(keys, settings.payload_key_id or None)


def converter_with(codec: PayloadCodec) -> DataConverter:
    """The pydantic converter with `codec` on every payload, and failures' messages and stack traces moved into an
    encoded payload too (a failure message can carry what its activity was given)."""
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter(settings: Settings) -> DataConverter:
    """The data converter of every client, worker and replayer of this process."""
    return converter_with(payload_codec(settings))


def new_key(key_id: str = "k1") -> str:
    """A fresh PAYLOAD_KEYS entry: `<key_id>:<base64 of 32 random bytes>`."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def dev_payload_keys(data_dir: Path | None) -> str:
    """`booking-saga dev`'s PAYLOAD_KEYS when none is configured: a dev key kept in DATA_DIR/payload-keys (so the
    histories it keeps between runs stay readable), or a new one each run when nothing is kept."""
    if data_dir is None:
        return new_key("dev")
    path = data_dir / "payload-keys"
    if not path.exists():
        path.write_text(new_key("dev") + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def ui_key(operator_token: str) -> str:
    """The UI's path credential: an HMAC of a fixed label under the operator token (never the token itself)."""
    digest = hmac.new(operator_token.encode(), _UI_KEY_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def ui_codec_path(operator_token: str) -> str:
    """The Temporal UI's codec endpoint on the API, without scheme and host: `/codec/ui/<key>`."""
    return f"{CODEC_PREFIX}/ui/{ui_key(operator_token)}"
