"""The write every app's services share, and the pair of services the admin and the API call.

A configuration write names its actor, the user who made the change (None: the system, e.g.
a management command), and passes it down to ``request_publish``, so the snapshot it leads to
records who made it (``PolicySnapshot.created_by``). Each app's ``put_*`` / ``delete_*``
services build on ``save_row`` and ``delete_row`` and add their own rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models, transaction

from control_plane.core.publishing import request_publish

# Who makes a change: a user (as ``request.user`` gives it), or None for the system.
Actor = AbstractBaseUser | AnonymousUser | None


def actor_id(actor: Actor) -> int | None:
    """The id the snapshot history records for ``actor`` (None: the system, or anonymous)."""
    if actor is None or not actor.is_authenticated:
        return None
    pk: int = actor.pk
    return pk


def publish_change(reason: str, actor: Actor, *, first: bool = False) -> None:
    """Ask for a publish on commit in ``actor``'s name (``first``: a reason summing up the
    whole transaction, put before the others)."""
    request_publish(reason, actor_id(actor), first=first)


@transaction.atomic
def save_row[M: models.Model](
    row: M,
    *,
    actor: Actor,
    many: Mapping[str, Iterable[Any]] | None = None,
    publish: bool = True,
    exclude: Iterable[str] = (),
) -> M:
    """Check ``row`` against its model's rules (fields in ``exclude`` aside), save it with its
    many-to-many values (``many``: field name to rows; a field not given is left as it is),
    and ask for a publish (unless ``publish`` is False: rows the snapshot does not hold).
    Constraints across rows are the database's: breaking one is a conflict (IntegrityError)."""
    row.full_clean(exclude=list(exclude) or None, validate_constraints=False)
    verb = "added" if row._state.adding else "changed"
    row.save()
    for name, values in (many or {}).items():
        getattr(row, name).set(values)
    if publish:
        publish_change(f"{row._meta.verbose_name} {row} {verb}", actor)
    return row


@transaction.atomic
def delete_row(row: models.Model, *, actor: Actor, publish: bool = True) -> None:
    reason = f"{row._meta.verbose_name} {row} deleted"
    row.delete()
    if publish:
        publish_change(reason, actor)


@dataclass(frozen=True)
class Writes[M: models.Model]:
    """One model's write services, as the admin and the API call them for the user acting:
    ``put(row, actor=..., **related)`` checks and saves a row whose fields are set (``related``:
    its many-to-many values, and inputs that are not fields, such as a credential's secret);
    ``delete(row, actor=...)`` deletes it. Both ask for a publish in the actor's name."""

    put: Callable[..., M]
    delete: Callable[..., None]
