"""Reads of tenants' members."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet

from control_plane.core.access import VIEW
from control_plane.tenancy.models import Membership


def nameable_users(user: Any) -> QuerySet[Any]:
    """The users ``user`` may name in a membership: every active user for a platform admin;
    for anyone else, the members of tenants whose memberships they may see, and accounts that
    belong to no tenant yet (waiting for a first role). Another tenant's member or a platform
    admin is not among them, so naming one gets the same answer as a user name that does not
    exist: the membership API is no oracle for who has an account elsewhere."""
    active = get_user_model().objects.filter(is_active=True)
    if getattr(user, "is_superuser", False):
        return active
    visible = Membership.objects.restrict(user, VIEW).values("user_id")
    unaffiliated = ~Exists(Membership.objects.filter(user=OuterRef("pk")))
    return active.filter(Q(pk__in=visible) | Q(unaffiliated, is_superuser=False))
