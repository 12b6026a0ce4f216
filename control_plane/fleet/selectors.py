"""Reads for the fleet: the rows a snapshot is built from, and published snapshots."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Sum

from control_plane.catalog.models import (
    Model,
    Provider,
    ProviderCredential,
    Route,
    RouteGroup,
    RouteTarget,
)
from control_plane.fleet import snapshot_builder as b
from control_plane.fleet.models import CircuitOpening, DataPlaneNode, PolicySnapshot
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
            b.TenantRow(
                str(t.id),
                t.slug,
                t.active,
                list(t.allowed_regions),
                dict(t.allowed_tags),
                t.drop_unknown_tags,
                t.trace_prompts,
            )
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
                r.cache_ttl_s,
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
                dict(k.tags),
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
        projects=[
            b.ProjectRow(str(p.id), str(p.tenant_id), p.name, dict(p.tags))
            for p in Project.objects.all()
        ],
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


def latest_published() -> PolicySnapshot | None:
    """The latest snapshot's row without its payload and document (read if used): what a
    publish compares its hash with (the payload is 26 MiB at 100k keys)."""
    return PolicySnapshot.objects.defer("payload", "document").order_by("-version").first()


def latest_snapshot_after(version: int) -> PolicySnapshot | None:
    """The latest snapshot when it is newer than ``version``, else None: one query, and no
    payload read when there is nothing newer."""
    return PolicySnapshot.objects.filter(version__gt=version).order_by("-version").first()


def latest_version() -> int:
    return (
        PolicySnapshot.objects.order_by("-version").values_list("version", flat=True).first() or 0
    )


# An open circuit no request has found open for this long is taken to have closed: the data
# plane's longest default cool-down (data_plane/policy/health.py, breaker_max_cooldown_s).
CIRCUIT_QUIET = timedelta(minutes=5)


@dataclass(frozen=True)
class NodeStatus:
    node: DataPlaneNode
    lag: int  # versions behind the latest published
    open_circuits: int  # targets its requests found open within CIRCUIT_QUIET


def fleet_status(now: datetime) -> list[NodeStatus]:
    """Every node with its lag and open circuits, in a fixed number of queries, those needing
    a look first: connected nodes behind or with open circuits, then the other connected ones,
    then the disconnected (fleet status holds every tenant's traffic: the callers show it to
    platform admins only)."""
    latest = latest_version()
    circuits = dict(
        CircuitOpening.objects.filter(last_seen_at__gte=now - CIRCUIT_QUIET)
        .values("node_id")
        .annotate(n=Count("id"))
        .values_list("node_id", "n")
    )
    nodes = [
        NodeStatus(n, max(0, latest - n.applied_version), circuits.get(n.node_id, 0))
        for n in DataPlaneNode.objects.order_by("node_id")
    ]
    return sorted(nodes, key=lambda s: (not s.node.connected, not (s.lag or s.open_circuits)))


@dataclass(frozen=True)
class OpenCircuit:
    provider: str
    model: str
    nodes: int
    tenants: int
    opened_at: datetime
    requests: int


def open_circuits(now: datetime) -> list[OpenCircuit]:
    """Targets some request found open within ``CIRCUIT_QUIET``, one line per target."""
    rows = (
        CircuitOpening.objects.filter(last_seen_at__gte=now - CIRCUIT_QUIET)
        .values("provider_id", "model_id")
        .annotate(
            nodes=Count("node_id", distinct=True),
            tenants=Count("tenant_id", distinct=True),
            since=Min("opened_at"),
            requests=Sum("requests"),
            last=Max("last_seen_at"),
        )
        .order_by("-last")
    )
    names = dict(Model.objects.values_list("id", "provider_model"))
    providers = dict(Provider.objects.values_list("id", "name"))
    return [
        OpenCircuit(
            providers.get(r["provider_id"], str(r["provider_id"] or "?")),
            names.get(r["model_id"], str(r["model_id"] or "?")),
            r["nodes"],
            r["tenants"],
            r["since"],
            r["requests"] or 0,
        )
        for r in rows
    ]


def circuit_openings(user: Any, tenant_id: Any, since: datetime, until: datetime) -> list[Any]:
    """Circuits one tenant's requests found open, opened in ``[since, until)``, as the user may
    see them, oldest first, with their target's names."""
    return list(
        CircuitOpening.objects.restrict(user)
        .filter(tenant_id=tenant_id, opened_at__gte=since, opened_at__lt=until)
        .select_related("provider", "model")
        .order_by("opened_at")
    )


def published_between(since: datetime, until: datetime) -> list[PolicySnapshot]:
    """Snapshot versions published in ``[since, until)``, oldest first (without payloads)."""
    return list(
        PolicySnapshot.objects.filter(created_at__gte=since, created_at__lt=until)
        .only("version", "created_at", "reason")
        .order_by("version")
    )
