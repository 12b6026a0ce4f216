"""Importing a configuration document: plan the changes, check who may make them, write them
through each app's services in one transaction, and publish once.

A dry run is the same import rolled back at the end, so it checks everything a real one would
(references, each model's own rules, secrets present) and reports the same changes. Importing
the same document twice changes nothing the second time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from control_plane.catalog import services as catalog
from control_plane.catalog.models import ProviderCredential
from control_plane.config import document as d
from control_plane.config import litellm
from control_plane.config import plan as p
from control_plane.config.selectors import current_document
from control_plane.config.writer import ImportRefused as ImportRefused
from control_plane.config.writer import Writer, message
from control_plane.core.access import ADMIN, is_platform_admin, roles_by_tenant
from control_plane.core.services import Actor, publish_change
from control_plane.rollouts import services as rollouts
from control_plane.rollouts.models import Rollout
from control_plane.tenancy.models import Tenant


class NotAllowed(ImportRefused):
    """The user's role may not make some of the changes."""


@dataclass
class Result:
    changes: list[p.Change]
    warnings: list[str] = field(default_factory=list)
    applied: bool = False

    def report(self) -> str:
        lines = p.render(self.changes)
        return lines + "".join(f"! {w}\n" for w in self.warnings)


def export_yaml(tenants: str | list[str] | None = None) -> str:
    """The whole configuration, or the named tenant(s) with the providers they use."""
    if isinstance(tenants, str):
        tenants = [tenants]
    return d.to_yaml(current_document(tenants))


def import_document(
    wanted: dict[str, Any],
    *,
    tenant: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    secrets: Mapping[str, str] | None = None,
    user: Actor = None,
    reason: str = "configuration imported",
) -> Result:
    """Make the configuration what ``wanted`` (a parsed document) says. ``tenant``: only that
    tenant's part (and providers its routes need) is read and compared. ``secrets``: where
    credentials' secrets come from (default: the environment). ``user``: who asks, and whom
    the snapshot history names (None: the system, e.g. a management command); anyone but a
    platform admin may import only changes inside tenants they administer."""
    if tenant is not None:
        wanted = {**wanted, "tenants": [t for t in wanted["tenants"] if t["slug"] == tenant]}
        if not wanted["tenants"]:
            raise ImportRefused([f"the document has no tenant {tenant!r}"])
    env = os.environ if secrets is None else secrets
    result = Result([])
    try:
        with transaction.atomic():
            slugs = [t["slug"] for t in wanted["tenants"]] if tenant is not None else None
            names = [x["name"] for x in wanted["providers"]]
            current = current_document(slugs, names, all_models=True)
            wanted = _with_secret_changes(wanted, env)
            result.changes = p.diff(current, wanted, prune=prune, whole=tenant is None)
            if user is not None:
                _check_allowed(user, result.changes)
            writer = Writer(env, result.warnings, user)
            for change in result.changes:
                writer.apply(change)
            if result.changes:
                publish_change(reason, user, first=True)
            result.applied = not dry_run
            if dry_run:
                transaction.set_rollback(True)
    except (ValidationError, IntegrityError) as exc:
        raise ImportRefused([message(exc)]) from exc
    return result


def import_staged(
    wanted: dict[str, Any], *, rollout: Mapping[str, Any], user: Actor = None, **options: Any
) -> tuple[Result, Rollout | None]:
    """``import_document`` as a staged rollout (``rollout``: the arguments of
    ``rollouts.services.start``): the change goes to the canaries first, step by step. Nothing
    is staged when the import changes nothing; raises ``ImportRefused`` when a rollout cannot
    start (another one is in flight)."""
    with transaction.atomic():
        try:
            started = rollouts.start(actor=user, **rollout)
        except rollouts.RolloutRefused as exc:
            raise ImportRefused([f"cannot stage the change: {exc}"]) from exc
        result = import_document(wanted, user=user, **options)
        if not result.changes or not result.applied:
            transaction.set_rollback(True)
            return result, None
    return result, started


def import_litellm(
    config: Any,
    tenant: str,
    *,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    user: Actor = None,
) -> Result:
    """Import a LiteLLM proxy config (loaded YAML) into ``tenant``; see ``config.litellm``."""
    variables = dict(os.environ if env is None else env)
    current = current_document([tenant], all_providers=True)
    translation = litellm.translate(config, tenant, current, variables)
    secrets = {**variables, **translation.secrets}
    result = import_document(
        translation.document,
        tenant=tenant,
        dry_run=dry_run,
        secrets=secrets,
        user=user,
        reason="LiteLLM config imported",
    )
    result.warnings[:0] = translation.warnings
    return result


def _check_allowed(user: Any, changes: Iterable[p.Change]) -> None:
    """Platform admins may import anything; a tenant admin, changes inside their tenants (not
    the tenants themselves being created, nor providers and models)."""
    if is_platform_admin(user):
        return
    administered = [t for t, role in roles_by_tenant(user).items() if role == ADMIN]
    theirs = set(Tenant.objects.filter(pk__in=administered).values_list("slug", flat=True))
    refused = [
        c.describe()
        for c in changes
        if c.path[0][0] != "tenant"
        or c.path[0][1] not in theirs
        or (len(c.path) == 1 and c.op != p.UPDATE)
    ]
    if refused:
        raise NotAllowed([f"your role may not make this change: {line}" for line in refused])


def _with_secret_changes(wanted: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Credentials' ``secret_env`` as a plan should show it: kept when the variable holds a
    secret to store (a new credential, or a secret that differs), else emptied, so an import
    whose secrets did not change changes nothing."""
    existing = {
        (c.tenant.slug, c.name): c
        for c in ProviderCredential.objects.select_related("tenant").filter(
            tenant__slug__in=[t["slug"] for t in wanted["tenants"]]
        )
    }
    tenants = []
    for t in wanted["tenants"]:
        credentials = []
        for c in t["credentials"]:
            name = c["secret_env"] or d.secret_env_name(t["slug"], c["name"])
            secret = env.get(name)
            stored = existing.get((t["slug"], c["name"]))
            new = secret is not None and (
                stored is None or catalog.open_credential(stored) != secret
            )
            keep = new or (stored is None and c["secret_env"])
            credentials.append({**c, "secret_env": name if keep else ""})
        tenants.append({**t, "credentials": credentials})
    return {**wanted, "tenants": tenants}
