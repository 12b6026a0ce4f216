"""OIDC bearer tokens: compiled issuers and the pure verification of one token.

An issuer's JSON Web Key Set travels in the snapshot and is parsed once per snapshot; a token
is then verified with no I/O: signature (asymmetric algorithms only: ``none`` and HMAC are
refused, so a public key can never be used as a shared secret), issuer, audience, and expiry
and not-before against the ``now`` given (with ``LEEWAY_S`` for clock skew).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK

ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_S = 30


class OidcError(ValueError):
    """The token is not acceptable; the message says why (never echoing the token)."""


@dataclass(frozen=True, slots=True)
class Issuer:
    id: str
    tenant_id: str
    issuer: str
    audience: str
    keys: Mapping[str, PyJWK]  # by kid ("" for a key without one)
    subject_claim: str
    roles_claim: str
    route_ids: frozenset[str]
    role_routes: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Identity:
    issuer: Issuer
    subject: str
    roles: tuple[str, ...]

    def route_ids(self) -> frozenset[str]:
        granted = set(self.issuer.route_ids)
        for role in self.roles:
            granted |= self.issuer.role_routes.get(role, frozenset())
        return frozenset(granted)


def parse_jwks(jwks_json: str) -> dict[str, PyJWK]:
    """Usable signing keys of a key set by kid; raises ValueError on a malformed set."""
    document = json.loads(jwks_json)
    keys: dict[str, PyJWK] = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            raise ValueError(f"unusable key {entry.get('kid', '')!r}: {exc}") from exc
        if key.algorithm_name not in ALGORITHMS:
            continue
        keys[str(entry.get("kid", ""))] = key
    if not keys:
        raise ValueError("no usable asymmetric signing key in the key set")
    return keys


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def verify(issuers: Mapping[str, Issuer], token: str, now: float) -> Identity:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise OidcError("malformed token") from exc
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise OidcError(f"algorithm {alg!r} is not accepted")
    issuer = issuers.get(str(claims.get("iss", "")))
    if issuer is None:
        raise OidcError("unknown issuer")
    key = issuer.keys.get(str(header.get("kid", "")))
    if key is None:
        raise OidcError("unknown signing key")
    if key.algorithm_name != alg:
        raise OidcError("the token's algorithm does not match its key")
    try:
        verified: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=issuer.audience,
            issuer=issuer.issuer,
            options={
                "require": ["exp"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAudienceError as exc:
        raise OidcError("wrong audience") from exc
    except jwt.PyJWTError as exc:
        raise OidcError("invalid signature or claims") from exc
    _check_times(verified, now)
    subject = verified.get(issuer.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise OidcError(f"no {issuer.subject_claim!r} claim")
    roles = verified.get(issuer.roles_claim, [])
    if isinstance(roles, str):
        roles = [roles]
    return Identity(issuer, subject, tuple(r for r in roles if isinstance(r, str)))


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now > exp + LEEWAY_S:
        raise OidcError("token expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now < nbf - LEEWAY_S:
        raise OidcError("token not yet valid")
