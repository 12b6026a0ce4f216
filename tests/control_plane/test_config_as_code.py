"""Configuration as code: export, wipe, import and export again gives the same YAML; an import
is idempotent, a dry run shows the diff and writes nothing, secrets are never exported."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route, RouteGroup
from control_plane.config.document import DocumentError, from_yaml, secret_env_name
from control_plane.config.services import ImportRefused, import_document
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import publish_snapshot
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.limits.models import Limit
from control_plane.sso.models import SsoGroup
from control_plane.tenancy.models import Membership, Project, Tenant
from shared.crypto import hash_key
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

SECRETS = {"main": "sk-upstream-main-0123456789", "backup": "sk-upstream-backup-0123456789"}
JWKS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "sXch", "e": "AQAB"}]}


def build_configuration() -> dict[str, Any]:
    """One row of every kind the configuration holds, in two tenants."""
    alice = User.objects.create_user("alice", password="pw-alice-123")
    bob = User.objects.create_user("bob", password="pw-bob-12345")
    mock = factories.provider("mock")
    compat = Provider.objects.create(
        name="vllm", kind="openai_compatible", base_url="http://vllm.internal:8000/v1"
    )
    m1 = factories.model(mock, "mock-1", "eu")
    m2 = Model.objects.create(provider=compat, provider_model="llama-3", input_price=Decimal("0.1"))
    acme = factories.tenant("acme", regions=["eu"])
    acme.audit_retention_days = 30
    acme.save()
    Membership.objects.create(user=alice, tenant=acme, role="tenant_admin")
    Membership.objects.create(user=bob, tenant=acme, role="developer", source="sso")
    SsoGroup.objects.create(tenant=acme, group="acme-devs", role="developer")
    project = Project.objects.create(tenant=acme, name="search")
    main = factories.credential(acme, mock, "main", SECRETS["main"])
    backup = factories.credential(acme, compat, "backup", SECRETS["backup"])
    chat = catalog.put_route(
        Route(
            tenant=acme, name="chat", max_retries=2, latency_aware=True, drop_untranslatable=True
        ),
        actor=None,
        targets=[catalog.TargetSpec(m1, main, 0, 3), catalog.TargetSpec(m2, backup, 1, 1)],
    )
    other = factories.route(acme, m1, main, "other")
    key, secret = factories.key(acme, [chat, other], "app")
    key.project, key.max_tokens, key.created_by = project, 500, alice
    key.expires_at = datetime(2030, 1, 31, tzinfo=UTC)
    key.save()
    group = RouteGroup.objects.create(tenant=acme, name="everything")
    group.routes.set([chat, other])
    group.projects.set([project])
    key.route_groups.set([group])
    revoked, _ = factories.key(acme, [chat], "old")
    revoked.revoked_at = datetime(2025, 1, 1, tzinfo=UTC)
    revoked.save()
    Limit.objects.create(tenant=acme, amount=Decimal("100"), alert_thresholds=[0.8, 1])
    Limit.objects.create(tenant=acme, scope="project", project=project, amount=Decimal("20.5"))
    Limit.objects.create(tenant=acme, scope="key", key=key, kind="requests", amount=60)
    Limit.objects.create(tenant=acme, scope="route", route=chat, kind="tokens", amount=10000)
    acme.allowed_tags, acme.drop_unknown_tags = {"feature": ["summarizer"], "team": []}, True
    acme.save()
    project.tags = {"team": "search"}
    project.save()
    key.tags = {"feature": "summarizer"}
    key.save()
    Limit.objects.create(tenant=acme, scope="tag", tag="feature=summarizer", amount=Decimal(5))
    GuardrailPolicy.objects.create(tenant=acme, name="base", categories=["email"])
    GuardrailPolicy.objects.create(
        tenant=acme, route=chat, name="strict", default_action="block", on_output=False
    )
    idp = IdentityProvider.objects.create(
        tenant=acme,
        name="corp",
        issuer="https://idp.acme.example",
        audience="asc",
        jwks=JWKS,
        role_routes={"ml": ["chat"]},
    )
    idp.routes.set([other])
    beta = factories.tenant("beta")
    beta_credential = factories.credential(beta, mock, "main", "sk-beta-secret-0123456789")
    factories.route(beta, m1, beta_credential, "chat")
    return {"key": key, "secret": secret}


def env_secrets() -> dict[str, str]:
    return {
        secret_env_name("acme", "main"): SECRETS["main"],
        secret_env_name("acme", "backup"): SECRETS["backup"],
        secret_env_name("beta", "main"): "sk-beta-secret-0123456789",
    }


def export(tenant: str | None = None) -> str:
    out = io.StringIO()
    call_command("asc_export", *(["--tenant", tenant] if tenant else []), stdout=out)
    return out.getvalue()


def run_import(text: str, tmp_path: Any, *args: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    out = io.StringIO()
    call_command("asc_import", str(path), *args, stdout=out)
    return out.getvalue()


def wipe() -> None:
    Tenant.objects.all().delete()
    Model.objects.all().delete()
    Provider.objects.all().delete()


def test_export_wipe_import_export_gives_the_same_yaml(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_configuration()
    first = export()
    wipe()
    assert not Route.objects.exists()
    for name, value in env_secrets().items():
        monkeypatch.setenv(name, value)
    report = run_import(first, tmp_path)
    assert "+ tenant acme / route chat" in report
    assert export() == first
    assert "drop_untranslatable: true" in first
    assert Route.objects.get(tenant__slug="acme", name="chat").drop_untranslatable
    assert "tag: feature=summarizer" in first
    acme = Tenant.objects.get(slug="acme")
    assert (acme.allowed_tags, acme.drop_unknown_tags) == (
        {"feature": ["summarizer"], "team": []},
        True,
    )
    assert Project.objects.get(tenant=acme, name="search").tags == {"team": "search"}
    assert Limit.objects.get(tenant=acme, scope="tag").tag == "feature=summarizer"

    # What came back works: secrets from the environment, the key by its old secret's hash.
    main = ProviderCredential.objects.get(tenant__slug="acme", name="main")
    assert catalog.open_credential(main) == SECRETS["main"]
    key = VirtualKey.objects.get(key_hash=hash_key(world["secret"]))
    assert key.tenant.slug == "acme"
    assert key.tags == {"feature": "summarizer"}
    assert sorted(key.routes.values_list("name", flat=True)) == ["chat", "other"]
    group = RouteGroup.objects.get(tenant__slug="acme", name="everything")
    assert sorted(group.routes.values_list("name", flat=True)) == ["chat", "other"]
    assert list(group.projects.values_list("name", flat=True)) == ["search"]
    assert list(key.route_groups.values_list("name", flat=True)) == ["everything"]
    assert Membership.objects.filter(source="sso").count() == 0, "SSO memberships are not config"
    assert not VirtualKey.objects.filter(name="old").exists(), "revoked keys never come back"
    publish_snapshot("after the round trip")  # the imported configuration is a valid policy


def test_an_import_is_idempotent_and_publishes_once(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_configuration()
    text = export()
    for name, value in env_secrets().items():
        monkeypatch.setenv(name, value)  # the same secrets: nothing to change
    publish_snapshot("before")
    versions = PolicySnapshot.objects.count()
    report = run_import(text, tmp_path)
    assert report.startswith("no changes"), report
    assert PolicySnapshot.objects.count() == versions


def test_the_export_holds_no_secret(tmp_path: Any) -> None:
    world = build_configuration()
    text = export()
    for secret in [*SECRETS.values(), world["secret"]]:
        assert secret not in text
    for credential in ProviderCredential.objects.all():
        assert credential.secret_hint not in text
    assert hash_key(world["secret"]) in text, "keys travel as hashes"
    loaded = yaml.safe_load(text)
    acme = next(t for t in loaded["tenants"] if t["slug"] == "acme")
    assert acme["credentials"] == [
        {"name": "backup", "provider": "vllm"},
        {"name": "main", "provider": "mock"},
    ]


def test_a_dry_run_shows_the_diff_and_writes_nothing(tmp_path: Any) -> None:
    build_configuration()
    doc = yaml.safe_load(export())
    acme = next(t for t in doc["tenants"] if t["slug"] == "acme")
    chat = next(r for r in acme["routes"] if r["name"] == "chat")
    chat["targets"][0]["weight"] = 5
    acme["routes"].append(
        {"name": "new", "targets": [{"credential": "main", "model": "mock-1", "region": "eu"}]}
    )
    acme["routes"] = [r for r in acme["routes"] if r["name"] != "other"]
    acme["identity_providers"][0]["routes"] = []
    before = export()
    report = run_import(yaml.safe_dump(doc), tmp_path, "--dry-run", "--prune")
    assert "~ tenant acme / route chat (targets:" in report
    assert "+ tenant acme / route new" in report
    assert "- tenant acme / route other" in report
    assert "would make" in report
    assert export() == before, "a dry run writes nothing"

    run_import(yaml.safe_dump(doc), tmp_path, "--prune")
    assert sorted(Route.objects.filter(tenant__slug="acme").values_list("name", flat=True)) == [
        "chat",
        "new",
    ]
    assert Route.objects.get(tenant__slug="acme", name="chat").targets.first().weight == 5  # type: ignore[union-attr]


def test_without_prune_an_import_only_adds_and_updates(tmp_path: Any) -> None:
    world = build_configuration()
    doc = yaml.safe_load(export())
    acme = next(t for t in doc["tenants"] if t["slug"] == "acme")
    acme["routes"] = [r for r in acme["routes"] if r["name"] == "chat"]
    acme["keys"] = []
    acme["identity_providers"] = []
    assert run_import(yaml.safe_dump(doc), tmp_path).startswith("no changes")
    run_import(yaml.safe_dump(doc), tmp_path, "--prune")
    assert not Route.objects.filter(name="other", tenant__slug="acme").exists()
    world["key"].refresh_from_db()
    assert world["key"].revoked_at is not None, "a pruned key is revoked, not deleted"


def test_a_new_credential_needs_its_secret_and_a_refusal_writes_nothing(tmp_path: Any) -> None:
    build_configuration()
    text = export()
    wipe()
    with pytest.raises(CommandError) as info:
        run_import(text, tmp_path)
    assert secret_env_name("acme", "backup") in str(info.value)
    assert not Tenant.objects.exists()
    assert not Provider.objects.exists()


def test_a_changed_secret_in_the_environment_replaces_the_stored_one(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_configuration()
    monkeypatch.setenv(secret_env_name("acme", "main"), "sk-rotated-secret-000000")
    report = run_import(export("acme"), tmp_path, "--tenant", "acme")
    assert "~ tenant acme / credential main (secret_env: '' -> 'ASC_SECRET_ACME_MAIN')" in report
    main = ProviderCredential.objects.get(tenant__slug="acme", name="main")
    assert catalog.open_credential(main) == "sk-rotated-secret-000000"
    assert "no changes" in run_import(export("acme"), tmp_path, "--tenant", "acme")


def test_one_tenant_exports_and_imports_alone(tmp_path: Any) -> None:
    build_configuration()
    text = export("beta")
    loaded = yaml.safe_load(text)
    assert [t["slug"] for t in loaded["tenants"]] == ["beta"]
    assert [p["name"] for p in loaded["providers"]] == ["mock"]
    assert [m["model"] for m in loaded["providers"][0]["models"]] == ["mock-1"]
    loaded["tenants"][0]["routes"][0]["max_retries"] = 4
    acme_before = export("acme")
    report = run_import(yaml.safe_dump(loaded), tmp_path, "--tenant", "beta", "--prune")
    assert report.splitlines()[0] == "~ tenant beta / route chat (max_retries: 0 -> 4)"
    assert export("acme") == acme_before


def test_malformed_documents_are_refused_with_where() -> None:
    bad = """
