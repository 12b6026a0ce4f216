"""Who an identity-provider login is, and what it may do: the local user linked to the token's
(issuer, subject), and their roles, rewritten from the token's groups at every login.

- Groups in ASC_OIDC_ADMIN_GROUPS make a platform admin (superuser); leaving them takes it away.
- ``SsoGroup`` rows map a group to a role in a tenant. When several of a user's groups map to
  one tenant, the strongest role wins: tenant admin, then developer, then auditor.
- Only memberships SSO granted are rewritten; one granted by hand (a local membership) stays.
- A login whose groups grant nothing is refused, and creates no user.
- A user deactivated here stays locked out, whatever the identity provider says.

``put_sso_group`` / ``delete_sso_group`` are the mapping's writes, in the name of the user
acting; SSO groups are not in the policy snapshot, so they publish nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from control_plane.core.services import Actor, delete_row, save_row
from control_plane.sso.models import OidcIdentity, SsoGroup
from control_plane.sso.oidc import OidcError, OidcSettings
from control_plane.tenancy.models import Membership, MembershipSource, Role

STRENGTH = [Role.TENANT_ADMIN, Role.DEVELOPER, Role.AUDITOR]


class NoAccess(OidcError):
    """The identity provider vouches for the person, but nothing here grants them a role."""


def groups_of(config: OidcSettings, claims: dict[str, Any]) -> list[str]:
    value = claims.get(config.groups_claim, [])
    if isinstance(value, str):
        value = [value]
    return sorted({str(g) for g in value}) if isinstance(value, list) else []


def grants(groups: list[str]) -> dict[Any, str]:
    """The role each tenant's SSO groups give someone in ``groups``."""
    out: dict[Any, str] = {}
    for tenant_id, role in SsoGroup.objects.filter(group__in=groups).values_list(
        "tenant_id", "role"
    ):
        if tenant_id not in out or STRENGTH.index(Role(role)) < STRENGTH.index(
            Role(out[tenant_id])
        ):
            out[tenant_id] = role
    return out


@transaction.atomic
def sign_in(config: OidcSettings, claims: dict[str, Any]) -> Any:
    """The local user for verified ``claims``, created on first login, with their roles set
    from the claims' groups. Raises ``NoAccess`` when the groups grant nothing."""
    groups = groups_of(config, claims)
    admin = bool(config.admin_groups & set(groups))
    tenant_roles = grants(groups)
    identity = (
        OidcIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=claims["iss"], subject=str(claims["sub"]))
        .first()
    )
    if identity is not None and not identity.user.is_active:
        raise NoAccess("this account is deactivated in ASC")
    if not admin and not tenant_roles:
        raise NoAccess("none of your groups grants a role in ASC")
    if identity is None:
        user = _new_user(claims)
        identity = OidcIdentity.objects.create(
            issuer=claims["iss"], subject=str(claims["sub"]), user=user
        )
    user = identity.user
    user.email = str(claims.get("email", user.email) or "")
    user.first_name = str(claims.get("given_name", user.first_name) or "")[:150]
    user.last_name = str(claims.get("family_name", user.last_name) or "")[:150]
    user.is_staff, user.is_superuser = True, admin
    user.save()
    _set_memberships(user, tenant_roles)
    identity.last_login_groups = groups
    identity.save(update_fields=["last_login_groups"])
    return user


def _new_user(claims: dict[str, Any]) -> Any:
    """A new local user without a password (they log in through SSO only), named after the
    claims; a name already taken (say by a local break-glass account) gets a suffix instead of
    being taken over."""
    users = get_user_model()
    wanted = str(claims.get("preferred_username") or claims.get("email") or f"sso-{claims['sub']}")[
        :120
    ]
    name = wanted
    if users.objects.filter(username=name).exists():
        digest = hashlib.sha256(f"{claims['iss']} {claims['sub']}".encode()).hexdigest()
        name = f"{wanted}-{digest[:8]}"
    user = users(username=name)
    user.set_unusable_password()
    user.save()
    return user


def _set_memberships(user: Any, tenant_roles: dict[Any, str]) -> None:
    mine = {m.tenant_id: m for m in Membership.objects.filter(user=user)}
    for tenant_id, membership in mine.items():
        if membership.source == MembershipSource.SSO and tenant_id not in tenant_roles:
            membership.delete()
    for tenant_id, role in tenant_roles.items():
        existing = mine.get(tenant_id)
        if existing is None:
            Membership.objects.create(
                user=user, tenant_id=tenant_id, role=role, source=MembershipSource.SSO
            )
        elif existing.source == MembershipSource.SSO and existing.role != role:
            existing.role = role
            existing.save(update_fields=["role"])


def api_user(config: OidcSettings, claims: dict[str, Any]) -> Any:
    """The user behind a bearer token on the API: as ``sign_in``, without writing anything
    when nothing changed since their last login (the common case, on every request)."""
    identity = (
        OidcIdentity.objects.select_related("user")
        .filter(issuer=claims["iss"], subject=str(claims["sub"]))
        .first()
    )
    if identity is not None and identity.last_login_groups == groups_of(config, claims):
        if not identity.user.is_active:
            raise NoAccess("this account is deactivated in ASC")
        return identity.user
    return sign_in(config, claims)


def put_sso_group(group: SsoGroup, *, actor: Actor) -> SsoGroup:
    return save_row(group, actor=actor, publish=False)


def delete_sso_group(group: SsoGroup, *, actor: Actor) -> None:
    delete_row(group, actor=actor, publish=False)
