"""Roll the configuration back to what a published version held; the rollback itself is a
change like any other and publishes a new version.

The version's stored configuration document (``fleet.documents``) is imported with pruning,
through the services every other write uses, so everything it held comes back: tenants,
providers, models and prices, credentials (their secrets from the old snapshot), routes and
their options, route groups, projects, keys' grants and caps, identity providers, limits and
guardrail policies; rows created since are deleted (tenants: disabled). Keys are the exception,
by design: a key revoked since is never brought back, and keys created since stay (with only
what still exists). What the import does lives in ``control_plane.config.rollback``.
"""

from __future__ import annotations

from django.db import transaction

from control_plane.core.services import Actor
from control_plane.fleet.documents import RollbackRefused as RollbackRefused
from control_plane.fleet.documents import restore_document
from control_plane.fleet.models import PolicySnapshot


@transaction.atomic
def rollback_to(version: int, *, actor: Actor, reason: str = "") -> None:
    """Every row is written through its app's services in ``actor``'s name; raises
    ``RollbackRefused`` (nothing written) when the version cannot be restored."""
    snapshot = PolicySnapshot.objects.filter(version=version).first()
    if snapshot is None:
        raise RollbackRefused([f"there is no version v{version}"])
    restore_document(snapshot, actor, reason or f"rollback to v{version}")
