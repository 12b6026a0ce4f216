"""Write the configuration (or one tenant's) as YAML: ``asc_export [--tenant SLUG] [-o FILE]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.config.services import export_yaml
from control_plane.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Export the configuration as YAML (no secrets: credentials by name, keys by hash)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this tenant (and the providers it uses)")
        parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = options["tenant"]
        if tenant is not None and not Tenant.objects.filter(slug=tenant).exists():
            raise CommandError(f"no tenant {tenant!r}")
        text = export_yaml(tenant)
        if options["output"] is None:
            self.stdout.write(text, ending="")
        else:
            options["output"].write_text(text)
