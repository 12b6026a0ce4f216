from __future__ import annotations

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from control_plane.audit.services import make_checkpoints, purge_expired


@shared_task  # type: ignore[untyped-decorator]  # celery ships no type hints
def checkpoint_task() -> int:
    with transaction.atomic():
        return len(make_checkpoints())


@shared_task  # type: ignore[untyped-decorator]  # celery ships no type hints
def retention_task() -> int:
    return purge_expired(timezone.now())
