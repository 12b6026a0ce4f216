"""Writes to the catalog. Every write asks for a snapshot publish (on commit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from control_plane.catalog.models import Model, Provider, ProviderCredential, Route, RouteTarget
from control_plane.core.crypto import credential_keyring, seal_keyring
from control_plane.core.publishing import request_publish
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
def reseal_credentials() -> int:
    """Re-seal every credential with the first ASC_SEAL_KEY (seal-key rotation)."""
    count = 0
    for credential in ProviderCredential.objects.select_for_update():
        set_credential_secret(credential, open_credential(credential))
        credential.save(update_fields=["encrypted_secret", "sealed_secret", "secret_hint"])
        count += 1
    request_publish("credentials re-sealed")
    return count


@transaction.atomic
def set_providers_enabled(
    providers: QuerySet[Provider], enabled: bool, user_id: int | None = None
) -> int:
    """Switch providers on or off (off: the data planes stop sending them traffic)."""
    count = providers.exclude(enabled=enabled).update(enabled=enabled)
    if count:
        verb = "enabled" if enabled else "disabled"
        request_publish(f"{count} provider(s) {verb}", user_id)
    return count


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
def save_route(route: Route, targets: list[TargetSpec] | None) -> Route:
    """Create or update a route; ``targets`` (when given) replace the current ones."""
    route.full_clean()
    route.save()
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
    request_publish(f"route {route} saved")
    return route


@transaction.atomic
def delete_route(route: Route) -> None:
    reason = f"route {route} deleted"
    route.delete()
    request_publish(reason)
