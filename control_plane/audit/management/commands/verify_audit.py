from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from control_plane.audit.selectors import verify_all


class Command(BaseCommand):
    help = "Verify stored audit chains and signed checkpoints; exits non-zero on any problem."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = list(verify_all())
        for problem in problems:
            self.stderr.write(str(problem))
        if problems:
            raise CommandError(f"audit trail NOT intact: first bad record {problems[0]}")
        self.stdout.write("audit trail intact")
