from __future__ import annotations

from celery import shared_task

from control_plane.usage.services import rollup_spend


@shared_task  # type: ignore[untyped-decorator]  # celery ships no type hints
def rollup_task() -> int:
    """Safe to rerun and to run concurrently: each record is counted once."""
    return rollup_spend()
