"""What changed between two policies: a pure function over two protobuf policies.

Entities are matched by id; an entity is "changed" when any field differs, and the changed
field names are listed (sealed secrets and key hashes are compared but never shown).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict

from shared.pb import snapshot_pb2

KINDS = ("tenants", "providers", "credentials", "models", "routes", "keys")
HIDDEN = {"sealedSecret", "keyHash"}


@dataclass(frozen=True)
class Change:
    kind: str  # one of KINDS, singular
    id: str
    label: str
    action: str  # added, removed, changed
    fields: tuple[str, ...] = ()


def _label(entity: dict[str, object]) -> str:
    for name in ("slug", "name", "providerModel"):
        if entity.get(name):
            return str(entity[name])
    return str(entity.get("id", ""))


def diff_policies(old: snapshot_pb2.Policy, new: snapshot_pb2.Policy) -> list[Change]:
    changes: list[Change] = []
    for kind in KINDS:
        before = {e["id"]: e for e in (MessageToDict(m) for m in getattr(old, kind))}
        after = {e["id"]: e for e in (MessageToDict(m) for m in getattr(new, kind))}
        singular = kind.removesuffix("s")
        for entity_id in sorted(before.keys() | after.keys()):
            a, b = before.get(entity_id), after.get(entity_id)
            if a is None and b is not None:
                changes.append(Change(singular, entity_id, _label(b), "added"))
            elif b is None and a is not None:
                changes.append(Change(singular, entity_id, _label(a), "removed"))
            elif a != b and a is not None and b is not None:
                fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                shown = tuple("secret" if f in HIDDEN else f for f in fields)
                changes.append(Change(singular, entity_id, _label(b), "changed", shown))
    return changes
