"""Writes to the catalog, in the name of the user acting. Every write asks for a snapshot
publish (on commit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from control_plane.catalog.models import (
    Model,
    Provider,
    ProviderCredential,
    Route,
    RouteGroup,
    RouteTarget,
)
from control_plane.core.crypto import credential_keyring, seal_keyring
from control_plane.core.services import Actor, delete_row, publish_change, save_row
from shared.crypto import credential_context, key_hint


def set_credential_secret(credential: ProviderCredential, secret: str) -> None:
    """Encrypt ``secret`` at rest and keep a copy sealed for the data planes (sealed once,
    here, so snapshots are deterministic and their hash only changes when policy does)."""
    context = credential_context(str(credential.id))
    credential.encrypted_secret = credential_keyring().seal(secret.encode(), context)
    credential.sealed_secret = seal_keyring().seal(secret.encode(), context)
    credential.secret_hint = key_hint(secret) if secret else ""


def open_credential(credential: ProviderCredential) -> str:
    context = credential_context(str(credential.id))
    return credential_keyring().open(bytes(credential.encrypted_secret), context).decode()


@transaction.atomic
def reseal_credentials(*, actor: Actor) -> int:
    """Re-seal every credential with the first ASC_SEAL_KEY (seal-key rotation)."""
    count = 0
    for credential in ProviderCredential.objects.select_for_update():
        set_credential_secret(credential, open_credential(credential))
        credential.save(update_fields=["encrypted_secret", "sealed_secret", "secret_hint"])
        count += 1
    publish_change("credentials re-sealed", actor)
    return count


# --- providers and their models ----------------------------------------------------------


def put_provider(provider: Provider, *, actor: Actor) -> Provider:
    return save_row(provider, actor=actor)


def delete_provider(provider: Provider, *, actor: Actor) -> None:
    delete_row(provider, actor=actor)


@transaction.atomic
def set_providers_enabled(providers: QuerySet[Provider], enabled: bool, *, actor: Actor) -> int:
    """Switch providers on or off (off: the data planes stop sending them traffic)."""
    count = providers.exclude(enabled=enabled).update(enabled=enabled)
    if count:
        verb = "enabled" if enabled else "disabled"
        publish_change(f"{count} provider(s) {verb}", actor)
    return count


def put_model(model: Model, *, actor: Actor) -> Model:
    return save_row(model, actor=actor)


def delete_model(model: Model, *, actor: Actor) -> None:
    delete_row(model, actor=actor)


# --- a tenant's credentials, routes and route groups ---------------------------------------


@transaction.atomic
def put_credential(
    credential: ProviderCredential, *, actor: Actor, secret: str | None = None
) -> ProviderCredential:
    """Save a credential, with a new ``secret`` when one is given (a new credential needs
    one, unless it was set already with ``set_credential_secret``)."""
    if secret is not None:
        set_credential_secret(credential, secret)
    if not credential.encrypted_secret:
        raise ValidationError({"secret": "a new credential needs its secret"})
    return save_row(credential, actor=actor, exclude=["encrypted_secret", "sealed_secret"])


def delete_credential(credential: ProviderCredential, *, actor: Actor) -> None:
    delete_row(credential, actor=actor)


@dataclass(frozen=True)
class TargetSpec:
    model: Model
    credential: ProviderCredential
    priority: int = 0
    weight: int = 1


def check_targets(route: Route, targets: Iterable[TargetSpec]) -> None:
    """A target's credential belongs to the route's tenant and to the model's provider."""
    for t in targets:
        if t.credential.tenant_id != route.tenant_id:
            raise ValidationError(
                {"targets": f"credential {t.credential} belongs to another tenant"}
            )
        if t.credential.provider_id != t.model.provider_id:
            raise ValidationError(
                {"targets": f"credential {t.credential} is not for the provider of {t.model}"}
            )


@transaction.atomic
def put_route(route: Route, *, actor: Actor, targets: list[TargetSpec] | None = None) -> Route:
    """Create or update a route; ``targets`` (when given) replace the current ones."""
    save_row(route, actor=actor)  # cleaned first: ids given as strings become UUIDs
    if targets is not None:
        check_targets(route, targets)
        route.targets.all().delete()
        RouteTarget.objects.bulk_create(
            RouteTarget(
                route=route,
                model=t.model,
                credential=t.credential,
                priority=t.priority,
                weight=t.weight,
            )
            for t in targets
        )
    return route


def delete_route(route: Route, *, actor: Actor) -> None:
    delete_row(route, actor=actor)


def put_route_group(
    group: RouteGroup,
    *,
    actor: Actor,
    routes: Iterable[Route] | None = None,
    projects: Iterable[Any] | None = None,
) -> RouteGroup:
    """A model access group: ``routes`` and ``projects`` (when given) replace the current
    ones, and must be of the group's tenant."""
    many = {k: list(v) for k, v in (("routes", routes), ("projects", projects)) if v is not None}
    check_group_members(group.tenant_id, [m for members in many.values() for m in members])
    return save_row(group, actor=actor, many=many)


def check_group_members(tenant_id: Any, members: Iterable[Any]) -> None:
    """A route group's routes and projects are of its tenant."""
    if any(m.tenant_id != tenant_id for m in members):
        raise ValidationError({"routes": "routes and projects must be of the group's tenant"})


def delete_route_group(group: RouteGroup, *, actor: Actor) -> None:
    delete_row(group, actor=actor)
