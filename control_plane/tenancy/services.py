"""Writes to tenants, their members and their projects, in the name of the user acting.

Tenants and projects are in the policy snapshot: their writes ask for a publish. Memberships
are not (who may administer what is the control plane's business only): nothing to publish.
"""

from __future__ import annotations

from control_plane.core.services import Actor, delete_row, save_row
from control_plane.tenancy.models import Membership, Project, Tenant


def put_tenant(tenant: Tenant, *, actor: Actor) -> Tenant:
    return save_row(tenant, actor=actor)


def delete_tenant(tenant: Tenant, *, actor: Actor) -> None:
    """Deletes all of the tenant: routes, keys, records."""
    delete_row(tenant, actor=actor)


def put_membership(membership: Membership, *, actor: Actor) -> Membership:
    return save_row(membership, actor=actor, publish=False)


def delete_membership(membership: Membership, *, actor: Actor) -> None:
    delete_row(membership, actor=actor, publish=False)


def put_project(project: Project, *, actor: Actor) -> Project:
    return save_row(project, actor=actor)


def delete_project(project: Project, *, actor: Actor) -> None:
    delete_row(project, actor=actor)
