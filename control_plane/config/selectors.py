"""The configuration as it is in the database, as a normalised document (see ``document``).

Left out, by design: revoked keys (they never come back), memberships granted by SSO (they
follow the identity provider's groups), credentials' secrets (never exported) and everything
the system records rather than configures (usage, audit, snapshots, nodes, lease ledgers).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from control_plane.catalog.models import (
    Model,
    Provider,
    ProviderCredential,
    Route,
    RouteGroup,
    RouteTarget,
)
from control_plane.config import document as d
from control_plane.config import fields
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.limits.models import Limit, Scope
from control_plane.sso.models import SsoGroup
from control_plane.tenancy.models import Membership, MembershipSource, Project, Tenant


def current_document(
    tenants: Iterable[str] | None = None,
    providers: Iterable[str] = (),
    *,
    all_models: bool = False,
    all_providers: bool = False,
) -> dict[str, Any]:
    """The whole configuration (``tenants`` None), or those tenants with the providers and
    models their routes use, plus the ``providers`` named (with all their models when
    ``all_models``), or every provider and model (``all_providers``). Normalised: equal to
    ``document.parse`` of its own ``dump``."""
    tenant_rows = Tenant.objects.all()
    if tenants is not None:
        tenant_rows = tenant_rows.filter(slug__in=list(tenants))
    tenant_list = list(tenant_rows)
    ids = [t.pk for t in tenant_list]
    used = RouteTarget.objects.filter(route__tenant_id__in=ids)
    if tenants is None or all_providers:
        provider_rows = Provider.objects.all()
        model_filter = Q()
    else:
        named = Q(name__in=list(providers))
        credentialed = Q(credentials__tenant_id__in=ids)
        provider_rows = Provider.objects.filter(named | credentialed).distinct()
        model_filter = Q(pk__in=used.values("model_id"))
        if all_models:
            model_filter |= Q(provider__name__in=list(providers))
    models = defaultdict(list)
    for m in Model.objects.filter(model_filter).order_by("provider_model", "region"):
        models[m.provider_id].append(_model(m))
    rows = _Tenants(ids)  # every tenant's rows in one query per kind
    doc = {
        "providers": [_provider(p, models[p.pk]) for p in provider_rows.order_by("name")],
        "tenants": [rows.tenant(t) for t in tenant_list],
    }
    return d.parse(d.dump(doc))  # one canonical form, whatever the database returned


def _provider(p: Provider, models: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "base_url": p.base_url,
        "options": dict(p.options),
        "enabled": p.enabled,
        "models": models,
    }


def _model(m: Model) -> dict[str, Any]:
    return {
        "model": m.provider_model,
        "region": m.region,
        "input_price": fields.decimal(m.input_price),
        "output_price": fields.decimal(m.output_price),
        "cached_input_price": fields.decimal(m.cached_input_price),
    }


def _limit(m: Limit) -> dict[str, Any]:
    return {
        "kind": m.kind,
        "period": m.period,
        "amount": fields.decimal(m.amount),
        "time_zone": m.time_zone,
        "hard": m.hard,
        "alert_thresholds": list(m.alert_thresholds),
        "enabled": m.enabled,
    }


def _guardrail(g: GuardrailPolicy) -> dict[str, Any]:
    return {
        "name": g.name,
        "enabled": g.enabled,
        "on_input": g.on_input,
        "on_output": g.on_output,
        "categories": list(g.categories),
        "actions": dict(g.actions),
        "default_action": g.default_action,
        "custom_patterns": list(g.custom_patterns),
        "keyword_lists": list(g.keyword_lists),
    }


class _Tenants:
    """Every row of the given tenants, fetched once per kind."""

    def __init__(self, ids: list[Any]) -> None:
        def by_tenant(rows: Iterable[Any]) -> dict[Any, list[Any]]:
            out: dict[Any, list[Any]] = defaultdict(list)
            for row in rows:
                out[row.tenant_id].append(row)
            return out

        mine = {"tenant_id__in": ids}
        self.members = by_tenant(
            Membership.objects.filter(source=MembershipSource.LOCAL, **mine).select_related("user")
        )
        self.sso_groups = by_tenant(SsoGroup.objects.filter(**mine))
        self.projects = by_tenant(Project.objects.filter(**mine))
        self.credentials = by_tenant(
            ProviderCredential.objects.filter(**mine).select_related("provider")
        )
        self.routes = by_tenant(Route.objects.filter(**mine))
        self.route_groups = by_tenant(
            RouteGroup.objects.filter(**mine).prefetch_related("routes", "projects")
        )
        self.keys = by_tenant(
            VirtualKey.objects.filter(revoked_at__isnull=True, **mine)
            .select_related("project", "created_by")
            .prefetch_related("routes", "route_groups")
        )
        self.idps = by_tenant(IdentityProvider.objects.filter(**mine).prefetch_related("routes"))
        self.limits: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
        for m in Limit.objects.filter(**mine):
            subject = {
                Scope.TENANT: m.tenant_id,
                Scope.PROJECT: m.project_id,
                Scope.KEY: m.key_id,
                Scope.ROUTE: m.route_id,
                Scope.TAG: (m.tenant_id, m.tag),  # a tag value is one tenant's
            }[Scope(m.scope)]
            self.limits[(m.scope, subject)].append(_limit(m))
        self.guardrails = {
            (g.tenant_id, g.route_id): _guardrail(g) for g in GuardrailPolicy.objects.filter(**mine)
        }
        self.targets: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for t in (
            RouteTarget.objects.filter(route__tenant_id__in=ids)
            .select_related("model", "credential")
            .order_by("route_id", "priority", "id")
        ):
            self.targets[t.route_id].append(
                {
                    "credential": t.credential.name,
                    "model": t.model.provider_model,
                    "region": t.model.region,
                    "priority": t.priority,
                    "weight": t.weight,
                }
            )

    def tenant(self, t: Tenant) -> dict[str, Any]:
        return {
            "slug": t.slug,
            "name": t.name,
            "active": t.active,
            "allowed_regions": list(t.allowed_regions),
            "audit_retention_days": t.audit_retention_days,
            "allowed_tags": dict(t.allowed_tags),
            "drop_unknown_tags": t.drop_unknown_tags,
            "trace_prompts": t.trace_prompts,
            "members": [
                {"user": m.user.get_username(), "role": m.role} for m in self.members[t.pk]
            ],
            "sso_groups": [{"group": g.group, "role": g.role} for g in self.sso_groups[t.pk]],
            "projects": [
                {"name": p.name, "tags": dict(p.tags), "limits": self.limits[(Scope.PROJECT, p.pk)]}
                for p in self.projects[t.pk]
            ],
            "credentials": [
                {"name": c.name, "provider": c.provider.name} for c in self.credentials[t.pk]
            ],
            "routes": [self._route(r) for r in self.routes[t.pk]],
            "route_groups": [
                {
                    "name": g.name,
                    "routes": [r.name for r in g.routes.all()],
                    "projects": [p.name for p in g.projects.all()],
                }
                for g in self.route_groups[t.pk]
            ],
            "keys": [self._key(k) for k in self.keys[t.pk]],
            "identity_providers": [self._idp(i) for i in self.idps[t.pk]],
            "tag_values": sorted(
                (
                    {"tag": subject[1], "limits": found}
                    for (scope, subject), found in self.limits.items()
                    if scope == Scope.TAG and subject[0] == t.pk
                ),
                key=lambda v: v["tag"],
            ),
            "limits": self.limits[(Scope.TENANT, t.pk)],
            "guardrail": self.guardrails.get((t.pk, None)),
        }

    def _route(self, r: Route) -> dict[str, Any]:
        return {
            "name": r.name,
            "targets": self.targets[r.pk],
            "connect_timeout_ms": r.connect_timeout_ms,
            "first_token_timeout_ms": r.first_token_timeout_ms,
            "total_timeout_ms": r.total_timeout_ms,
            "max_retries": r.max_retries,
            "latency_aware": r.latency_aware,
            "drop_untranslatable": r.drop_untranslatable,
            "cache_ttl_s": r.cache_ttl_s,
            "limits": self.limits[(Scope.ROUTE, r.pk)],
            "guardrail": self.guardrails.get((r.tenant_id, r.pk)),
        }

    def _key(self, k: VirtualKey) -> dict[str, Any]:
        return {
            "hash": k.key_hash,
            "name": k.name,
            "hint": k.key_hint,
            "routes": [r.name for r in k.routes.all()],
            "route_groups": [g.name for g in k.route_groups.all()],
            "project": k.project.name if k.project else "",
            "expires_at": k.expires_at,
            "max_parallel": k.max_parallel,
            "max_body_bytes": k.max_body_bytes,
            "max_tokens": k.max_tokens,
            "asserts_end_user": k.asserts_end_user,
            "tags": dict(k.tags),
            "created_by": k.created_by.get_username() if k.created_by else "",
            "limits": self.limits[(Scope.KEY, k.pk)],
        }

    def _idp(self, i: IdentityProvider) -> dict[str, Any]:
        return {
            "issuer": i.issuer,
            "name": i.name,
            "audience": i.audience,
            "jwks": i.jwks,
            "subject_claim": i.subject_claim,
            "roles_claim": i.roles_claim,
            "routes": [r.name for r in i.routes.all()],
            "role_routes": i.role_routes,
        }
