"""Who is calling and what they may use: pure functions of (policy, request data, now).

Keys are looked up by the SHA-256 of the presented secret, so the snapshot never holds a
usable key. Revoked keys are simply absent from the snapshot. Routes are looked up by
(tenant of the key, name), so a key can never name another tenant's route: at worst it gets
the 404 any unknown name gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_plane import errors
from data_plane.errors import ApiError
from data_plane.policy.compiled import CompiledPolicy, RouteEntry, TenantEntry
from data_plane.policy.keys import KeyEntry
from data_plane.policy.oidc import OidcError, looks_like_jwt, verify
from shared.crypto import hash_key

_BEARER = "bearer "
END_USER_HEADER = "x-asc-end-user"
_END_USER_MAX = 200


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: TenantEntry
    key: KeyEntry
    # The natural person behind the request, when known (JWT sub or an asserted header).
    subject: str = ""
    roles: tuple[str, ...] = ()


def authenticate(
    policy: CompiledPolicy, authorization: str | None, now: float, end_user: str | None = None
) -> Principal | ApiError:
    """``authorization`` is the raw Authorization header value; ``now`` is Unix seconds;
    ``end_user`` the x-asc-end-user header, trusted only from a key allowed to assert it.
    Otherwise the subject is the person the key was issued to (empty for service keys)."""
    if not authorization or authorization[: len(_BEARER)].lower() != _BEARER:
        return errors.missing_api_key()
    secret = authorization[len(_BEARER) :].strip()
    if not secret:
        return errors.missing_api_key()
    if looks_like_jwt(secret):
        return _from_token(policy, secret, now)
    key = policy.keys_by_hash.get(hash_key(secret))
    if key is None:
        return errors.invalid_api_key()
    if key.expires_at_unix and now >= key.expires_at_unix:
        return errors.expired_api_key()
    tenant = policy.tenants[key.tenant_id]  # compile guarantees the tenant exists
    if not tenant.active:
        return errors.tenant_inactive()
    subject = key.owner
    if end_user and key.asserts_end_user:
        subject = end_user.strip()[:_END_USER_MAX]
    return Principal(tenant, key, subject)


def _from_token(policy: CompiledPolicy, token: str, now: float) -> Principal | ApiError:
    """An OIDC bearer token: the principal is the token's person, with the routes its issuer
    grants (to every token and by role); no virtual key is involved (key id empty)."""
    try:
        identity = verify(policy.issuers, token, now)
    except OidcError as exc:
        return errors.invalid_token(str(exc))
    tenant = policy.tenants[identity.issuer.tenant_id]
    if not tenant.active:
        return errors.tenant_inactive()
    key = KeyEntry(
        id="",
        tenant_id=tenant.id,
        name=f"oidc:{identity.issuer.issuer}",
        expires_at_unix=0,
        route_ids=identity.route_ids(),
        owner=identity.subject,
    )
    return Principal(tenant, key, identity.subject, identity.roles)


def authorize(policy: CompiledPolicy, principal: Principal, model: str) -> RouteEntry | ApiError:
    """The route the principal asked for, if its key is granted it."""
    route = policy.routes_by_name.get((principal.tenant.id, model))
    if route is None:
        return errors.model_not_found(model)
    if route.id not in principal.key.route_ids:
        return errors.model_not_allowed(model)
    return route


def allowed_routes(policy: CompiledPolicy, principal: Principal) -> list[RouteEntry]:
    """The routes this key may use, sorted by name (what /v1/models lists)."""
    routes = (policy.routes[route_id] for route_id in principal.key.route_ids)
    return sorted(routes, key=lambda r: r.name)
