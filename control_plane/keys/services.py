from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from control_plane.catalog.models import Route, RouteGroup
from control_plane.core.services import Actor, delete_row, publish_change, save_row
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.tenancy.models import Tenant
from shared.crypto import hash_key, key_hint, new_virtual_key


def check_routes(tenant: Tenant, routes: Iterable[Route | RouteGroup]) -> None:
    """Routes and route groups granted to a key must be its tenant's."""
    foreign = [str(r) for r in routes if r.tenant_id != tenant.pk]
    if foreign:
        raise ValidationError({"routes": f"routes of another tenant: {', '.join(foreign)}"})


HASH = re.compile(r"[0-9a-f]{64}")

# VirtualKey fields a create or update may set besides name, routes and expiry.
SETTINGS = (
    "project",
    "route_groups",
    "max_parallel",
    "max_body_bytes",
    "max_tokens",
    "asserts_end_user",
    "tags",
)


def key_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The settings present in ``data``; an emptied cap (None from a form) is 0, no cap."""
    settings = {name: data[name] for name in SETTINGS if name in data}
    for cap in ("max_parallel", "max_body_bytes", "max_tokens"):
        if cap in settings and settings[cap] is None:
            settings[cap] = 0
    return settings


def check_project(tenant: Tenant, project: Any) -> None:
    if project is not None and project.tenant_id != tenant.pk:
        raise ValidationError({"project": "the project belongs to another tenant"})


def create_key(
    tenant: Tenant,
    name: str,
    routes: list[Route],
    expires_at: datetime | None = None,
    *,
    actor: Actor,
    **settings: Any,
) -> tuple[VirtualKey, str]:
    """A new key of ``actor``'s, and its secret. The secret is returned here once and never
    stored. ``settings``: other VirtualKey fields (project, caps, asserts_end_user)."""
    secret = new_virtual_key()
    key = import_key(
        tenant,
        hash_key(secret),
        key_hint(secret),
        name,
        routes,
        expires_at,
        created_by=actor,
        actor=actor,
        **settings,
    )
    return key, secret


@transaction.atomic
def import_key(
    tenant: Tenant,
    key_hash: str,
    key_hint: str,
    name: str,
    routes: list[Route],
    expires_at: datetime | None = None,
    created_by: Any = None,
    *,
    actor: Actor,
    **settings: Any,
) -> VirtualKey:
    """A key known only by its hash (from another installation's configuration, whose
    secret stays with its holder, who keeps using it; or from ``create_key``)."""
    if not HASH.fullmatch(key_hash):
        raise ValidationError({"hash": "a key's SHA-256, 64 lower-case hex digits"})
    groups = settings.pop("route_groups", None)
    check_routes(tenant, [*routes, *(groups or ())])
    check_project(tenant, settings.get("project"))
    key = VirtualKey(
        tenant=tenant,
        name=name,
        key_hash=key_hash,
        key_hint=key_hint,
        expires_at=expires_at,
        created_by=created_by,
        **settings,
    )
    return save_row(key, actor=actor, many={"routes": routes, **_groups(groups)})


@transaction.atomic
def update_key(
    key: VirtualKey,
    *,
    name: str,
    routes: list[Route],
    expires_at: datetime | None,
    actor: Actor,
    **settings: Any,
) -> VirtualKey:
    groups = settings.pop("route_groups", None)
    check_routes(key.tenant, [*routes, *(groups or ())])
    check_project(key.tenant, settings.get("project", key.project))
    key.name, key.expires_at = name, expires_at
    for field, value in settings.items():
        setattr(key, field, value)
    return save_row(key, actor=actor, many={"routes": routes, **_groups(groups)})


def _groups(groups: list[RouteGroup] | None) -> dict[str, list[RouteGroup]]:
    """Route groups to set on a key: none given, none changed."""
    return {} if groups is None else {"route_groups": groups}


@transaction.atomic
def revoke_keys(keys: Iterable[VirtualKey], *, actor: Actor) -> int:
    ids = [k.pk for k in keys]
    count = VirtualKey.objects.filter(pk__in=ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if count:
        publish_change(f"{count} key(s) revoked", actor)
    return count


@transaction.atomic
def put_identity_provider(
    provider: IdentityProvider, *, actor: Actor, routes: Iterable[Route] | None = None
) -> IdentityProvider:
    """An identity provider of a tenant; ``routes`` (when given), the tenant's routes its
    tokens may use, replace the current ones."""
    many = {} if routes is None else {"routes": list(routes)}
    if many and provider.tenant_id is not None:
        check_routes(provider.tenant, many["routes"])
    return save_row(provider, actor=actor, many=many)


def delete_identity_provider(provider: IdentityProvider, *, actor: Actor) -> None:
    delete_row(provider, actor=actor)
