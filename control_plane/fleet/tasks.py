from __future__ import annotations

from celery import shared_task

from control_plane.fleet.services import publish_snapshot


@shared_task(  # type: ignore[untyped-decorator]  # celery ships no type hints
    autoretry_for=(RuntimeError,), retry_backoff=True, max_retries=5
)
def publish_snapshot_task(reason: str = "", user_id: int | None = None) -> int:
    """Safe to rerun: publishing an unchanged policy writes nothing."""
    return publish_snapshot(reason, user_id).snapshot.version
