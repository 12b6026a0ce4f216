from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from control_plane.audit.services import make_checkpoints


class Command(BaseCommand):
    help = "Sign a checkpoint of every audit chain that moved (what Celery beat runs hourly)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            made = make_checkpoints()
        self.stdout.write(f"{len(made)} checkpoint(s) signed")
