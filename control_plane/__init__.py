"""ASC control plane: Django admin + REST API, snapshot publishing over gRPC, usage ingestion."""

from control_plane.celery import app as celery_app

__all__ = ["celery_app"]
