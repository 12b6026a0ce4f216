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
from control_plane.core.services import Actor, publish_change
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import load_snapshot
from control_plane.fleet.snapshot_builder import KIND
from control_plane.keys import services as keys
from control_plane.keys.models import VirtualKey
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Tenant
from shared.crypto import credential_context
from shared.pb import snapshot_pb2

KIND_NAME = {value: name for name, value in KIND.items()}


def _usd(micros: int) -> Decimal:
    return Decimal(micros) / 1_000_000


@transaction.atomic
def rollback_to(version: int, *, actor: Actor) -> None:
    """Every row is written through its app's services in ``actor``'s name."""
    policy = load_snapshot(PolicySnapshot.objects.get(version=version)).policy
    _tenants(policy, actor)
    _providers_and_models(policy, actor)
    _credentials(policy, actor)
    _routes(policy, actor)
    _key_grants(policy, actor)
    publish_change(f"rollback to v{version}", actor, first=True)


def _tenants(policy: snapshot_pb2.Policy, actor: Actor) -> None:
    old = {t.id: t for t in policy.tenants}
    for tenant in Tenant.objects.select_for_update():
        t = old.get(str(tenant.pk))
        tenant.active = bool(t and t.active)
        if t is not None:
            tenant.allowed_regions = list(t.allowed_regions)
        tenancy.put_tenant(tenant, actor=actor)


def _providers_and_models(policy: snapshot_pb2.Policy, actor: Actor) -> None:
    old = {p.id: p for p in policy.providers}
    for provider in Provider.objects.select_for_update():
        p = old.pop(str(provider.pk), None)
        provider.enabled = bool(p and p.enabled)
        if p is not None:
            provider.kind, provider.base_url = KIND_NAME[p.kind], p.base_url
            provider.options = dict(p.options)
        catalog.put_provider(provider, actor=actor)
    for p in old.values():  # deleted since: bring back
        provider = Provider(
            id=p.id, name=p.name, kind=KIND_NAME[p.kind], base_url=p.base_url,
            options=dict(p.options), enabled=p.enabled,
        )  # fmt: skip
        catalog.put_provider(provider, actor=actor)
    for m in policy.models:
        model = Model.objects.filter(pk=m.id).first() or Model(id=m.id)
        model.provider_id = m.provider_id
        model.provider_model, model.region = m.provider_model, m.region
        model.input_price = _usd(m.input_price_micros_per_mtok)
        model.output_price = _usd(m.output_price_micros_per_mtok)
        model.cached_input_price = _usd(m.cached_input_price_micros_per_mtok)
        catalog.put_model(model, actor=actor)


def _credentials(policy: snapshot_pb2.Policy, actor: Actor) -> None:
    for c in policy.credentials:
        credential = ProviderCredential.objects.filter(pk=c.id).first()
        if credential is None or bytes(credential.sealed_secret) == c.sealed_secret:
            continue  # unchanged (a deleted credential cannot come back: its name is gone)
        secret = seal_keyring().open(c.sealed_secret, credential_context(c.id)).decode()
        catalog.set_credential_secret(credential, secret)
        credential.sealed_secret = c.sealed_secret  # the very bytes: the old hash comes back
        catalog.put_credential(credential, actor=actor)


def _routes(policy: snapshot_pb2.Policy, actor: Actor) -> None:
    old = {r.id: r for r in policy.routes}
    for route in Route.objects.exclude(pk__in=list(old)):
        catalog.delete_route(route, actor=actor)
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
        catalog.put_route(route, actor=actor, targets=targets)


def _key_grants(policy: snapshot_pb2.Policy, actor: Actor) -> None:
    old = {k.id: list(k.route_ids) for k in policy.keys}
    for key in VirtualKey.objects.filter(pk__in=list(old), revoked_at__isnull=True):
        routes = list(Route.objects.filter(pk__in=old[str(key.pk)]))
        keys.update_key(key, name=key.name, routes=routes, expires_at=key.expires_at, actor=actor)
