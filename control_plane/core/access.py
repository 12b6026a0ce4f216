"""Who may see and change what: the role table, and the one queryset filter built from it.

Platform admins (superusers) may do everything. Everyone else acts through a Membership role
in a tenant, and sees or changes only rows of tenants where a role allows it. Developers see
and change only the keys they created, and only those keys' usage. Rows that are platform-wide
(providers, models) can be read by members and changed by platform admins only; snapshots and
fleet status hold every tenant's data and are for platform admins only.

The rules are pure functions of what the user holds (``Grants``: platform admin or not, and a
role per tenant): ``reach`` says which tenants' rows of a kind a user may act on, and
``may_create`` / ``holds_role`` build on it, with no database access; the rule tests need no
database. ``grants_of`` loads a user's memberships with one query, kept for the rest of the
request (``per_request``, opened by ``AccessMiddleware``), so a page that checks many models
and rows asks once; decisions within a request use the memberships the request started with.
Outside a request every call loads afresh.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

VIEW, CHANGE, DELETE = "view", "change", "delete"
ADMIN, DEV, AUDITOR = "tenant_admin", "developer", "auditor"


@dataclass(frozen=True)
class Rule:
    view: frozenset[str]
    change: frozenset[str]
    # Roles limited to rows they own (for those, ``owner_path`` names the owning user).
    own_only: frozenset[str] = frozenset()
    owner_path: str = ""
    # Roles that may delete; None: those that may change.
    delete: frozenset[str] | None = None

    def roles(self, action: str) -> frozenset[str]:
        if action == VIEW:
            return self.view
        if action == DELETE and self.delete is not None:
            return self.delete
        return self.change


def _r(
    view: set[str],
    change: set[str],
    own: set[str] | None = None,
    owner: str = "",
    delete: set[str] | None = None,
) -> Rule:
    return Rule(
        frozenset(view),
        frozenset(change),
        frozenset(own or ()),
        owner,
        None if delete is None else frozenset(delete),
    )


RULES: dict[str, Rule] = {
    # A tenant admin runs their tenant; only the platform creates or deletes tenants.
    "tenant": _r({ADMIN, DEV, AUDITOR}, {ADMIN}, delete=set()),
    "membership": _r({ADMIN}, {ADMIN}),
    "ssogroup": _r({ADMIN}, {ADMIN}),
    "provider": _r({ADMIN, DEV, AUDITOR}, set()),
    "model": _r({ADMIN, DEV, AUDITOR}, set()),
    "providercredential": _r({ADMIN}, {ADMIN}),
    "route": _r({ADMIN, DEV, AUDITOR}, {ADMIN}),
    "routegroup": _r({ADMIN, DEV, AUDITOR}, {ADMIN}),
    "guardrailpolicy": _r({ADMIN, AUDITOR}, {ADMIN}),
    "identityprovider": _r({ADMIN, AUDITOR}, {ADMIN}),
    "project": _r({ADMIN, DEV, AUDITOR}, {ADMIN}),
    "limit": _r({ADMIN, DEV, AUDITOR}, {ADMIN}),
    "virtualkey": _r({ADMIN, DEV, AUDITOR}, {ADMIN, DEV}, {DEV}, "created_by"),
    "usagerecord": _r({ADMIN, DEV, AUDITOR}, set(), {DEV}, "key__created_by"),
    "auditrecord": _r({ADMIN, AUDITOR}, set()),
    "policysnapshot": _r(set(), set()),
    "dataplanenode": _r(set(), set()),
    # Open circuits a tenant's requests ran into (fleet.CircuitOpening): its timeline's marks.
    "circuitopening": _r({ADMIN, DEV, AUDITOR}, set()),
    # Platform-wide; auditors of any tenant read them, only platform admins act on them.
    "rollout": _r({AUDITOR}, set()),
}
PLATFORM_ONLY = Rule(frozenset(), frozenset())


@dataclass(frozen=True)
class Grants:
    """What a user holds: platform admin (superuser) or not, and their role per tenant id."""

    user_id: Any = None
    platform_admin: bool = False
    roles: Mapping[Any, str] = field(default_factory=dict)


NOBODY = Grants()


@dataclass(frozen=True)
class Reach:
    """Which rows of a kind a user may act on: every row, or the rows of ``tenants``, plus in
    ``own_tenants`` only the rows they own (the rule's ``owner_path``)."""

    everything: bool = False
    tenants: frozenset[Any] = frozenset()
    own_tenants: frozenset[Any] = frozenset()

    def anything(self) -> bool:
        return self.everything or bool(self.tenants or self.own_tenants)


def reach(grants: Grants, model_name: str, action: str) -> Reach:
    """Pure: which ``model_name`` rows ``grants`` allow ``action`` on."""
    if grants.platform_admin:
        return Reach(everything=True)
    rule = RULES.get(model_name, PLATFORM_ONLY)
    allowed = rule.roles(action)
    held = [(t, role) for t, role in grants.roles.items() if role in allowed]
    return Reach(
        tenants=frozenset(t for t, role in held if role not in rule.own_only),
        own_tenants=frozenset(t for t, role in held if role in rule.own_only),
    )


def may_create(grants: Grants, model_name: str, tenant_id: Any) -> bool:
    """Pure: whether ``grants`` allow creating a ``model_name`` row in ``tenant_id`` (None:
    platform-wide, for platform admins only)."""
    if grants.platform_admin:
        return True
    if tenant_id is None:
        return False
    allowed = reach(grants, model_name, CHANGE)
    return tenant_id in allowed.tenants or tenant_id in allowed.own_tenants


def holds_role(grants: Grants, model_name: str, action: str) -> bool:
    """Pure: whether ``grants`` hold, in any tenant, a role allowing ``action`` on
    ``model_name`` (what the admin asks before showing a model's pages at all)."""
    return reach(grants, model_name, action).anything()


def row_filter(allowed: Reach, tenant_path: str | None, owner_path: str, user_id: Any) -> Q | None:
    """Pure: the queryset filter for ``allowed``; None: everything. ``tenant_path`` is the
    lookup from the row to its tenant ("" for tenants, None for platform-wide rows, which any
    allowed role anywhere may act on). Nothing is ``Q(pk__in=[])``."""
    if allowed.everything:
        return None
    nothing = Q(pk__in=[])
    if tenant_path is None:
        return Q() if allowed.anything() else nothing
    lookup = f"{tenant_path}__in" if tenant_path else "pk__in"
    q = nothing
    if allowed.tenants:
        q |= Q(**{lookup: sorted(allowed.tenants, key=str)})
    if allowed.own_tenants:
        q |= Q(**{lookup: sorted(allowed.own_tenants, key=str), owner_path: user_id})
    return q


# Grants loaded in the current request, by user id (None: not in a request, nothing kept).
_request_grants: ContextVar[dict[Any, Grants] | None] = ContextVar("asc_grants", default=None)


@contextmanager
def per_request() -> Iterator[None]:
    """Within this block a user's memberships are loaded at most once."""
    token = _request_grants.set({})
    try:
        yield
    finally:
        _request_grants.reset(token)


def grants_of(user: Any) -> Grants:
    """What ``user`` holds: one membership query, or none when already loaded in this request
    or when the user is a platform admin, anonymous or inactive."""
    if user is None or not user.is_authenticated or not user.is_active:
        return NOBODY
    if user.is_superuser:
        return Grants(user.pk, platform_admin=True)
    loaded = _request_grants.get()
    if loaded is not None and user.pk in loaded:
        return loaded[user.pk]
    # The reverse side of tenancy's Membership: core imports no other app.
    rows = user.memberships.order_by().values_list("tenant_id", "role")  # no ordering joins
    grants = Grants(user.pk, roles=dict(rows))
    if loaded is not None:
        loaded[user.pk] = grants
    return grants


def is_platform_admin(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.is_superuser)


def roles_by_tenant(user: Any) -> Mapping[Any, str]:
    return grants_of(user).roles


def scope(model_name: str, tenant_path: str | None, user: Any, action: str) -> Q | None:
    """The filter restricting ``model_name`` rows to what ``user`` may do; None: everything."""
    grants = grants_of(user)
    owner_path = RULES.get(model_name, PLATFORM_ONLY).owner_path
    return row_filter(reach(grants, model_name, action), tenant_path, owner_path, grants.user_id)


def may_create_in(model_name: str, user: Any, tenant_id: Any) -> bool:
    """Whether ``user`` may create a ``model_name`` row in ``tenant_id`` (None: platform-wide)."""
    return may_create(grants_of(user), model_name, tenant_id)


def has_role_for(model_name: str, user: Any, action: str) -> bool:
    """Whether ``user`` holds, in any tenant, a role allowing ``action`` on ``model_name``."""
    return holds_role(grants_of(user), model_name, action)
