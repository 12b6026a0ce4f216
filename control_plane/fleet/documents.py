"""The configuration document stored with each snapshot, and restoring one.

Every published snapshot keeps the configuration document that produced it (what
``asc_export`` writes, without secrets), so that a rollback can restore everything the version
held by importing that document with pruning, through the services every other write uses.
The document format and the importer belong to the config app, which sits above fleet; so the
config app registers both here when Django starts (``ConfigConfig.ready``), the way fleet
registers its publisher in ``core.publishing``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from control_plane.fleet.models import PolicySnapshot


@dataclass(frozen=True)
class Document:
    """``text``: the YAML document; ``credential_ids``: "tenant/credential" to the
    credential's id, which finds its sealed secret in the snapshot (the document names
    credentials, the snapshot numbers them)."""

    text: str
    credential_ids: dict[str, str]


# The configuration as it is now, read in the caller's transaction.
Exporter = Callable[[], Document]
# Make the configuration what a snapshot's document says, in the name of the acting user.
Restorer = Callable[["PolicySnapshot", Any, str], None]

_registered: dict[str, Any] = {}


class RollbackRefused(Exception):
    """The rollback would break a rule, or the version holds no document; nothing was
    written. ``problems`` say why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def set_document_io(export: Exporter, restore: Restorer) -> None:
    _registered["export"], _registered["restore"] = export, restore


def export_document() -> Document | None:
    """None when no config app is installed (the snapshot is then stored without one)."""
    export: Exporter | None = _registered.get("export")
    return export() if export is not None else None


def restore_document(snapshot: PolicySnapshot, actor: Any, reason: str) -> None:
    restore: Restorer | None = _registered.get("restore")
    if restore is None:
        raise RuntimeError("no configuration importer registered: is the config app installed?")
    restore(snapshot, actor, reason)
