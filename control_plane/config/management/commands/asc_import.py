"""Make the configuration what a YAML document says:
``asc_import FILE [--tenant SLUG] [--prune] [--dry-run] [--user NAME]
[--staged 5,25,100 --soak 60s [--canary-nodes A,B | --canary-region R] [--threshold 0.05]]``.

Prints the changes (``+`` create, ``~`` update, ``-`` delete); with ``--dry-run`` checks them
all and writes nothing. Credentials' secrets come from the environment (see the export's
header). Exits non-zero, having written nothing, when any change is refused. ``--user``: the
snapshot history names that user as the author (and the import is held to their role);
without it, the system. ``--staged``: the change is published as a staged rollout (see
docs/operations.md, "Staged rollouts"): the canaries first, then each step after its soak,
rolled back by itself on a canary's NACK or errors; refused while another is in flight.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.config.document import DocumentError, from_yaml
from control_plane.config.services import ImportRefused, Result, import_document, import_staged


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
        parser.add_argument(
            "--staged",
            metavar="STEPS",
            help="stage the change: shares of the fleet per step in percent, e.g. 5,25,100",
        )
        parser.add_argument(
            "--soak", default="60s", help="how long each step runs before the next: 60s, 5m, 1h"
        )
        parser.add_argument("--canary-nodes", default="", help="the first canaries, by node id")
        parser.add_argument("--canary-region", default="", help="or the nodes of a region")
        parser.add_argument(
            "--threshold",
            type=float,
            default=0.05,
            help="how much higher a canary's error or denial rate may be than the baseline's",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        arguments = {
            "tenant": options["tenant"],
            "prune": options["prune"],
            "dry_run": options["dry_run"],
            "reason": f"asc_import {Path(name).name}",
        }
        user = acting_user(options["user"])
        staged = None
        try:
            if options["staged"] and not options["dry_run"]:
                result, staged = import_staged(
                    from_yaml(text), rollout=rollout_of(options), user=user, **arguments
                )
            else:
                result = import_document(from_yaml(text), user=user, **arguments)
        except (DocumentError, ImportRefused) as exc:
            raise CommandError("refused, nothing written:\n  " + "\n  ".join(exc.problems)) from exc
        report(self, result, options["dry_run"])
        if staged is not None:
            self.stdout.write(
                f"staged as rollout {staged.pk}: steps {staged.steps} %, soak {staged.soak_s} s"
            )
        elif options["staged"] and not options["dry_run"]:
            self.stdout.write("nothing to stage")


def rollout_of(options: dict[str, Any]) -> dict[str, Any]:
    try:
        steps = [int(x) for x in options["staged"].split(",") if x.strip()]
        soak = parse_duration(options["soak"])
    except ValueError as exc:
        raise CommandError(f"--staged/--soak: {exc}") from exc
    nodes = [n.strip() for n in options["canary_nodes"].split(",") if n.strip()]
    return {
        "steps": steps,
        "soak_s": soak,
        "threshold": options["threshold"],
        "nodes": nodes,
        "region": options["canary_region"],
    }


UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> int:
    """Seconds in "90", "90s", "5m" or "1h"."""
    text = text.strip()
    unit = UNITS.get(text[-1:], 0)
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise ValueError(f"not a duration: {text!r} (say 60s, 5m or 1h)")
    return int(number) * (unit or 1)


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
