"""Make the configuration what a YAML document says:
``asc_import FILE [--tenant SLUG] [--prune] [--dry-run] [--user NAME]``.

Prints the changes (``+`` create, ``~`` update, ``-`` delete); with ``--dry-run`` checks them
all and writes nothing. Credentials' secrets come from the environment (see the export's
header). Exits non-zero, having written nothing, when any change is refused. ``--user``: the
snapshot history names that user as the author (and the import is held to their role);
without it, the system.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.config.document import DocumentError, from_yaml
from control_plane.config.services import ImportRefused, Result, import_document


class Command(BaseCommand):
    help = "Import a configuration document (YAML); idempotent, with --dry-run showing the diff."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the YAML document, or - for standard input")
        parser.add_argument("--tenant", help="import only this tenant's part")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete what the document's tenants no longer hold (keys are revoked); "
            "for a whole-config import, providers and models too. Tenants are never deleted.",
        )
        parser.add_argument("--dry-run", action="store_true", help="show the changes only")
        add_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        try:
            result = import_document(
                from_yaml(text),
                tenant=options["tenant"],
                prune=options["prune"],
                dry_run=options["dry_run"],
                user=acting_user(options["user"]),
                reason=f"asc_import {Path(name).name}",
            )
        except (DocumentError, ImportRefused) as exc:
            raise CommandError("refused, nothing written:\n  " + "\n  ".join(exc.problems)) from exc
        report(self, result, options["dry_run"])


def add_user_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--user",
        help="the user the snapshot history names as the author, held to their role "
        "(default: the system)",
    )


def acting_user(name: str | None) -> Any:
    """The active user named ``name`` (None: the system)."""
    if name is None:
        return None
    user = get_user_model().objects.filter(username=name, is_active=True).first()
    if user is None:
        raise CommandError(f"no active user {name!r}")
    return user


def report(command: BaseCommand, result: Result, dry_run: bool) -> None:
    command.stdout.write(result.report(), ending="")
    verb = "would make" if dry_run else "made"
    command.stdout.write(f"{verb} {len(result.changes)} change(s)")
