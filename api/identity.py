"""Who is calling a checkout route, and what that caller may do.

Contract (CUSTOMER_AUTH, settings/__init__.py):

* `none` (`make dev`): the caller is *anyone*; the body's `customer_id` is trusted and every checkout id may be
  read, confirmed, cancelled and extended by whoever knows it. No header is looked at.
* `jwt`: every checkout route needs `Authorization: Bearer <token>`.
  - A JWT verified with the one configured algorithm (HS256 with CUSTOMER_JWT_SECRET, or RS256 / ES256 with the
    public key file CUSTOMER_JWT_PUBLIC_KEY), with `exp` required, `aud` / `iss` checked when configured and a
    `sub` that is a valid customer id (1-64 of A-Za-z0-9._:-) makes the caller that customer. A configured
    audience or issuer must be in the token (production requires both: settings.start_checks), and
    no token may live longer than CUSTOMER_JWT_MAX_LIFETIME_SECONDS (its `exp` from now, and from its `iat`).
    A customer may place checkouts only for itself (another body `customer_id`: 403) and sees only its own
    checkouts: another customer's checkout answers 404 exactly like one that does not exist, so ids cannot be
    probed.
  - The operator token (OPERATOR_TOKEN, compared in constant time) makes the caller the operator, who may read
    and cancel any checkout (support, fraud) but not place, confirm or extend one (403): a sale or a longer hold
    is the customer's act.
  - A missing token, or one that is expired, forged (bad signature, another algorithm, `alg: none`), for another
    audience or issuer, or otherwise invalid: 401 problem+json with an RFC 6750 `WWW-Authenticate` challenge.

The key is read when the app is built (`CustomerTokens.from_settings`, called by create_app), so a missing or
unreadable key file stops the API at startup, not on the first request.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from jwt.types import Options
from starlette.applications import Starlette
from starlette.types import Scope
from temporalio.client import Client

from api.auth import bearer as operator_bearer
from api.problems import Problem, ProblemError, problem_docs
from api.temporal_link import TemporalLink
from checkouts import saga
from checkouts.bookings import view_of
from services.bookings.records import BookingRecords
from services.types import IDENTIFIER_PATTERN
from settings import Settings
from workflows.models import CANCEL, CheckoutView

REALM = "booking-saga"
# Tolerated clock difference between the token issuer and this host, for `exp`, `nbf` and `iat`.
CLOCK_SKEW_SECONDS = 30
# The customer id rule is the body's (services.types.Identifier): one copy of the pattern.
CUSTOMER_ID = re.compile(IDENTIFIER_PATTERN)
# RFC 6750 3: error_description is limited to these characters (no quote, no backslash).
_DESCRIPTION_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# The scope key of the request's caller, with the token it was identified by (`request_caller`).
_CALLER = "booking_saga.caller"

# auto_error=False: a missing header must give our problem+json 401, not FastAPI's plain 403. The scheme is what
# OpenAPI declares as customerJwt.
customer_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="customerJwt",
    bearerFormat="JWT",
    description="A customer's JWT (CUSTOMER_AUTH=jwt): `sub` is the customer id. Not needed when CUSTOMER_AUTH=none.",
)

CallerKind = Literal["anyone", "customer", "operator"]


@dataclass(frozen=True, slots=True)
class Caller:
    """`anyone` (CUSTOMER_AUTH=none), a `customer` (its id from the token's `sub`) or the `operator`."""

    kind: CallerKind
    customer_id: str = ""

    def may_see(self, view: CheckoutView) -> bool:
        # A plain compare: customer ids are not secrets (the token proves who the caller is).
        return self.kind != "customer" or view.customer_id == self.customer_id

    def check_places_for(self, customer_id: str | None) -> str:
        """The customer a checkout is placed for: the body's `customer_id`, or under jwt the token's (the body
        may leave it out). 403 unless this caller may place it for that customer; 422 when no one is named."""
        if self.kind == "operator":
            raise forbidden("the operator token cannot place checkouts: send the customer's token")
        if self.kind == "customer":
            if customer_id is not None and customer_id != self.customer_id:
                raise forbidden("customer_id must be the customer the token names (its `sub`)")
            return self.customer_id
        if customer_id is None:
            raise ProblemError(422, "invalid-request", "Invalid request", "customer_id is required")
        return customer_id


ANYONE = Caller("anyone")
OPERATOR = Caller("operator")


class InvalidToken(Exception):
    """The token is not acceptable; the message is safe to send back (it never repeats the token)."""


class CustomerTokens:
    """Verifies customer JWTs with one pinned algorithm and key."""

    def __init__(self, key: str | RSAPublicKey | EllipticCurvePublicKey, algorithm: str, audience: str = "",
                 issuer: str = "", max_lifetime_seconds: int = 3600) -> None:
        self.key = key
        self.algorithm = algorithm
        self.audience = audience
        self.issuer = issuer
        self.max_lifetime_seconds = max_lifetime_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> CustomerTokens | None:
        """None when CUSTOMER_AUTH=none. Raises RuntimeError when the key file cannot be used."""
        if settings.customer_auth != "jwt":
            return None
        audience, issuer = settings.customer_jwt_audience, settings.customer_jwt_issuer
        lifetime = settings.customer_jwt_max_lifetime_seconds
        if settings.customer_jwt_secret:
            return cls(settings.customer_jwt_secret, "HS256", audience, issuer, lifetime)
        key, algorithm = load_public_key(settings.customer_jwt_public_key, settings.customer_jwt_algorithm)
        return cls(key, algorithm, audience, issuer, lifetime)

    def customer_of(self, token: str) -> str:
        """The customer id the token names, or InvalidToken."""
        # A configured audience or issuer is required in the token, not only checked when the token has one.
        required = ["exp", "sub"] + (["aud"] if self.audience else []) + (["iss"] if self.issuer else [])
        options: Options = {"require": required, "verify_aud": bool(self.audience), "verify_iss": bool(self.issuer)}
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[self.algorithm], options=options,
                audience=self.audience or None, issuer=self.issuer or None, leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("the token signature does not verify") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise InvalidToken(f"the token is not signed with {self.algorithm}") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("the token is not for this audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token is not from the expected issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim} claim") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet") from exc
        except jwt.DecodeError as exc:
            raise InvalidToken("the token is not a well-formed JWT") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is invalid ({type(exc).__name__})") from exc
        self._check_lifetime(claims)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not CUSTOMER_ID.fullmatch(subject):
            raise InvalidToken("the token sub is not a customer id (1-64 of A-Z a-z 0-9 . _ : -)")
        return subject


    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """A token may not outlive CUSTOMER_JWT_MAX_LIFETIME_SECONDS: from now (any token), and from its `iat`."""
        expires, issued = claims["exp"], claims.get("iat")
        longest = self.max_lifetime_seconds + CLOCK_SKEW_SECONDS
        if expires - time.time() > longest or (isinstance(issued, int | float) and expires - issued > longest):
            raise InvalidToken(f"the token lives longer than {self.max_lifetime_seconds} s")


def load_public_key(path: str, algorithm: str) -> tuple[RSAPublicKey | EllipticCurvePublicKey, str]:
    """The PEM public key in `path` and the algorithm it verifies; RuntimeError says what is wrong."""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise RuntimeError(f"CUSTOMER_JWT_PUBLIC_KEY={path} cannot be read: {exc.strerror or exc}") from exc
    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise RuntimeError(f"CUSTOMER_JWT_PUBLIC_KEY={path} is not a PEM public key") from exc
    if isinstance(key, RSAPublicKey):
        if key.key_size < 2048:
            raise RuntimeError(f"CUSTOMER_JWT_PUBLIC_KEY={path}: an RSA key needs at least 2048 bits")
        found = "RS256"
    elif isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        found = "ES256"
    else:
        raise RuntimeError(f"CUSTOMER_JWT_PUBLIC_KEY={path}: only RSA (RS256) and P-256 (ES256) keys are supported")
    if algorithm and algorithm != found:
        raise RuntimeError(f"CUSTOMER_JWT_ALGORITHM={algorithm} does not match the key in {path} ({found})")
    return key, found


def install_identity(app: FastAPI, settings: Settings) -> None:
    """Build the verifier now (startup), where the checkout routes find it."""
    app.state.customer_tokens = CustomerTokens.from_settings(settings)


def unauthorized(detail: str, error_description: str | None = None) -> ProblemError:
    challenge = f'Bearer realm="{REALM}"'
    if error_description is not None:
        safe = _DESCRIPTION_UNSAFE.sub("", error_description)
        challenge += f', error="invalid_token", error_description="{safe}"'
    return ProblemError(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str) -> ProblemError:
    return ProblemError(403, "forbidden", "Forbidden", detail)


def _caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    return request_caller(request.scope, credentials.credentials if credentials is not None else None)


def request_caller(scope: Scope, token: str | None) -> Caller:
    """Who sends this request (`token`: its bearer token), identified once per request: the sold-out lane
    (api/sold_out.py) and the route's dependency share the answer. A refused token is refused each time."""
    known = scope.get(_CALLER)
    if isinstance(known, tuple) and known[0] == token:
        caller: Caller = known[1]
        return caller
    caller = caller_of(scope["app"], token)
    scope[_CALLER] = (token, caller)
    return caller


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, read as `customer_bearer` reads it."""
    scheme, token = get_authorization_scheme_param(authorization)
    return token if authorization and scheme.lower() == "bearer" and token else None


def caller_of(app: Starlette, token: str | None) -> Caller:
    """Who sends `token` (the bearer token, None when there is none) to `app`; 401 when it is refused."""
    tokens: CustomerTokens | None = app.state.customer_tokens
    if tokens is None:
        return ANYONE
    if not token:
        raise unauthorized("this route needs `Authorization: Bearer <customer token>`")
    operator_token: str = app.state.booking.settings.operator_token
    # Constant-time compare: response times must not reveal how much of a guess was right.
    if operator_token and hmac.compare_digest(token.encode(), operator_token.encode()):
        return OPERATOR
    try:
        return Caller("customer", tokens.customer_of(token))
    except InvalidToken as exc:
        raise unauthorized(f"the bearer token was refused: {exc}", str(exc)) from None


async def get_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(customer_bearer)]
) -> Caller:
    return _caller(request, credentials)


async def get_caller_or_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(customer_bearer)],
    # Reads the same header: declared so that OpenAPI lists the operator token as an alternative here.
    _operator: Annotated[HTTPAuthorizationCredentials | None, Depends(operator_bearer)],
) -> Caller:
    return _caller(request, credentials)


# Routes only the customer may use (place, confirm, extend), and those the operator may use too (read, cancel).
CallerDep = Annotated[Caller, Depends(get_caller)]
CallerOrOperatorDep = Annotated[Caller, Depends(get_caller_or_operator)]


async def read_checkout(
    caller: Caller, client: Client, checkout_id: str, records: BookingRecords | None = None
) -> CheckoutView:
    """The checkout as `caller` may see it: another customer's checkout is a 404, like an unknown one. With
    `records`, from the saga or its booking record (checkouts/bookings.py)."""
    try:
        view = await view_of(client, records, checkout_id)
    except ProblemError as problem:
        # An abnormally ended saga has no readable owner: only the operator learns that it exists.
        if caller.kind == "customer" and problem.status == 409:
            raise saga.unknown_checkout(checkout_id) from None
        raise
    if not caller.may_see(view):
        raise saga.unknown_checkout(checkout_id)
    return view


async def check_may_change(
    caller: Caller, temporal: TemporalLink, checkout_id: str, action: str, records: BookingRecords | None = None
) -> None:
    """Before an update is sent: 403 for the operator (cancel aside), 404 for another customer's checkout.

    A customer's check costs one state query, and only with CUSTOMER_AUTH=jwt: the owner is in the saga, not in
    the id (an HMAC of customer and key). The operator's 403 needs no Temporal, hence the link, not a client.
    """
    if caller.kind == "anyone":
        return
    if caller.kind == "operator":
        if action != CANCEL:
            raise forbidden(f"the operator token may read and cancel checkouts, not {action} them")
        return
    await read_checkout(caller, temporal.require(), checkout_id, records)


def auth_docs(forbidden_when: str | None = None) -> dict[int | str, dict[str, Any]]:
    """The 401 (and 403) of a checkout route, for its OpenAPI `responses`."""
    overrides = {"s401": (Problem, "CUSTOMER_AUTH=jwt only: no bearer token, or an expired, forged or otherwise "
                                   "invalid one (see WWW-Authenticate).")}
    statuses = [401]
    if forbidden_when:
        overrides["s403"] = (Problem, forbidden_when)
        statuses.append(403)
    docs = problem_docs(*statuses, **overrides)
    docs[401]["headers"] = {"WWW-Authenticate": {"description": "The RFC 6750 Bearer challenge.",
                                                 "schema": {"type": "string"}}}
    return docs


def optional_in_dev(schema: dict[str, Any], settings: Settings) -> None:
    """With CUSTOMER_AUTH=none the checkout routes need no token: say so (an empty security requirement), and the
    checkout body must name its customer (under jwt the token does)."""
    if settings.customer_auth != "none":
        return
    body = schema.get("components", {}).get("schemas", {}).get("CheckoutBody")
    if isinstance(body, dict) and "customer_id" not in body.setdefault("required", []):
        body["required"].insert(0, "customer_id")
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            security = operation.get("security")
            if isinstance(security, list) and any("customerJwt" in requirement for requirement in security):
                security.append({})
