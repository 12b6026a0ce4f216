"""Reads for the fleet: the rows a snapshot is built from, and published snapshots."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from control_plane.catalog.models import (
    Model,
    Provider,
    ProviderCredential,
    Route,
    RouteGroup,
    RouteTarget,
)
from control_plane.fleet import snapshot_builder as b
from control_plane.fleet.models import PolicySnapshot
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.limits.models import Limit, Scope
from control_plane.tenancy.models import Project, Tenant


def policy_rows() -> b.PolicyRows:
    """Everything a snapshot holds, in a fixed number of queries. Revoked keys are left out
    (absent from the snapshot is refused everywhere); expired keys stay, and the data plane
    refuses them by their expiry time, so the snapshot depends on configuration only."""
    targets: dict[str, list[b.TargetRow]] = defaultdict(list)
    for t in RouteTarget.objects.order_by("route_id", "priority", "id"):
        targets[str(t.route_id)].append(
            b.TargetRow(str(t.model_id), str(t.credential_id), t.priority, t.weight)
        )
    live_keys = VirtualKey.objects.filter(revoked_at__isnull=True)
    key_routes = _granted_routes(live_keys)
    return b.PolicyRows(
        tenants=[
            b.TenantRow(str(t.id), t.slug, t.active, list(t.allowed_regions))
            for t in Tenant.objects.all()
        ],
        providers=[
            b.ProviderRow(str(p.id), p.name, p.kind, p.base_url, dict(p.options), p.enabled)
            for p in Provider.objects.all()
        ],
        credentials=[
            b.CredentialRow(str(c.id), str(c.tenant_id), str(c.provider_id), bytes(c.sealed_secret))
            for c in ProviderCredential.objects.all()
        ],
        models=[
            b.ModelRow(
                str(m.id),
                str(m.provider_id),
                m.provider_model,
                m.region,
                m.input_price,
                m.output_price,
                m.cached_input_price,
            )
            for m in Model.objects.all()
        ],
        routes=[
            b.RouteRow(
                str(r.id),
                str(r.tenant_id),
                r.name,
                targets[str(r.id)],
                r.connect_timeout_ms,
                r.first_token_timeout_ms,
                r.total_timeout_ms,
                r.max_retries,
                r.latency_aware,
                r.drop_untranslatable,
            )
            for r in Route.objects.all()
        ],
        keys=[
            b.KeyRow(
                str(k.id),
                str(k.tenant_id),
                k.name,
                k.key_hash,
                key_routes[str(k.id)],
                k.expires_at,
                k.created_by.get_username() if k.created_by else "",
                k.asserts_end_user,
                str(k.project_id or ""),
                k.max_parallel,
                k.max_body_bytes,
                k.max_tokens,
            )
            for k in live_keys.select_related("created_by")
        ],
        guardrails=[
            b.GuardrailRow(
                str(g.id),
                str(g.tenant_id),
                str(g.route_id or ""),
                g.on_input,
                g.on_output,
                list(g.categories),
                dict(g.actions),
                g.default_action,
                list(g.custom_patterns),
                list(g.keyword_lists),
            )
            for g in GuardrailPolicy.objects.filter(enabled=True)
        ],
        projects=[b.ProjectRow(str(p.id), str(p.tenant_id), p.name) for p in Project.objects.all()],
        identity_providers=_identity_providers(),
        limits=[
            b.LimitRow(
                str(m.id),
                str(m.tenant_id),
                m.scope,
                m.subject_id(),
                m.kind,
                m.period,
                m.time_zone,
                m.units(),
                m.hard,
            )
            for m in _live_limits(live_keys)
        ],
    )


def _granted_routes(live_keys: Any) -> dict[str, list[str]]:
    """Each live key's routes: its own, its route groups' and its project's groups' (routes of
    the key's tenant only), in a fixed number of queries whatever the number of keys."""

    def pairs(through: Any, owner: str, item: str, **where: Any) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for owner_id, item_id in through.objects.filter(**where).values_list(owner, item):
            out[str(owner_id)].add(str(item_id))
        return out

    keys_only = {"virtualkey__in": live_keys}
    own = pairs(VirtualKey.routes.through, "virtualkey_id", "route_id", **keys_only)
    key_groups = pairs(
        VirtualKey.route_groups.through, "virtualkey_id", "routegroup_id", **keys_only
    )
    group_routes = pairs(RouteGroup.routes.through, "routegroup_id", "route_id")
    project_groups = pairs(RouteGroup.projects.through, "project_id", "routegroup_id")
    route_tenant = {str(i): str(t) for i, t in Route.objects.values_list("id", "tenant_id")}
    granted: dict[str, list[str]] = {}
    for key_id, tenant_id, project_id in live_keys.values_list("id", "tenant_id", "project_id"):
        kid = str(key_id)
        groups = key_groups.get(kid, set()) | project_groups.get(str(project_id), set())
        routes = set(own.get(kid, ()))
        for group in groups:
            routes |= group_routes.get(group, set())
        granted[kid] = sorted(r for r in routes if route_tenant.get(r) == str(tenant_id))
    return granted


def _identity_providers() -> list[b.IdentityProviderRow]:
    route_ids = {
        (str(t), n): str(i) for i, t, n in Route.objects.values_list("id", "tenant_id", "name")
    }
    rows = []
    for idp in IdentityProvider.objects.prefetch_related("routes"):
        tenant = str(idp.tenant_id)
        by_role = {
            role: [route_ids[(tenant, n)] for n in names if (tenant, n) in route_ids]
            for role, names in idp.role_routes.items()
        }
        rows.append(
            b.IdentityProviderRow(
                str(idp.id),
                tenant,
                idp.issuer,
                idp.audience,
                json.dumps(idp.jwks, sort_keys=True),
                idp.subject_claim,
                idp.roles_claim,
                [str(r.pk) for r in idp.routes.all()],
                by_role,
            )
        )
    return rows


def _live_limits(live_keys: Any) -> Any:
    """Enabled limits, without those of revoked keys (absent from the snapshot)."""
    return Limit.objects.filter(enabled=True).exclude(
        scope=Scope.KEY, key__in=VirtualKey.objects.exclude(pk__in=live_keys)
    )


def latest_snapshot() -> PolicySnapshot | None:
    return PolicySnapshot.objects.order_by("-version").first()


def latest_version() -> int:
    return (
        PolicySnapshot.objects.order_by("-version").values_list("version", flat=True).first() or 0
    )
