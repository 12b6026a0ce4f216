"""Idempotent demo data for `make run` and the end-to-end tests: tenant ``demo``, the built-in
mock provider, model ``mock-1``, route ``demo``, an admin superuser, a virtual key written to
``--key-file`` (reused when the file holds a live key), and a published snapshot."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, ProviderKind, Route
from control_plane.fleet.services import publish_snapshot
from control_plane.keys import services as keys
from control_plane.keys.models import VirtualKey
from control_plane.tenancy.models import Tenant
from shared.crypto import hash_key


class Command(BaseCommand):
    help = "Create the demo tenant, mock route and key (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key-file", required=True, type=Path)
        parser.add_argument("--admin-password", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        key_file: Path = options["key_file"]
        with transaction.atomic():
            self._admin(options["admin_password"])
            route, tenant = self._route()
            secret = self._key(tenant, route, key_file)
        published = publish_snapshot("demo data")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secret + "\n")
        key_file.chmod(0o600)
        self.stdout.write(f"demo ready: route 'demo', snapshot v{published.snapshot.version}")

    def _admin(self, password: str) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@localhost"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

    def _route(self) -> tuple[Route, Tenant]:
        tenant, _ = Tenant.objects.get_or_create(slug="demo", defaults={"name": "Demo tenant"})
        provider, _ = Provider.objects.get_or_create(
            name="mock", defaults={"kind": ProviderKind.MOCK}
        )
        model, _ = Model.objects.get_or_create(
            provider=provider,
            provider_model="mock-1",
            region="local",
            defaults={"input_price": Decimal("0.50"), "output_price": Decimal("1.50")},
        )
        credential = ProviderCredential.objects.filter(tenant=tenant, provider=provider).first()
        if credential is None:
            credential = ProviderCredential(tenant=tenant, provider=provider, name="mock")
            catalog.set_credential_secret(credential, "mock-secret")
            credential.save()
        route = Route.objects.filter(tenant=tenant, name="demo").first()
        if route is None:
            route = catalog.put_route(
                Route(tenant=tenant, name="demo"),
                actor=None,
                targets=[catalog.TargetSpec(model, credential)],
            )
        return route, tenant

    def _key(self, tenant: Tenant, route: Route, key_file: Path) -> str:
        if key_file.exists():
            secret = key_file.read_text().strip()
            live = VirtualKey.objects.filter(
                key_hash=hash_key(secret), tenant=tenant, revoked_at__isnull=True
            ).first()
            if live is not None:
                live.routes.add(route)
                return secret
        _, secret = keys.create_key(tenant, "demo", [route], actor=None)
        return secret
