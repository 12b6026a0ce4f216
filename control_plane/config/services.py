"""Importing a configuration document: plan the changes, check who may make them, write them
through each app's services in one transaction, and publish once.

A dry run is the same import rolled back at the end, so it checks everything a real one would
(references, each model's own rules, secrets present) and reports the same changes. Importing
the same document twice changes nothing the second time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.dateparse import parse_datetime

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route, RouteGroup
from control_plane.config import document as d
from control_plane.config import litellm
from control_plane.config import plan as p
from control_plane.config.selectors import current_document
from control_plane.core.access import ADMIN, is_platform_admin, roles_by_tenant
from control_plane.fleet.services import request_publish
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys import services as keys
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.limits.models import Limit, Scope
from control_plane.sso.models import SsoGroup
from control_plane.tenancy.models import Membership, MembershipSource, Project, Tenant


class ImportRefused(Exception):
    """The import would break a rule; nothing was written. ``problems`` say where and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class NotAllowed(ImportRefused):
    """The user's role may not make some of the changes."""


@dataclass
class Result:
    changes: list[p.Change]
    warnings: list[str] = field(default_factory=list)
    applied: bool = False

    def report(self) -> str:
        lines = p.render(self.changes)
        return lines + "".join(f"! {w}\n" for w in self.warnings)


def export_yaml(tenants: str | list[str] | None = None) -> str:
    """The whole configuration, or the named tenant(s) with the providers they use."""
    if isinstance(tenants, str):
        tenants = [tenants]
    return d.to_yaml(current_document(tenants))


def import_document(
    wanted: dict[str, Any],
    *,
    tenant: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    secrets: Mapping[str, str] | None = None,
    user: Any = None,
    reason: str = "configuration imported",
) -> Result:
    """Make the configuration what ``wanted`` (a parsed document) says. ``tenant``: only that
    tenant's part (and providers its routes need) is read and compared. ``secrets``: where
    credentials' secrets come from (default: the environment). ``user``: who asks (None: the
    system, e.g. a management command); anyone but a platform admin may import only changes
    inside tenants they administer."""
    if tenant is not None:
        wanted = {**wanted, "tenants": [t for t in wanted["tenants"] if t["slug"] == tenant]}
        if not wanted["tenants"]:
            raise ImportRefused([f"the document has no tenant {tenant!r}"])
    env = os.environ if secrets is None else secrets
    result = Result([])
    try:
        with transaction.atomic():
            slugs = [t["slug"] for t in wanted["tenants"]] if tenant is not None else None
            names = [x["name"] for x in wanted["providers"]]
            current = current_document(slugs, names, all_models=True)
            wanted = _with_secret_changes(wanted, env)
            result.changes = p.diff(current, wanted, prune=prune, whole=tenant is None)
            if user is not None:
                _check_allowed(user, result.changes)
            writer = _Writer(env, result.warnings)
            for change in result.changes:
                writer.apply(change)
            if result.changes:
                request_publish(reason, getattr(user, "pk", None))
            result.applied = not dry_run
            if dry_run:
                transaction.set_rollback(True)
    except (ValidationError, IntegrityError) as exc:
        raise ImportRefused([_message(exc)]) from exc
    return result


def import_litellm(
    config: Any,
    tenant: str,
    *,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    user: Any = None,
) -> Result:
    """Import a LiteLLM proxy config (loaded YAML) into ``tenant``; see ``config.litellm``."""
    variables = dict(os.environ if env is None else env)
    current = current_document([tenant], all_providers=True)
    translation = litellm.translate(config, tenant, current, variables)
    secrets = {**variables, **translation.secrets}
    result = import_document(
        translation.document,
        tenant=tenant,
        dry_run=dry_run,
        secrets=secrets,
        user=user,
        reason="LiteLLM config imported",
    )
    result.warnings[:0] = translation.warnings
    return result


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        if hasattr(exc, "message_dict"):
            return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        return " ".join(exc.messages)
    return f"the change conflicts with existing data ({exc})"


def _check_allowed(user: Any, changes: Iterable[p.Change]) -> None:
    """Platform admins may import anything; a tenant admin, changes inside their tenants (not
    the tenants themselves being created, nor providers and models)."""
    if is_platform_admin(user):
        return
    administered = [t for t, role in roles_by_tenant(user).items() if role == ADMIN]
    theirs = set(Tenant.objects.filter(pk__in=administered).values_list("slug", flat=True))
    refused = [
        c.describe()
        for c in changes
        if c.path[0][0] != "tenant"
        or c.path[0][1] not in theirs
        or (len(c.path) == 1 and c.op != p.UPDATE)
    ]
    if refused:
        raise NotAllowed([f"your role may not make this change: {line}" for line in refused])


