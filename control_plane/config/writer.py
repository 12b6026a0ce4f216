"""Writing an import's changes, one at a time, through each app's services, in the name of
the user importing (so the snapshot history says who)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils.dateparse import parse_datetime

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route, RouteGroup
from control_plane.config import document as d
from control_plane.config import plan as p
from control_plane.core.services import Actor
from control_plane.guardrails import services as guardrails
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys import services as keys
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.limits import services as limits
from control_plane.limits.models import Limit, Scope
from control_plane.sso import services as sso
from control_plane.sso.models import SsoGroup
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Membership, MembershipSource, Project, Tenant


class ImportRefused(Exception):
    """The import would break a rule; nothing was written. ``problems`` say where and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        if hasattr(exc, "message_dict"):
            return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        return " ".join(exc.messages)
    return f"the change conflicts with existing data ({exc})"


class Writer:
    """Writes one change at a time through the app's services, in ``actor``'s name, finding
    what it refers to by name."""

    def __init__(self, env: Mapping[str, str], warnings: list[str], actor: Actor) -> None:
        self.env = env
        self.warnings = warnings
        self.actor = actor

    def apply(self, change: p.Change) -> None:
        try:
            if change.op == p.DELETE:
                assert change.before is not None
                getattr(self, f"delete_{change.kind.name}")(change.path, change.before)
            else:
                assert change.after is not None
                getattr(self, f"put_{change.kind.name}")(change.path, change.after)
        except ValidationError as exc:
            raise ImportRefused([f"{d.show_path(change.path)}: {message(exc)}"]) from exc
        except (ObjectMissing, IntegrityError) as exc:
            raise ImportRefused([f"{d.show_path(change.path)}: {exc}"]) from exc

    # --- lookups ------------------------------------------------------------------------

    def tenant(self, path: d.Path) -> Tenant:
        tenant: Tenant = _get(Tenant.objects.filter(slug=path[0][1]), f"tenant {path[0][1]}")
        return tenant

    def route(self, tenant: Tenant, name: str) -> Route:
        route: Route = _get(Route.objects.filter(tenant=tenant, name=name), f"route {name}")
        return route

    def routes(self, tenant: Tenant, names: list[str]) -> list[Route]:
        return [self.route(tenant, n) for n in names]

    def project(self, tenant: Tenant, name: str) -> Project | None:
        if not name:
            return None
        project: Project = _get(Project.objects.filter(tenant=tenant, name=name), f"project {name}")
        return project

    def key(self, tenant: Tenant, key_hash: str) -> VirtualKey:
        key: VirtualKey = _get(
            VirtualKey.objects.filter(tenant=tenant, key_hash=key_hash, revoked_at__isnull=True),
            f"key {key_hash[:12]}",
        )
        return key

    # --- providers and models -----------------------------------------------------------

    def put_provider(self, path: d.Path, f: dict[str, Any]) -> None:
        provider = Provider.objects.filter(name=f["name"]).first() or Provider(name=f["name"])
        _set(provider, f, ["kind", "base_url", "options", "enabled"])
        catalog.put_provider(provider, actor=self.actor)

    def delete_provider(self, path: d.Path, f: dict[str, Any]) -> None:
        for provider in Provider.objects.filter(name=f["name"]):
            catalog.delete_provider(provider, actor=self.actor)

    def _model(self, path: d.Path, f: dict[str, Any]) -> tuple[Provider, Model | None]:
        provider = _get(Provider.objects.filter(name=path[0][1]), f"provider {path[0][1]}")
        row = Model.objects.filter(
            provider=provider, provider_model=f["model"], region=f["region"]
        ).first()
        return provider, row

    def put_model(self, path: d.Path, f: dict[str, Any]) -> None:
        provider, row = self._model(path, f)
        row = row or Model(provider=provider, provider_model=f["model"], region=f["region"])
        _set(row, f, ["input_price", "output_price", "cached_input_price"])
        catalog.put_model(row, actor=self.actor)

    def delete_model(self, path: d.Path, f: dict[str, Any]) -> None:
        _, row = self._model(path, f)
        if row is not None:
            catalog.delete_model(row, actor=self.actor)

    # --- a tenant and what is in it -----------------------------------------------------

    def put_tenant(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = Tenant.objects.filter(slug=f["slug"]).first() or Tenant(slug=f["slug"])
        tenant.name = f["name"] or f["slug"]
        names = ["active", "allowed_regions", "audit_retention_days", "allowed_tags"]
        _set(tenant, f, [*names, "drop_unknown_tags", "trace_prompts"])
        tenancy.put_tenant(tenant, actor=self.actor)

    def put_member(self, path: d.Path, f: dict[str, Any]) -> None:
        user = get_user_model().objects.filter(username=f["user"]).first()
        if user is None:
            self.warnings.append(
                f"{d.show_path(path)}: no user {f['user']!r} here; membership not imported"
            )
            return
        tenant = self.tenant(path)
        row = Membership.objects.filter(user=user, tenant=tenant).first()
        row = row or Membership(user=user, tenant=tenant)
        row.role, row.source = f["role"], MembershipSource.LOCAL
        tenancy.put_membership(row, actor=self.actor)

    def delete_member(self, path: d.Path, f: dict[str, Any]) -> None:
        for row in Membership.objects.filter(
            tenant=self.tenant(path), user__username=f["user"], source=MembershipSource.LOCAL
        ):
            tenancy.delete_membership(row, actor=self.actor)

    def put_sso_group(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        row = SsoGroup.objects.filter(tenant=tenant, group=f["group"]).first()
        row = row or SsoGroup(tenant=tenant, group=f["group"])
        row.role = f["role"]
        sso.put_sso_group(row, actor=self.actor)

    def delete_sso_group(self, path: d.Path, f: dict[str, Any]) -> None:
        for row in SsoGroup.objects.filter(tenant=self.tenant(path), group=f["group"]):
            sso.delete_sso_group(row, actor=self.actor)

    def put_project(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        row = Project.objects.filter(tenant=tenant, name=f["name"]).first()
        row = row or Project(tenant=tenant, name=f["name"])
        row.tags = f["tags"]
        tenancy.put_project(row, actor=self.actor)

    def delete_project(self, path: d.Path, f: dict[str, Any]) -> None:
        for row in Project.objects.filter(tenant=self.tenant(path), name=f["name"]):
            tenancy.delete_project(row, actor=self.actor)

    def put_credential(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        provider = _get(Provider.objects.filter(name=f["provider"]), f"provider {f['provider']}")
        row = ProviderCredential.objects.filter(tenant=tenant, name=f["name"]).first()
        env_name = f["secret_env"] or d.secret_env_name(tenant.slug, f["name"])
        secret = self.env.get(env_name) if f["secret_env"] else None
        if row is None:
            if secret is None:
                raise ObjectMissing(f"its secret: set the environment variable {env_name}")
            row = ProviderCredential(tenant=tenant, name=f["name"])
        row.provider = provider
        catalog.put_credential(row, actor=self.actor, secret=secret)

    def delete_credential(self, path: d.Path, f: dict[str, Any]) -> None:
        for row in ProviderCredential.objects.filter(tenant=self.tenant(path), name=f["name"]):
            catalog.delete_credential(row, actor=self.actor)

    def put_route(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        route = Route.objects.filter(tenant=tenant, name=f["name"]).first()
        route = route or Route(tenant=tenant, name=f["name"])
        names = [
            "connect_timeout_ms",
            "first_token_timeout_ms",
            "total_timeout_ms",
            "max_retries",
            "latency_aware",
            "drop_untranslatable",
            "cache_ttl_s",
        ]
        _set(route, f, names)
        targets = [self._target(tenant, t) for t in f["targets"]]
        catalog.put_route(route, actor=self.actor, targets=targets)

    def _target(self, tenant: Tenant, t: dict[str, Any]) -> catalog.TargetSpec:
        credential = _get(
            ProviderCredential.objects.filter(tenant=tenant, name=t["credential"]),
            f"credential {t['credential']}",
        )
        model = _get(
            Model.objects.filter(
                provider_id=credential.provider_id, provider_model=t["model"], region=t["region"]
            ),
            f"model {t['model']}@{t['region']} of the credential's provider",
        )
        return catalog.TargetSpec(model, credential, t["priority"], t["weight"])

    def delete_route(self, path: d.Path, f: dict[str, Any]) -> None:
        catalog.delete_route(self.route(self.tenant(path), f["name"]), actor=self.actor)

    def put_route_group(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        group = RouteGroup.objects.filter(tenant=tenant, name=f["name"]).first()
        projects = [self.project(tenant, name) for name in f["projects"]]
        catalog.put_route_group(
            group or RouteGroup(tenant=tenant, name=f["name"]),
            actor=self.actor,
            routes=self.routes(tenant, f["routes"]),
            projects=[p for p in projects if p is not None],
        )

    def delete_route_group(self, path: d.Path, f: dict[str, Any]) -> None:
        for group in RouteGroup.objects.filter(tenant=self.tenant(path), name=f["name"]):
            catalog.delete_route_group(group, actor=self.actor)

    def route_groups(self, tenant: Tenant, names: list[str]) -> list[RouteGroup]:
        return [
            _get(RouteGroup.objects.filter(tenant=tenant, name=n), f"route group {n}")
            for n in names
        ]

    def put_key(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        user_model = get_user_model()
        created_by = user_model.objects.filter(username=f["created_by"]).first()
        if f["created_by"] and created_by is None:
            self.warnings.append(f"{d.show_path(path)}: no user {f['created_by']!r} here")
        settings = {
            "project": self.project(tenant, f["project"]),
            "route_groups": self.route_groups(tenant, f["route_groups"]),
            "max_parallel": f["max_parallel"],
            "max_body_bytes": f["max_body_bytes"],
            "max_tokens": f["max_tokens"],
            "asserts_end_user": f["asserts_end_user"],
            "tags": f["tags"],
        }
        routes = self.routes(tenant, f["routes"])
        expires_at = parse_datetime(f["expires_at"]) if f["expires_at"] else None
        existing = VirtualKey.objects.filter(key_hash=f["hash"]).first()
        if existing is None:
            keys.import_key(
                tenant,
                f["hash"],
                f["hint"],
                f["name"],
                routes,
                expires_at,
                created_by,
                actor=self.actor,
                **settings,
            )
            return
        if existing.tenant_id != tenant.pk or existing.revoked_at is not None:
            raise ObjectMissing("this key is revoked or belongs to another tenant")
        existing.key_hint, existing.created_by = f["hint"] or existing.key_hint, created_by
        keys.update_key(
            existing,
            name=f["name"],
            routes=routes,
            expires_at=expires_at,
            actor=self.actor,
            **settings,
        )

    def delete_key(self, path: d.Path, f: dict[str, Any]) -> None:
        keys.revoke_keys([self.key(self.tenant(path), f["hash"])], actor=self.actor)

    def put_identity_provider(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        row = IdentityProvider.objects.filter(issuer=f["issuer"]).first()
        if row is not None and row.tenant_id != tenant.pk:
            raise ObjectMissing("this issuer belongs to another tenant")
        row = row or IdentityProvider(tenant=tenant, issuer=f["issuer"])
        names = ["name", "audience", "jwks", "subject_claim", "roles_claim", "role_routes"]
        _set(row, f, names)
        routes = self.routes(tenant, f["routes"])
        keys.put_identity_provider(row, actor=self.actor, routes=routes)

    def delete_identity_provider(self, path: d.Path, f: dict[str, Any]) -> None:
        for row in IdentityProvider.objects.filter(tenant=self.tenant(path), issuer=f["issuer"]):
            keys.delete_identity_provider(row, actor=self.actor)

    def _limits(self, path: d.Path, f: dict[str, Any]) -> tuple[Limit, Any]:
        tenant = self.tenant(path)
        owner, owner_key = path[-2]
        subject: dict[str, Any] = {}
        if owner == "project":
            subject = {"scope": Scope.PROJECT, "project": self.project(tenant, owner_key)}
        elif owner == "route":
            subject = {"scope": Scope.ROUTE, "route": self.route(tenant, owner_key)}
        elif owner == "key":
            subject = {"scope": Scope.KEY, "key": self.key(tenant, owner_key)}
        elif owner == "tag_value":
            subject = {"scope": Scope.TAG, "tag": owner_key}
        else:
            subject = {"scope": Scope.TENANT}
        rows = Limit.objects.filter(tenant=tenant, kind=f["kind"], period=f["period"], **subject)
        return Limit(tenant=tenant, kind=f["kind"], period=f["period"], **subject), rows.first()

    def put_limit(self, path: d.Path, f: dict[str, Any]) -> None:
        new, row = self._limits(path, f)
        row = row or new
        _set(row, f, ["amount", "time_zone", "hard", "alert_thresholds", "enabled"])
        limits.put_limit(row, actor=self.actor)

    def delete_limit(self, path: d.Path, f: dict[str, Any]) -> None:
        _, row = self._limits(path, f)
        if row is not None:
            limits.delete_limit(row, actor=self.actor)

    def put_tag_value(self, path: d.Path, f: dict[str, Any]) -> None:
        """A tag value is no row of its own: its limits (children) carry it."""

    def delete_tag_value(self, path: d.Path, f: dict[str, Any]) -> None:
        """Its limits are deleted as children of it."""

    def _guardrail(self, path: d.Path) -> tuple[Tenant, Route | None, GuardrailPolicy | None]:
        tenant = self.tenant(path)
        route = self.route(tenant, path[-2][1]) if path[-2][0] == "route" else None
        row = GuardrailPolicy.objects.filter(tenant=tenant, route=route).first()
        return tenant, route, row

    def put_guardrail(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant, route, row = self._guardrail(path)
        row = row or GuardrailPolicy(tenant=tenant, route=route)
        _set(row, f, list(f))
        guardrails.put_guardrail_policy(row, actor=self.actor)

    def delete_guardrail(self, path: d.Path, f: dict[str, Any]) -> None:
        _, _, row = self._guardrail(path)
        if row is not None:
            guardrails.delete_guardrail_policy(row, actor=self.actor)


class ObjectMissing(Exception):
    """Something a change refers to is not there (or may not be used)."""


def _get(rows: Any, what: str) -> Any:
    row = rows.first()
    if row is None:
        raise ObjectMissing(f"no {what}")
    return row


def _set(row: Any, f: dict[str, Any], names: list[str]) -> None:
    """Set ``names`` from ``f`` (decimal strings as the model wants them); the service that
    saves the row checks its model's rules."""
    for name in names:
        setattr(row, name, f[name])
