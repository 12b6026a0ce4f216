"""Rows for control-plane tests, created through the services a user's change goes through."""

from __future__ import annotations

from decimal import Decimal

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route
from control_plane.keys import services as keys
from control_plane.keys.models import VirtualKey
from control_plane.tenancy.models import Tenant


def tenant(slug: str = "acme", regions: list[str] | None = None) -> Tenant:
    return Tenant.objects.create(slug=slug, name=slug.title(), allowed_regions=regions or [])


def provider(name: str = "mock", kind: str = "mock") -> Provider:
    return Provider.objects.create(name=name, kind=kind)


def model(p: Provider, name: str = "mock-1", region: str = "eu") -> Model:
    return Model.objects.create(
        provider=p,
        provider_model=name,
        region=region,
        input_price=Decimal("1.25"),
        output_price=Decimal("10"),
    )


def credential(
    t: Tenant, p: Provider, name: str = "main", secret: str = "sk-upstream-secret-123456"
) -> ProviderCredential:
    c = ProviderCredential(tenant=t, provider=p, name=name)
    catalog.set_credential_secret(c, secret)
    c.save()
    return c


def route(t: Tenant, m: Model, c: ProviderCredential, name: str = "chat") -> Route:
    return catalog.put_route(
        Route(tenant=t, name=name), actor=None, targets=[catalog.TargetSpec(m, c)]
    )


def key(t: Tenant, routes: list[Route], name: str = "app") -> tuple[VirtualKey, str]:
    return keys.create_key(t, name, routes, actor=None)


def stack(slug: str = "acme") -> dict[str, object]:
    """A tenant with one mock provider, model, credential, route and key."""
    t = tenant(slug)
    p = Provider.objects.filter(name="mock").first() or provider()
    m = Model.objects.filter(provider=p).first() or model(p)
    c = credential(t, p)
    r = route(t, m, c)
    k, secret = key(t, [r])
    return {
        "tenant": t,
        "provider": p,
        "model": m,
        "credential": c,
        "route": r,
        "key": k,
        "secret": secret,
    }
