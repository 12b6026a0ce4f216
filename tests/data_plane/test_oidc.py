"""OIDC bearer tokens: a token of the configured issuer is accepted and its `sub` is the
person in the usage record; expired, wrong-audience, forged, `alg: none` and HMAC tokens are
refused with 401, and a token never reaches another tenant's routes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from openai import AsyncOpenAI

from data_plane.errors import ApiError
from data_plane.policy.auth import Principal, authenticate, authorize
from data_plane.policy.compiled import CompiledPolicy, compile_snapshot
from tests.data_plane import snapshots
from tests.data_plane.test_proxy_openai import Gateway, running_gateway

ISSUER = "https://login.example.com/acme"
AUDIENCE = "asc-gateway"
NOW = 1_795_000_000

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> str:
    public = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    return json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]})


def builder() -> snapshots.PolicyBuilder:
    b = snapshots.two_tenants()
    idp = b.policy.identity_providers.add(
        id="idp-acme",
        tenant_id="t-acme",
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_json=jwks(),
        route_ids=["r-acme-chat"],
    )
    idp.role_routes.add(role="power-users", route_ids=["r-acme-extra"])
    return b


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return compile_snapshot(builder().snapshot(), snapshots.keyring())


def token(key: Any = KEY, alg: str = "RS256", kid: str = "k1", **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 300, **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def auth(policy: CompiledPolicy, bearer: str, now: float = NOW) -> Principal | ApiError:
    return authenticate(policy, f"Bearer {bearer}", now)


def test_a_token_of_the_issuer_is_a_principal_with_its_person(policy: CompiledPolicy) -> None:
    principal = auth(policy, token(groups=["staff"]))
    assert isinstance(principal, Principal)
    assert principal.tenant.id == "t-acme"
    assert principal.subject == "alice"
    assert principal.roles == ("staff",)
    assert principal.key.id == ""
    assert isinstance(authorize(policy, principal, "chat"), type(policy.routes["r-acme-chat"]))
    refused = authorize(policy, principal, "extra")
    assert isinstance(refused, ApiError)
    assert refused.status == 403


def test_a_role_grants_its_routes(policy: CompiledPolicy) -> None:
    principal = auth(policy, token(groups=["power-users"]))
    assert isinstance(principal, Principal)
    route = authorize(policy, principal, "extra")
    assert not isinstance(route, ApiError)
    assert route.id == "r-acme-extra"


def none_token() -> str:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "kid": "k1"}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": NOW + 300}
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    return f"{header.decode()}.{payload.decode()}."


def hmac_with_public_key() -> str:
    """The classic confusion attack: HS256 signed with the issuer's public key as secret."""
    secret = RSAAlgorithm.to_jwk(KEY.public_key()).encode()
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": NOW + 300}
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    signed = header + b"." + payload
    signature = jwt.utils.base64url_encode(hmac.new(secret, signed, hashlib.sha256).digest())
    return (signed + b"." + signature).decode()


@pytest.mark.parametrize(
    ("bearer", "reason"),
    [
        (token(exp=NOW - 120), "expired"),
        (token(aud="another-service"), "audience"),
        (token(key=OTHER_KEY), "signature"),
        (none_token(), "algorithm"),
        (hmac_with_public_key(), "algorithm"),
        (token(iss="https://evil.example.com"), "issuer"),
        (token(kid="unknown"), "signing key"),
        (token(nbf=NOW + 3600), "not yet valid"),
        (token(sub=""), "sub"),
        ("eyJhbGciOi.not-a.jwt", "malformed"),
    ],
)
def test_bad_tokens_are_refused_with_401(policy: CompiledPolicy, bearer: str, reason: str) -> None:
    refused = auth(policy, bearer)
    assert isinstance(refused, ApiError)
    assert refused.status == 401
    assert refused.code == "invalid_token"
    assert reason in refused.message
    assert bearer not in refused.message


def test_a_token_without_exp_is_refused(policy: CompiledPolicy) -> None:
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice"}
    refused = auth(policy, jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"}))
    assert isinstance(refused, ApiError)
    assert refused.status == 401


def test_a_key_set_without_a_usable_key_makes_the_snapshot_invalid() -> None:
    from data_plane.policy.compiled import PolicyError

    b = builder()
    b.policy.identity_providers[0].jwks_json = json.dumps(
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}
    )
    with pytest.raises(PolicyError, match="no usable asymmetric signing key"):
        compile_snapshot(b.snapshot(), snapshots.keyring())


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, builder().snapshot()) as gw:
        yield gw


async def test_the_sdk_with_a_token_and_the_sub_in_the_usage_record(gateway: Gateway) -> None:
    now = int(time.time())
    good = token(exp=now + 300, sub="alice@acme")
    async with AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=good, max_retries=0) as c:
        reply = await c.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.choices[0].message.content
    expired = token(exp=now - 3600)
    async with AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=expired, max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            await c.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hello"}]
            )
    events = await gateway.events(1)
    assert events[0].subject == "alice@acme"
    assert events[0].tenant_id == "t-acme"
    assert events[0].key_id == ""
