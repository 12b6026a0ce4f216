"""Move a LiteLLM proxy over:
``asc_import_litellm config.yaml --tenant SLUG [--dry-run] [--user NAME]``.

Reads LiteLLM's ``config.yaml`` (model_list, router_settings / litellm_settings fallbacks,
retries, timeouts, budgets; see ``control_plane.config.litellm``) and imports it into one
tenant (created when missing): a route per model group, providers, models and credentials as
needed. API keys named ``os.environ/VAR`` are read from VAR now and stored encrypted. Nothing
else of the tenant is touched, and importing the same file again changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.config.document import DocumentError
from control_plane.config.litellm import LiteLLMError
from control_plane.config.management.commands.asc_import import (
    acting_user,
    add_user_argument,
    report,
)
from control_plane.config.services import ImportRefused, import_litellm


class Command(BaseCommand):
    help = "Import a LiteLLM proxy config.yaml into one tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="LiteLLM's config.yaml")
        parser.add_argument("--tenant", required=True, help="the tenant's slug")
        parser.add_argument("--dry-run", action="store_true", help="show the changes only")
        add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            config = yaml.safe_load(path.read_text())
            result = import_litellm(
                config,
                options["tenant"],
                dry_run=options["dry_run"],
                env=os.environ,
                user=acting_user(options["user"]),
            )
        except (yaml.YAMLError, LiteLLMError, DocumentError, ImportRefused) as exc:
            problems = getattr(exc, "problems", [str(exc)])
            raise CommandError("refused, nothing written:\n  " + "\n  ".join(problems)) from exc
        report(self, result, options["dry_run"])