tenants:
  - slug: acme
    routes:
      - name: chat
        targets: []
        colour: blue
  - slug: acme
providers:
  - name: x
    kind: nonsense
"""
    with pytest.raises(DocumentError) as info:
        from_yaml(bad)
    problems = info.value.problems
    assert any("providers[0]: kind: one of" in p for p in problems), problems
    assert any("tenants[acme].routes[0]: unknown field(s) colour" in p for p in problems), problems
    assert any("tenants: acme appears twice" in p for p in problems), problems


def test_a_tenant_admin_imports_only_inside_their_tenant() -> None:
    build_configuration()
    alice = User.objects.get(username="alice")
    doc = from_yaml(export("acme"))
    doc["tenants"][0]["routes"][0]["max_retries"] = 3
    result = import_document(doc, tenant="acme", user=alice)
    assert [c.describe() for c in result.changes] == [
        "~ tenant acme / route chat (max_retries: 2 -> 3)"
    ]
    doc["providers"][0]["enabled"] = False
    before = export()
    with pytest.raises(ImportRefused) as info:
        import_document(doc, tenant="acme", user=alice)
    assert "may not make this change: ~ provider mock" in str(info.value)
    assert export() == before


def test_a_tag_rule_and_its_limit_go_away_in_one_import(tmp_path: Any) -> None:
    """A tenant's tag rule may not be dropped while an enabled limit is on its value; an
    import that removes both removes the limit first."""
    build_configuration()
    doc = yaml.safe_load(export())
    acme = next(t for t in doc["tenants"] if t["slug"] == "acme")
    del acme["allowed_tags"]["feature"]
    acme["tag_values"] = [v for v in acme["tag_values"] if v["tag"] != "feature=summarizer"]
    for key in acme["keys"]:
        key.get("tags", {}).pop("feature", None)
    report = run_import(yaml.safe_dump(doc), tmp_path, "--prune")
    assert "- tenant acme / tag_value feature=summarizer" in report
    tenant = Tenant.objects.get(slug="acme")
    assert "feature" not in tenant.allowed_tags
    assert not Limit.objects.filter(tenant=tenant, scope="tag").exists()
