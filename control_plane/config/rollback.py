"""Rolling the configuration back to a published version: the document stored with it
(``fleet.documents``) imported with pruning, through ``services.import_document`` like any
other import, so every row is written by its app's services in the acting user's name.

The document is taken as it was, except for what a rollback never undoes, by design:
- keys: a key revoked (or deleted) since is never brought back; a key created since stays,
  with only the routes, route groups and project the old version holds;
- who may administer a tenant (local memberships, SSO group mappings) and its audit retention:
  a snapshot never held them, and bringing back access someone withdrew, or changing how long
  audit records are kept, is not a configuration rollback;
- tenants created since stay, disabled (an import never deletes a tenant).
Credentials' secrets come from the old snapshot, where they are sealed (the document has none).
"""

from __future__ import annotations

from typing import Any

from control_plane.catalog.models import ProviderCredential
from control_plane.config import document as d
from control_plane.config.selectors import current_document
from control_plane.config.services import ImportRefused, export_yaml, import_document
from control_plane.core.crypto import seal_keyring
from control_plane.core.services import Actor
from control_plane.fleet.documents import Document, RollbackRefused
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import load_snapshot
from shared.crypto import credential_context


def export() -> Document:
    """What is stored with each published snapshot (read in the publisher's transaction)."""
    ids = {
        f"{c.tenant.slug}/{c.name}": str(c.pk)
        for c in ProviderCredential.objects.select_related("tenant")
    }
    return Document(export_yaml(), ids)


def restore(snapshot: PolicySnapshot, actor: Actor, reason: str) -> None:
    if not snapshot.document:
        raise RollbackRefused(
            [
                f"v{snapshot.version} was published before snapshots kept their configuration "
                "document; it cannot be restored"
            ]
        )
    old = d.from_yaml(snapshot.document)
    wanted = wanted_document(old, current_document())
    try:
        import_document(
            wanted, prune=True, secrets=_old_secrets(snapshot, old), user=actor, reason=reason
        )
    except ImportRefused as exc:
        raise RollbackRefused(exc.problems) from exc


def wanted_document(old: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the exceptions above taken from ``now`` (both normalised documents)."""
    current = {t["slug"]: t for t in now["tenants"]}
    tenants = [_tenant(t, current.pop(t["slug"], None)) for t in old["tenants"]]
    tenants += [{**t, "active": False} for t in current.values()]
    return {**old, "tenants": sorted(tenants, key=lambda t: t["slug"])}


def _tenant(old: dict[str, Any], now: dict[str, Any] | None) -> dict[str, Any]:
    live = {k["hash"]: k for k in now["keys"]} if now else {}
    known = {k["hash"] for k in old["keys"]}
    routes = {r["name"] for r in old["routes"]}
    groups = {g["name"] for g in old["route_groups"]}
    projects = {p["name"] for p in old["projects"]}
    keys = [k for k in old["keys"] if k["hash"] in live]
    keys += [
        {
            **k,
            "routes": [r for r in k["routes"] if r in routes],
            "route_groups": [g for g in k["route_groups"] if g in groups],
            "project": k["project"] if k["project"] in projects else "",
        }
        for h, k in live.items()
        if h not in known
    ]
    access: dict[str, Any] = {"members": [], "sso_groups": []}
    if now is not None:
        access = {k: now[k] for k in ("members", "sso_groups", "audit_retention_days")}
    return {**old, **access, "keys": sorted(keys, key=lambda k: k["hash"])}


def _old_secrets(snapshot: PolicySnapshot, old: dict[str, Any]) -> dict[str, str]:
    """Each credential's secret as the old version sealed it, under the environment name the
    import reads it from."""
    sealed = {c.id: c.sealed_secret for c in load_snapshot(snapshot).policy.credentials}
    keyring = seal_keyring()
    secrets = {}
    for t in old["tenants"]:
        for c in t["credentials"]:
            cid = snapshot.credential_ids.get(f"{t['slug']}/{c['name']}", "")
            if cid in sealed:
                name = c["secret_env"] or d.secret_env_name(t["slug"], c["name"])
                secrets[name] = keyring.open(sealed[cid], credential_context(cid)).decode()
    return secrets
