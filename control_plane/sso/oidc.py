"""An OpenID Connect relying party, just what ASC needs: discovery, the authorization code flow
with PKCE, and ID token verification against the issuer's key set.

Only asymmetric signatures (RS256 by default, ``ASC_OIDC_ALGORITHMS``) are accepted: "none"
and HMAC algorithms are refused before a key is even looked up, so a token cannot be signed
with the public key as an HMAC secret. The issuer's metadata and key set are cached, and the
key set is fetched again once when a token names a key it does not hold (key rotation).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache

CACHE_S = 3600
LEEWAY_S = 30
SYMMETRIC = {"HS256", "HS384", "HS512", "none"}


class OidcError(Exception):
    """Login refused: the identity provider's answer or its token is not acceptable."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    groups_claim: str
    admin_groups: frozenset[str]
    algorithms: tuple[str, ...]
    api_audience: str
    timeout_s: float
    label: str

    @classmethod
    def load(cls) -> OidcSettings | None:
        """From Django settings (the ASC_OIDC_* environment); None when SSO is off."""
        issuer = getattr(settings, "ASC_OIDC_ISSUER", "")
        if not issuer:
            return None
        algorithms = tuple(a.strip() for a in settings.ASC_OIDC_ALGORITHMS.split(",") if a.strip())
        if not algorithms or SYMMETRIC & set(algorithms):
            raise OidcError("ASC_OIDC_ALGORITHMS: asymmetric algorithms only (e.g. RS256)")
        return cls(
            issuer=issuer.rstrip("/"),
            client_id=settings.ASC_OIDC_CLIENT_ID,
            client_secret=settings.ASC_OIDC_CLIENT_SECRET,
            scopes=settings.ASC_OIDC_SCOPES,
            groups_claim=settings.ASC_OIDC_GROUPS_CLAIM,
            admin_groups=frozenset(
                g.strip() for g in settings.ASC_OIDC_ADMIN_GROUPS.split(",") if g.strip()
            ),
            algorithms=algorithms,
            api_audience=settings.ASC_OIDC_API_AUDIENCE or settings.ASC_OIDC_CLIENT_ID,
            timeout_s=settings.ASC_OIDC_TIMEOUT_S,
            label=settings.ASC_OIDC_LABEL,
        )


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def _fetch(
    url: str, timeout_s: float, data: bytes | None = None, headers: dict[str, str] | None = None
) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise OidcError(f"{url}: HTTP {exc.code}: {exc.read()[:200]!r}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise OidcError(f"{url}: {exc}") from exc


def metadata(config: OidcSettings) -> Metadata:
    key = f"asc-oidc-metadata:{config.issuer}"
    found = cache.get(key)
    if found is None:
        url = config.issuer + "/.well-known/openid-configuration"
        found = _fetch(url, config.timeout_s)
        if not isinstance(found, dict) or found.get("issuer", "").rstrip("/") != config.issuer:
            raise OidcError("the discovery document names another issuer")
        cache.set(key, found, CACHE_S)
    try:
        return Metadata(
            found["issuer"],
            found["authorization_endpoint"],
            found["token_endpoint"],
            found["jwks_uri"],
        )
    except KeyError as exc:
        raise OidcError(f"the discovery document has no {exc}") from None


@dataclass(frozen=True)
class Pending:
    """What the callback must find again: kept in the user's session, never sent as is."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next_url: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def authorization_url(
    config: OidcSettings, redirect_uri: str, next_url: str
) -> tuple[str, Pending]:
    pending = Pending(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),
        redirect_uri=redirect_uri,
        next_url=next_url,
    )
    challenge = _b64(hashlib.sha256(pending.verifier.encode()).digest())
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": redirect_uri,
            "scope": config.scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    endpoint = metadata(config).authorization_endpoint
    separator = "&" if "?" in endpoint else "?"
    return f"{endpoint}{separator}{query}", pending


def exchange_code(config: OidcSettings, code: str, pending: Pending) -> dict[str, Any]:
    """The ID token's verified claims, for the code the identity provider sent back."""
    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.verifier,
        }
    ).encode()
    basic = base64.b64encode(
        f"{urllib.parse.quote(config.client_id)}:{urllib.parse.quote(config.client_secret)}".encode()
    ).decode()
    answer = _fetch(
        metadata(config).token_endpoint,
        config.timeout_s,
        data=body,
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    token = answer.get("id_token") if isinstance(answer, dict) else None
    if not isinstance(token, str):
        raise OidcError("the token endpoint returned no id_token")
    return verify(config, token, audience=config.client_id, nonce=pending.nonce)


def _key_set(config: OidcSettings, refresh: bool) -> dict[str, Any]:
    key = f"asc-oidc-jwks:{config.issuer}"
    found = None if refresh else cache.get(key)
    if found is None:
        found = _fetch(metadata(config).jwks_uri, config.timeout_s)
        if not isinstance(found, dict) or not isinstance(found.get("keys"), list):
            raise OidcError("the issuer's key set is not a JWKS")
        cache.set(key, found, CACHE_S)
    return dict(found)


def _signing_key(config: OidcSettings, kid: str | None, alg: str) -> Any:
    for refresh in (False, True):
        keys = [k for k in _key_set(config, refresh)["keys"] if isinstance(k, dict)]
        matching = [k for k in keys if kid is None or k.get("kid") == kid]
        if len(matching) == 1 or (kid is not None and matching):
            try:
                return jwt.PyJWK(matching[0], algorithm=alg).key
            except jwt.PyJWTError as exc:
                raise OidcError(f"unusable signing key: {exc}") from exc
    raise OidcError("the token is signed with a key the issuer does not publish")


def verify(
    config: OidcSettings, token: str, *, audience: str, nonce: str | None = None
) -> dict[str, Any]:
    """The claims of a JWT the issuer signed for ``audience``, or ``OidcError``."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise OidcError(f"not a JWT: {exc}") from exc
    alg = header.get("alg")
    if alg not in config.algorithms:
        raise OidcError(f"signature algorithm {alg!r} is not accepted")
    key = _signing_key(config, header.get("kid"), alg)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=config.issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise OidcError(f"the token is not valid: {exc}") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != audience:
        raise OidcError("a token for several audiences must be authorized for ASC (azp)")
    if nonce is not None and claims.get("nonce") != nonce:
        raise OidcError("the token answers another login (nonce)")
    return claims
