"""Moving over from LiteLLM: its proxy config.yaml becomes one tenant's routes, providers,
models, credentials and budgets, in one command, idempotently."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route
from control_plane.fleet.services import publish_snapshot
from control_plane.limits.models import Limit
from control_plane.tenancy.models import Tenant
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

CONFIG = Path(__file__).parent / "data" / "litellm_config.yaml"
ENV = {
    "ASC_TEST_UPSTREAM": "http://127.0.0.1:4010/v1",
    "OPENAI_API_KEY": "sk-openai-0123456789",
    "AZURE_API_KEY": "azure-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-0123456789",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("asc_import_litellm", str(CONFIG), "--tenant", "acme", *args, stdout=out)
    return out.getvalue()


def targets(route: str) -> list[tuple[str, str, int, int]]:
    r = Route.objects.get(tenant__slug="acme", name=route)
    return [
        (t.credential.name, t.model.provider_model, t.priority, t.weight)
        for t in r.targets.select_related("credential", "model")
    ]


def test_a_litellm_config_becomes_routes_with_fallbacks_limits_and_prices(env: None) -> None:
    report = run()
    assert "+ tenant acme" in report
    assert sorted(Route.objects.filter(tenant__slug="acme").values_list("name", flat=True)) == [
        "claude-sonnet",
        "flaky",
        "gpt-4",
        "gpt-4o",
    ]
    assert targets("gpt-4o") == [
        ("openai-api-key", "gpt-4o", 0, 3),
        ("azure-api-key", "gpt-4o-eu", 1, 1),
        ("anthropic-api-key", "claude-sonnet-4-5", 2, 1),  # the fallback
    ]
    assert targets("flaky") == [
        ("openai-api-key-2", "gpt-4o", 0, 1),
        ("openai-api-key", "gpt-4o", 1, 3),
        ("azure-api-key", "gpt-4o-eu", 2, 1),
    ]
    assert targets("gpt-4") == targets("gpt-4o"), "an alias serves the same targets"
    gpt = Route.objects.get(tenant__slug="acme", name="gpt-4o")
    assert (gpt.max_retries, gpt.total_timeout_ms, gpt.latency_aware) == (2, 30_000, True)

    upstream = Provider.objects.get(base_url="http://127.0.0.1:4010/v1")
    assert upstream.kind == "openai_compatible"
    azure = Provider.objects.get(kind="azure_openai")
    assert azure.options == {"api_version": "2024-06-01"}
    model = Model.objects.get(provider=upstream)
    assert (model.input_price, model.output_price) == (Decimal("2.5"), Decimal("10"))

    limits = {
        (m.scope, m.kind, m.period, m.route.name if m.route else ""): m.amount
        for m in Limit.objects.filter(tenant__slug="acme").select_related("route")
    }
    assert limits == {
        ("tenant", "budget", "month", ""): Decimal("250"),
        ("route", "requests", "minute", "gpt-4o"): Decimal("1000"),
        ("route", "tokens", "minute", "gpt-4o"): Decimal("300000"),
        ("route", "budget", "month", "claude-sonnet"): Decimal("50"),
    }
    secret = ProviderCredential.objects.get(tenant__slug="acme", name="anthropic-api-key")
    assert catalog.open_credential(secret) == "sk-ant-0123456789"
    for warning in ("titan", "master_key", "context_window_fallbacks", "success_callback"):
        assert warning in report, warning
    publish_snapshot("after the LiteLLM import")  # a valid policy


def test_importing_again_changes_nothing_and_a_dry_run_writes_nothing(env: None) -> None:
    assert "would make" in run("--dry-run")
    assert not Tenant.objects.exists()
    run()
    assert run().startswith("no changes")


def test_the_rest_of_an_existing_tenant_is_left_alone(env: None) -> None:
    stack = factories.stack("acme")
    Tenant.objects.filter(slug="acme").update(name="ACME Corp", allowed_regions=["eu"])
    run()
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.allowed_regions) == ("ACME Corp", ["eu"])
    assert Route.objects.filter(pk=stack["route"].pk).exists()  # type: ignore[attr-defined]
    assert Provider.objects.filter(name="mock", enabled=True).exists()


def test_a_missing_api_key_is_named_and_nothing_is_written(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(CommandError) as info:
        run()
    assert "ANTHROPIC_API_KEY" in str(info.value)
    assert not Tenant.objects.exists()
    assert not Provider.objects.exists()
