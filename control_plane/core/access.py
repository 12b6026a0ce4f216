"""Who may see and change what: the role table, and the one queryset filter built from it.

Platform admins (superusers) may do everything. Everyone else acts through a Membership role
in a tenant, and sees or changes only rows of tenants where a role allows it. Developers see
and change only the keys they created, and only those keys' usage. Rows that are platform-wide
(providers, models) can be read by members and changed by platform admins only; snapshots and
fleet status hold every tenant's data and are for platform admins only.
"""

from __future__ import annotations

from dataclasses import dataclass
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
}
PLATFORM_ONLY = Rule(frozenset(), frozenset())


def is_platform_admin(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.is_superuser)


def roles_by_tenant(user: Any) -> dict[Any, str]:
    from control_plane.tenancy.models import Membership

    if user is None or not user.is_authenticated or not user.is_active:
        return {}
    return dict(Membership.objects.filter(user=user).values_list("tenant_id", "role"))


def scope(model_name: str, tenant_path: str | None, user: Any, action: str) -> Q | None:
    """The filter restricting ``model_name`` rows to what ``user`` may do; None: everything.
    An empty Q-free result is expressed as ``Q(pk__in=[])``."""
    if is_platform_admin(user):
        return None
    nothing = Q(pk__in=[])
    rule = RULES.get(model_name, PLATFORM_ONLY)
    allowed = rule.roles(action)
    memberships = roles_by_tenant(user)
    full = [t for t, role in memberships.items() if role in allowed and role not in rule.own_only]
    own = [t for t, role in memberships.items() if role in allowed and role in rule.own_only]
    if tenant_path is None:  # platform-wide rows: any allowed role anywhere
        return Q() if full or own else nothing
    lookup = f"{tenant_path}__in" if tenant_path else "pk__in"
    q = nothing
    if full:
        q |= Q(**{lookup: full})
    if own:
        q |= Q(**{lookup: own, rule.owner_path: user})
    return q


def may_create_in(model_name: str, user: Any, tenant_id: Any) -> bool:
    """Whether ``user`` may create a ``model_name`` row in ``tenant_id`` (None: platform-wide)."""
    if is_platform_admin(user):
        return True
    if tenant_id is None:
        return False
    role = roles_by_tenant(user).get(tenant_id)
    return role is not None and role in RULES.get(model_name, PLATFORM_ONLY).change


def has_role_for(model_name: str, user: Any, action: str) -> bool:
    """Whether ``user`` holds, in any tenant, a role allowing ``action`` on ``model_name``
    (what the admin asks before showing a model's pages at all)."""
    if is_platform_admin(user):
        return True
    allowed = RULES.get(model_name, PLATFORM_ONLY).roles(action)
    return any(role in allowed for role in roles_by_tenant(user).values())
