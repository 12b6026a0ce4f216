"""Building blocks every control-plane app shares."""

from __future__ import annotations

import uuid
from typing import Any, Self

from django.db import models


class ScopedQuerySet(models.QuerySet[Any]):
    """Tenant scoping in one place (STYLE.md rule 2): views and admin build on ``restrict``.

    ``tenant_path`` is the lookup from the model to its Tenant ("" for Tenant itself, "tenant"
    for a tenant-owned row, None for platform-wide rows such as providers). The rules are in
    ``control_plane.core.access``.
    """

    tenant_path: str | None = "tenant"

    def restrict(self, user: Any, action: str = "view") -> Self:
        from control_plane.core.access import scope

        q = scope(self.model._meta.model_name or "", self.tenant_path, user, action)
        return self if q is None else self.filter(q)


def loose_ref(to: str, db_index: bool = True) -> models.ForeignKey[Any, Any]:
    """A reference from an append-only record (usage, audit) that outlives what it names and
    is written in bulk: a plain UUID column with no database constraint. ``db_index=False``
    where no read needs an index of its own on it (every index slows ingestion)."""
    return models.ForeignKey(
        to,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        db_index=db_index,
    )


class UUIDModel(models.Model):
    """Primary keys are UUIDs: they travel in snapshots and usage events as strings and never
    collide between environments."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
