"""The Celery app. With no ``CELERY_BROKER_URL`` (the embedded default) tasks run eagerly,
in-process, so ``make run`` needs no broker."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.settings")

app = Celery("control_plane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
