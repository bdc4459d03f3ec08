"""The codec server: Temporal's codec server protocol over this process's payload codec, so that the Temporal UI
and CLI show operators decrypted payloads (runtime/codec.py; docs/temporal-security.md).

- `POST /codec/decode` and `POST /codec/encode`: a JSON body `{"payloads": [...]}`, each payload in proto3 JSON
  (`metadata` values and `data` base64), answered in the same shape; `Authorization: Bearer <OPERATOR_TOKEN>`
  (the CLI: `--codec-endpoint <api>/codec --codec-auth "Bearer $OPERATOR_TOKEN"`). The X-Namespace header is
  accepted and ignored: one codec serves the namespace.
- `POST /codec/ui/<key>/decode|encode`: the same for the Temporal UI, which sends no Authorization header of ours
  (only an OIDC token, or cookies): `<key>` is derived from the operator token (ui_codec_path), so the path itself
  is the credential; rotating OPERATOR_TOKEN changes it. Give the UI `<api>/codec/ui/<key>` as its codec endpoint.
- CORS: only the origins in CODEC_CORS_ORIGINS (the Temporal UIs), only for /codec/*, no credentials mode.
- A body that is not that JSON: 400 problem+json; a payload this process cannot decrypt (its key id is not in
  PAYLOAD_KEYS, or it was altered): 422 problem+json naming the key id.

Not in the OpenAPI document: operator tooling for Temporal's clients, not part of the booking API.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from api.auth import require_operator
from api.deps import StateDep
from api.problems import ProblemError
from runtime.codec import CODEC_PREFIX as PREFIX
from runtime.codec import PayloadKeyError, payload_codec, ui_key
from settings import Settings

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _codec(state: StateDep) -> PayloadCodec:
    if state.payload_codec is None:
        state.payload_codec = payload_codec(state.settings)
    return state.payload_codec


async def _payloads(request: Request) -> Payloads:
    body = await request.body()
    try:
        return json_format.Parse(body, Payloads())
    except (json_format.ParseError, UnicodeDecodeError) as error:
        raise ProblemError(400, "bad-payloads", "Not a payloads body",
                           'expected JSON {"payloads": [{"metadata": {...}, "data": "<base64>"}]}: ' + str(error)
                           ) from error


async def _convert(request: Request, state: StateDep, action: Literal["encode", "decode"]) -> Response:
    payloads = await _payloads(request)
    codec = _codec(state)
    try:
        converted = await (codec.encode if action == "encode" else codec.decode)(list(payloads.payloads))
    except PayloadKeyError as error:
        raise ProblemError(422, "undecryptable-payload", "Cannot decrypt a payload", str(error)) from error
    return JSONResponse({"payloads": [json_format.MessageToDict(payload) for payload in converted]})


def _require_ui_key(state: StateDep, key: Annotated[str, Path()]) -> None:
    if not hmac.compare_digest(key.encode(), ui_key(state.settings.operator_token).encode()):
        raise ProblemError(404, "not-found", "Not Found", "no such codec endpoint")


@router.post("/{action}", dependencies=[Depends(require_operator)])
async def convert(request: Request, state: StateDep, action: Literal["encode", "decode"]) -> Response:
    return await _convert(request, state, action)


@router.post("/ui/{key}/{action}", dependencies=[Depends(_require_ui_key)])
async def convert_for_ui(request: Request, state: StateDep, action: Literal["encode", "decode"]) -> Response:
    return await _convert(request, state, action)


class CodecCors:
    """CORS for /codec/* alone, with its own origins (the Temporal UIs), outside the app's CORS for the shop's
    front ends: each path sees only its own policy (a UI preflight never meets the shop's origin list)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=settings.codec_cors_origins, allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"], allow_credentials=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
