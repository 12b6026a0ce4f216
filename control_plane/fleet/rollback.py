"""Roll the configuration back to what a published snapshot held; the rollback itself is a
change like any other and publishes a new version.

Restored from the old snapshot: tenants' state and regions, providers, models and their prices,
credentials' secrets (re-opened with the sealing key), routes and their targets, and which
routes each key may use. Rows created after that version are disabled (tenants, providers) or
deleted (routes), never silently kept in force. Keys are the exception, by design: a key
revoked since is never brought back, and keys created since stay (with only the routes that
still exist).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route
from control_plane.core.crypto import seal_keyring
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import load_snapshot, request_publish
from control_plane.fleet.snapshot_builder import KIND
from control_plane.keys.models import VirtualKey
from control_plane.tenancy.models import Tenant
from shared.crypto import credential_context
from shared.pb import snapshot_pb2

KIND_NAME = {value: name for name, value in KIND.items()}


def _usd(micros: int) -> Decimal:
    return Decimal(micros) / 1_000_000


@transaction.atomic
def rollback_to(version: int, user_id: int | None = None) -> None:
    policy = load_snapshot(PolicySnapshot.objects.get(version=version)).policy
    _tenants(policy)
    _providers_and_models(policy)
    _credentials(policy)
    _routes(policy)
    _key_grants(policy)
    request_publish(f"rollback to v{version}", user_id)


def _tenants(policy: snapshot_pb2.Policy) -> None:
    old = {t.id: t for t in policy.tenants}
    for tenant in Tenant.objects.select_for_update():
        t = old.get(str(tenant.pk))
        tenant.active = bool(t and t.active)
        if t is not None:
            tenant.allowed_regions = list(t.allowed_regions)
        tenant.save(update_fields=["active", "allowed_regions", "updated_at"])


def _providers_and_models(policy: snapshot_pb2.Policy) -> None:
    old = {p.id: p for p in policy.providers}
    for provider in Provider.objects.select_for_update():
        p = old.pop(str(provider.pk), None)
        provider.enabled = bool(p and p.enabled)
        if p is not None:
            provider.kind, provider.base_url = KIND_NAME[p.kind], p.base_url
            provider.options = dict(p.options)
        provider.save()
    for p in old.values():  # deleted since: bring back
        Provider.objects.create(
            id=p.id, name=p.name, kind=KIND_NAME[p.kind], base_url=p.base_url,
            options=dict(p.options), enabled=p.enabled,
        )  # fmt: skip
    for m in policy.models:
        Model.objects.update_or_create(
            id=m.id,
            defaults={
                "provider_id": m.provider_id,
                "provider_model": m.provider_model,
                "region": m.region,
                "input_price": _usd(m.input_price_micros_per_mtok),
                "output_price": _usd(m.output_price_micros_per_mtok),
                "cached_input_price": _usd(m.cached_input_price_micros_per_mtok),
            },
        )


def _credentials(policy: snapshot_pb2.Policy) -> None:
    for c in policy.credentials:
        credential = ProviderCredential.objects.filter(pk=c.id).first()
        if credential is None or bytes(credential.sealed_secret) == c.sealed_secret:
            continue  # unchanged (a deleted credential cannot come back: its name is gone)
        secret = seal_keyring().open(c.sealed_secret, credential_context(c.id)).decode()
        catalog.set_credential_secret(credential, secret)
        credential.sealed_secret = c.sealed_secret  # the very bytes: the old hash comes back
        credential.save()


def _routes(policy: snapshot_pb2.Policy) -> None:
    old = {r.id: r for r in policy.routes}
    Route.objects.exclude(pk__in=list(old)).delete()
    for r in old.values():
        route = Route.objects.filter(pk=r.id).first() or Route(id=r.id)
        route.tenant_id, route.name = r.tenant_id, r.name
        targets = [
            catalog.TargetSpec(
                Model.objects.get(pk=t.model_id),
                ProviderCredential.objects.get(pk=t.credential_id),
                t.priority,
                t.weight,
            )
            for t in r.targets
        ]
        catalog.save_route(route, targets)


def _key_grants(policy: snapshot_pb2.Policy) -> None:
    old = {k.id: list(k.route_ids) for k in policy.keys}
    for key in VirtualKey.objects.filter(pk__in=list(old), revoked_at__isnull=True):
        key.routes.set(Route.objects.filter(pk__in=old[str(key.pk)]))
