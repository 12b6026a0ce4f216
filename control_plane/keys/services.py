from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from control_plane.catalog.models import Route, RouteGroup
from control_plane.core.publishing import request_publish
from control_plane.keys.models import VirtualKey
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


@transaction.atomic
def create_key(
    tenant: Tenant,
    name: str,
    routes: list[Route],
    expires_at: datetime | None = None,
    created_by: Any = None,
    **settings: Any,
) -> tuple[VirtualKey, str]:
    """A new key and its secret. The secret is returned here once and never stored.
    ``settings``: other VirtualKey fields (project, caps, asserts_end_user)."""
    groups = settings.pop("route_groups", None)
    check_routes(tenant, [*routes, *(groups or ())])
    check_project(tenant, settings.get("project"))
    secret = new_virtual_key()
    key = VirtualKey(
        tenant=tenant,
        name=name,
        key_hash=hash_key(secret),
        key_hint=key_hint(secret),
        expires_at=expires_at,
        created_by=created_by,
        **settings,
    )
    key.full_clean()
    key.save()
    key.routes.set(routes)
    if groups is not None:
        key.route_groups.set(groups)
    request_publish(f"key {key} created")
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
    **settings: Any,
) -> VirtualKey:
    """A key known only by its hash, from another installation's configuration (the secret
    stays with its holder, who keeps using it)."""
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
    key.full_clean()
    key.save()
    key.routes.set(routes)
    if groups is not None:
        key.route_groups.set(groups)
    request_publish(f"key {key} imported")
    return key


@transaction.atomic
def update_key(
    key: VirtualKey,
    *,
    name: str,
    routes: list[Route],
    expires_at: datetime | None,
    **settings: Any,
) -> VirtualKey:
    groups = settings.pop("route_groups", None)
    check_routes(key.tenant, [*routes, *(groups or ())])
    check_project(key.tenant, settings.get("project", key.project))
    key.name, key.expires_at = name, expires_at
    for field, value in settings.items():
        setattr(key, field, value)
    key.full_clean()
    key.save()
    key.routes.set(routes)
    if groups is not None:
        key.route_groups.set(groups)
    request_publish(f"key {key} updated")
    return key


@transaction.atomic
def revoke_keys(keys: Iterable[VirtualKey]) -> int:
    ids = [k.pk for k in keys]
    count = VirtualKey.objects.filter(pk__in=ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if count:
        request_publish(f"{count} key(s) revoked")
    return count
