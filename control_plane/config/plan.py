"""What importing a document would change: a pure comparison of two normalised documents.

A record present in both with different fields is an update; one only in the wanted document a
create; one only in the current document a delete, but only when pruning, and only where the
wanted document speaks for it: rows of a tenant the document holds, and (for a whole-config
import) providers and models. Tenants missing from a document are never deleted by an import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_plane.config import document as d

CREATE, UPDATE, DELETE = "create", "update", "delete"
# Order of writes: what a row refers to exists before it (deletes go the other way).
ORDER = [
    "provider",
    "model",
    "tenant",
    "member",
    "sso_group",
    "project",
    "credential",
    "route",
    "route_group",
    "key",
    "identity_provider",
    "tag_value",
    "limit",
    "guardrail",
]
# Deleted before any write: nothing refers to a limit (a tag value is only its limits), and
# a limit can refuse a change to what it names (a tenant's tag rule it is on).
DELETED_FIRST = frozenset({"tag_value", "limit"})


@dataclass(frozen=True)
class Change:
    op: str
    path: d.Path
    kind: d.Kind
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def fields(self) -> list[str]:
        """The fields an update changes."""
        if self.before is None or self.after is None:
            return []
        return [k for k in self.after if self.before.get(k) != self.after[k]]

    def describe(self) -> str:
        sign = {CREATE: "+", UPDATE: "~", DELETE: "-"}[self.op]
        line = f"{sign} {d.show_path(self.path)}"
        if self.op == UPDATE:
            assert self.before is not None
            assert self.after is not None
            changes = ", ".join(
                f"{k}: {_short(self.before.get(k))} -> {_short(self.after[k])}" for k in self.fields
            )
            line += f" ({changes})"
        return line


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def diff(
    current: dict[str, Any], wanted: dict[str, Any], *, prune: bool, whole: bool
) -> list[Change]:
    """The changes that turn ``current`` into ``wanted``, in the order they can be written."""
    have = {path: (kind, fields) for path, kind, fields in d.records(current)}
    want = {path: (kind, fields) for path, kind, fields in d.records(wanted)}
    changes = []
    for path, (kind, fields) in want.items():
        if path not in have:
            changes.append(Change(CREATE, path, kind, None, fields))
        elif have[path][1] != fields:
            changes.append(Change(UPDATE, path, kind, have[path][1], fields))
    if prune:
        spoken_for = {p[0] for p in want if p[0][0] == "tenant"}
        for path, (kind, fields) in have.items():
            if path in want or (path[0][0] == "tenant" and len(path) == 1):
                continue
            if path[0] in spoken_for or (whole and path[0][0] == "provider"):
                changes.append(Change(DELETE, path, kind, fields, None))
    writes = sorted(
        (c for c in changes if c.op != DELETE),
        key=lambda c: (ORDER.index(c.kind.name), d.show_path(c.path)),
    )
    deletes = sorted(
        (c for c in changes if c.op == DELETE),
        key=lambda c: (-ORDER.index(c.kind.name), d.show_path(c.path)),
    )
    first = [c for c in deletes if c.kind.name in DELETED_FIRST]
    return first + writes + [c for c in deletes if c.kind.name not in DELETED_FIRST]


def render(changes: list[Change]) -> str:
    if not changes:
        return "no changes\n"
    return "".join(c.describe() + "\n" for c in changes)