def _with_secret_changes(wanted: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Credentials' ``secret_env`` as a plan should show it: kept when the variable holds a
    secret to store (a new credential, or a secret that differs), else emptied, so an import
    whose secrets did not change changes nothing."""
    existing = {
        (c.tenant.slug, c.name): c
        for c in ProviderCredential.objects.select_related("tenant").filter(
            tenant__slug__in=[t["slug"] for t in wanted["tenants"]]
        )
    }
    tenants = []
    for t in wanted["tenants"]:
        credentials = []
        for c in t["credentials"]:
            name = c["secret_env"] or d.secret_env_name(t["slug"], c["name"])
            secret = env.get(name)
            stored = existing.get((t["slug"], c["name"]))
            new = secret is not None and (
                stored is None or catalog.open_credential(stored) != secret
            )
            keep = new or (stored is None and c["secret_env"])
            credentials.append({**c, "secret_env": name if keep else ""})
        tenants.append({**t, "credentials": credentials})
    return {**wanted, "tenants": tenants}


class _Writer:
    """Writes one change at a time, finding what it refers to by name."""

    def __init__(self, env: Mapping[str, str], warnings: list[str]) -> None:
        self.env = env
        self.warnings = warnings

    def apply(self, change: p.Change) -> None:
        try:
            if change.op == p.DELETE:
                assert change.before is not None
                getattr(self, f"delete_{change.kind.name}")(change.path, change.before)
            else:
                assert change.after is not None
                getattr(self, f"put_{change.kind.name}")(change.path, change.after)
        except ValidationError as exc:
            raise ImportRefused([f"{d.show_path(change.path)}: {_message(exc)}"]) from exc
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

    def delete_provider(self, path: d.Path, f: dict[str, Any]) -> None:
        Provider.objects.filter(name=f["name"]).delete()

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

    def delete_model(self, path: d.Path, f: dict[str, Any]) -> None:
        _, row = self._model(path, f)
        if row is not None:
            row.delete()

    # --- a tenant and what is in it -----------------------------------------------------

    def put_tenant(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = Tenant.objects.filter(slug=f["slug"]).first() or Tenant(slug=f["slug"])
        tenant.name = f["name"] or f["slug"]
        _set(tenant, f, ["active", "allowed_regions", "audit_retention_days"])

    def put_member(self, path: d.Path, f: dict[str, Any]) -> None:
        user = get_user_model().objects.filter(username=f["user"]).first()
        if user is None:
            self.warnings.append(
                f"{d.show_path(path)}: no user {f['user']!r} here; membership not imported"
            )
            return
        Membership.objects.update_or_create(
            user=user,
            tenant=self.tenant(path),
            defaults={"role": f["role"], "source": MembershipSource.LOCAL},
        )

    def delete_member(self, path: d.Path, f: dict[str, Any]) -> None:
        Membership.objects.filter(
            tenant=self.tenant(path), user__username=f["user"], source=MembershipSource.LOCAL
        ).delete()

    def put_sso_group(self, path: d.Path, f: dict[str, Any]) -> None:
        SsoGroup.objects.update_or_create(
            tenant=self.tenant(path), group=f["group"], defaults={"role": f["role"]}
        )

    def delete_sso_group(self, path: d.Path, f: dict[str, Any]) -> None:
        SsoGroup.objects.filter(tenant=self.tenant(path), group=f["group"]).delete()

    def put_project(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        if not Project.objects.filter(tenant=tenant, name=f["name"]).exists():
            _set(Project(tenant=tenant, name=f["name"]), f, [])

    def delete_project(self, path: d.Path, f: dict[str, Any]) -> None:
        Project.objects.filter(tenant=self.tenant(path), name=f["name"]).delete()

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
        if secret is not None:
            catalog.set_credential_secret(row, secret)
        row.full_clean(exclude=["encrypted_secret", "sealed_secret"])
        row.save()
        request_publish(f"credential {row} imported")

    def delete_credential(self, path: d.Path, f: dict[str, Any]) -> None:
        ProviderCredential.objects.filter(tenant=self.tenant(path), name=f["name"]).delete()
        request_publish("credential deleted by an import")

    def put_route(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        route = Route.objects.filter(tenant=tenant, name=f["name"]).first()
        route = route or Route(tenant=tenant, name=f["name"])
        for name in (
            "connect_timeout_ms",
            "first_token_timeout_ms",
            "total_timeout_ms",
            "max_retries",
            "latency_aware",
        ):
            setattr(route, name, f[name])
        catalog.save_route(route, [self._target(tenant, t) for t in f["targets"]])

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
        catalog.delete_route(self.route(self.tenant(path), f["name"]))

    def put_route_group(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        group, _ = RouteGroup.objects.get_or_create(tenant=tenant, name=f["name"])
        group.routes.set(self.routes(tenant, f["routes"]))
        projects = [self.project(tenant, name) for name in f["projects"]]
        group.projects.set([p for p in projects if p is not None])
        request_publish(f"route group {group} imported")

    def delete_route_group(self, path: d.Path, f: dict[str, Any]) -> None:
        RouteGroup.objects.filter(tenant=self.tenant(path), name=f["name"]).delete()
        request_publish(f"route group {f['name']} deleted")

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
        }
        routes = self.routes(tenant, f["routes"])
        expires_at = parse_datetime(f["expires_at"]) if f["expires_at"] else None
        existing = VirtualKey.objects.filter(key_hash=f["hash"]).first()
        if existing is None:
            keys.import_key(
                tenant, f["hash"], f["hint"], f["name"], routes, expires_at, created_by, **settings
            )
            return
        if existing.tenant_id != tenant.pk or existing.revoked_at is not None:
            raise ObjectMissing("this key is revoked or belongs to another tenant")
        existing.key_hint, existing.created_by = f["hint"] or existing.key_hint, created_by
        keys.update_key(existing, name=f["name"], routes=routes, expires_at=expires_at, **settings)

    def delete_key(self, path: d.Path, f: dict[str, Any]) -> None:
        keys.revoke_keys([self.key(self.tenant(path), f["hash"])])

    def put_identity_provider(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant = self.tenant(path)
        row = IdentityProvider.objects.filter(issuer=f["issuer"]).first()
        if row is not None and row.tenant_id != tenant.pk:
            raise ObjectMissing("this issuer belongs to another tenant")
        row = row or IdentityProvider(tenant=tenant, issuer=f["issuer"])
        names = ["name", "audience", "jwks", "subject_claim", "roles_claim", "role_routes"]
        _set(row, f, names)
        row.routes.set(self.routes(tenant, f["routes"]))

    def delete_identity_provider(self, path: d.Path, f: dict[str, Any]) -> None:
        IdentityProvider.objects.filter(tenant=self.tenant(path), issuer=f["issuer"]).delete()

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
        else:
            subject = {"scope": Scope.TENANT}
        rows = Limit.objects.filter(tenant=tenant, kind=f["kind"], period=f["period"], **subject)
        return Limit(tenant=tenant, kind=f["kind"], period=f["period"], **subject), rows.first()

    def put_limit(self, path: d.Path, f: dict[str, Any]) -> None:
        new, row = self._limits(path, f)
        names = ["amount", "time_zone", "hard", "alert_thresholds", "enabled"]
        _set(row or new, f, names)

    def delete_limit(self, path: d.Path, f: dict[str, Any]) -> None:
        _, row = self._limits(path, f)
        if row is not None:
            row.delete()

    def _guardrail(self, path: d.Path) -> tuple[Tenant, Route | None, GuardrailPolicy | None]:
        tenant = self.tenant(path)
        route = self.route(tenant, path[-2][1]) if path[-2][0] == "route" else None
        row = GuardrailPolicy.objects.filter(tenant=tenant, route=route).first()
        return tenant, route, row

    def put_guardrail(self, path: d.Path, f: dict[str, Any]) -> None:
        tenant, route, row = self._guardrail(path)
        _set(row or GuardrailPolicy(tenant=tenant, route=route), f, list(f))

    def delete_guardrail(self, path: d.Path, f: dict[str, Any]) -> None:
        _, _, row = self._guardrail(path)
        if row is not None:
            row.delete()


class ObjectMissing(Exception):
    """Something a change refers to is not there (or may not be used)."""


def _get(rows: Any, what: str) -> Any:
    row = rows.first()
    if row is None:
        raise ObjectMissing(f"no {what}")
    return row


def _set(row: Any, f: dict[str, Any], names: list[str]) -> None:
    """Set ``names`` from ``f`` (decimal strings as the model wants them), check the model's
    rules and save, asking for a publish."""
    for name in names:
        setattr(row, name, f[name])
    row.full_clean()
    row.save()
    request_publish(f"{row._meta.verbose_name} {row} imported")
