"""Staged rollouts on the database, without gRPC: the staged version reaches only the
canaries (what the gRPC process would push to each node), steps advance on soak or on an
operator's word, a canary's NACK or its error or denial rate rolls the step back to the
baseline and restores its configuration, a second change in flight is refused, and every
decision names who or what made it."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from control_plane.catalog.models import Provider
from control_plane.config.document import from_yaml
from control_plane.config.selectors import current_document
from control_plane.config.services import export_yaml
from control_plane.fleet import selectors as fleet
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.fleet.services import load_snapshot, publish_snapshot
from control_plane.grpc_api.staging import Staging
from control_plane.guardrails import services as guardrails
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.limits import services as limits
from control_plane.limits.models import Limit
from control_plane.limits.services import acquire
from control_plane.rollouts import services as rollouts
from control_plane.rollouts.models import Rollout, RolloutState
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Tenant
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

NODES = [f"dp-{i}" for i in range(10)]


@pytest.fixture
def admin() -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw-root-12345")


@pytest.fixture
def baseline() -> PolicySnapshot:
    factories.stack()
    for node in NODES:
        DataPlaneNode.objects.create(node_id=node, region="eu", connected=True)
    return publish_snapshot("baseline").snapshot


def block_everything() -> None:
    """The bad change: a tenant guardrail that blocks every request."""
    tenant = Tenant.objects.get(slug="acme")
    policy = GuardrailPolicy(
        tenant=tenant, name="oops", categories=["email"], actions={}, default_action="block"
    )
    guardrails.put_guardrail_policy(policy, actor=None)


def staged(admin: User, **kw: object) -> tuple[Rollout, PolicySnapshot]:
    args: dict[str, object] = {"steps": [10, 50, 100], "soak_s": 60, **kw}
    rollout = rollouts.start(actor=admin, **args)  # type: ignore[arg-type]  # test values
    block_everything()
    version = publish_snapshot("the change").snapshot
    rollouts.tick()
    rollout.refresh_from_db()
    return rollout, version


def served(staging: Staging) -> dict[str, int]:
    latest = fleet.latest_snapshot()
    assert latest is not None
    staging.apply(staging.read(latest.version))
    now = load_snapshot(latest)
    out = {}
    for node in NODES:
        snapshot = staging.for_node(node, now)
        assert snapshot is not None
        out[node] = snapshot.version
    return out


def health(version: int, requests: int, blocks: int = 0, errors: int = 0) -> object:
    return control_pb2.VersionHealth(
        version=version, requests=requests, guardrail_blocks=blocks, server_errors=errors
    )


def test_the_staged_version_reaches_only_the_canaries(
    admin: User, baseline: PolicySnapshot
) -> None:
    staging = Staging()
    rollout = rollouts.start(steps=[10, 50, 100], soak_s=60, actor=admin, nodes=["dp-7"])
    assert set(served(staging).values()) == {baseline.version}, "nothing staged yet"
    block_everything()
    version = publish_snapshot("the change").snapshot
    by_node = served(staging)
    assert {n for n, v in by_node.items() if v == version.version} == {"dp-7"}
    assert {v for n, v in by_node.items() if n != "dp-7"} == {baseline.version}
    rollout.refresh_from_db()
    assert (rollout.version, rollout.canary_nodes) == (version.version, ["dp-7"])


def test_steps_advance_on_soak_then_on_the_operators_word_then_complete(
    admin: User, baseline: PolicySnapshot
) -> None:
    rollout, version = staged(admin)
    staging = Staging()
    first = set(rollout.canary_nodes)
    assert len(first) == 1
    rollouts.tick(timezone.now() + timedelta(seconds=30))
    rollout.refresh_from_db()
    assert rollout.step == 0, "still soaking"
    rollouts.tick(timezone.now() + timedelta(seconds=61))
    rollout.refresh_from_db()
    assert rollout.step == 1
    assert first < set(rollout.canary_nodes)
    assert len(rollout.canary_nodes) == 5
    assert list(served(staging).values()).count(version.version) == 5
    rollouts.advance(rollout.pk, actor=admin)
    assert set(served(staging).values()) == {version.version}, "100 %: every node"
    rollouts.advance(rollout.pk, actor=admin)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.COMPLETED
    assert staging.apply(staging.read(fleet.latest_version())), "the assignment changed"
    assert staging.assignment is None, "no rollout holds the fleet"
    decisions = [(d.action, d.by_name) for d in rollout.decisions.all()]
    assert decisions == [
        ("start", "root"),
        ("staged", "system"),
        ("advance", "system"),
        ("advance", "root"),
        ("complete", "root"),
    ]


def test_a_canary_nack_rolls_back_and_leaves_every_node_on_the_last_good_version(
    admin: User, baseline: PolicySnapshot
) -> None:
    rollout, version = staged(admin)
    canary = rollout.canary_nodes[0]
    rollouts.node_refused(NODES[0] if canary != NODES[0] else NODES[1], version.hash, "x")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING, "a node that is no canary does not count"
    rollouts.node_refused(canary, version.hash, "pattern does not compile")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert rollout.reason == f"node {canary} refused the version: pattern does not compile"
    assert set(served(Staging()).values()) == {baseline.version}
    # The configuration is the baseline's again; its publish goes to every node.
    assert current_document() == from_yaml(baseline.document)
    restored = publish_snapshot("restore").snapshot
    assert restored.version > version.version
    assert set(served(Staging()).values()) == {restored.version}
    assert restored.document == baseline.document
    last = rollout.decisions.last()
    assert last is not None
    assert (last.action, last.by_name) == ("rollback", "system")


def test_a_canary_denying_far_more_than_the_baseline_rolls_back(
    admin: User, baseline: PolicySnapshot
) -> None:
    rollout, version = staged(admin, threshold=0.1, min_requests=20)
    canary = rollout.canary_nodes[0]
    others = [n for n in NODES if n != canary]
    rollouts.record_health(others[0], [health(baseline.version, 200, blocks=2)])
    rollouts.record_health(canary, [health(version.version, 10, blocks=10)])
    rollouts.tick()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING, "too few canary requests to judge"
    rollouts.record_health(canary, [health(version.version, 15, blocks=15)])
    rollouts.tick()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert rollout.reason.startswith("canary denial rate 100.0% over 25 requests")
    assert "baseline's 1.0% over 200" in rollout.reason
    assert GuardrailPolicy.objects.filter(name="oops").count() == 0, "the change is undone"


def test_a_healthy_canary_within_the_threshold_keeps_going(
    admin: User, baseline: PolicySnapshot
) -> None:
    rollout, version = staged(admin, threshold=0.1)
    canary = rollout.canary_nodes[0]
    rollouts.record_health("dp-x", [health(baseline.version, 100, errors=5)])
    rollouts.record_health(canary, [health(version.version, 100, errors=10)])
    rollouts.tick(timezone.now() + timedelta(seconds=61))
    rollout.refresh_from_db()
    assert (rollout.state, rollout.step) == (RolloutState.RUNNING, 1)


@pytest.mark.django_db(transaction=True)  # each write its own transaction, as in production
def test_a_second_change_in_flight_is_refused(admin: User, baseline: PolicySnapshot) -> None:
    rollout, version = staged(admin)
    with pytest.raises(ValidationError, match=f"a staged rollout of v{version.version} is in"):
        tenancy.put_tenant(Tenant(slug="another", name="another"), actor=admin)
    with pytest.raises(rollouts.RolloutRefused, match="is in flight"):
        rollouts.start(steps=[100], soak_s=0, actor=admin)
    api = APIClient()
    api.force_authenticate(admin)
    tenant = Tenant.objects.get(slug="acme")
    refused = api.patch(f"/api/v1/tenants/{tenant.pk}/", {"name": "x"}, format="json")
    assert refused.status_code == 400
    assert f"a staged rollout of v{version.version} is in flight" in str(refused.json())
    rollouts.abort(rollout.pk, actor=admin, reason="changed my mind")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ABORTED
    assert GuardrailPolicy.objects.filter(name="oops").count() == 0
    tenancy.put_tenant(Tenant(slug="another", name="another"), actor=admin)  # none in flight


def test_pause_holds_the_step_but_not_the_safety(admin: User, baseline: PolicySnapshot) -> None:
    rollout, version = staged(admin)
    rollouts.pause(rollout.pk, actor=admin)
    rollouts.tick(timezone.now() + timedelta(hours=1))
    rollout.refresh_from_db()
    assert (rollout.state, rollout.step) == (RolloutState.PAUSED, 0)
    rollouts.node_refused(rollout.canary_nodes[0], version.hash, "boom")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK


def test_only_platform_admins_run_rollouts(baseline: PolicySnapshot) -> None:
    user = User.objects.create_user("dev", password="pw-dev-123456", is_staff=True)
    with pytest.raises(rollouts.RolloutRefused, match="only platform admins"):
        rollouts.start(steps=[100], soak_s=0, actor=user)
    assert not Rollout.objects.exists()


def test_asc_import_stages_a_reviewed_change(
    admin: User, baseline: PolicySnapshot, tmp_path: Path
) -> None:
    document = export_yaml().replace("slug: acme\n", "slug: acme\n  allowed_regions:\n  - us\n")
    path = tmp_path / "config.yaml"
    path.write_text(document)
    out = io.StringIO()
    options = ["--staged", "10,100", "--soak", "2m", "--canary-nodes", "dp-3", "--user", "root"]
    call_command("asc_import", str(path), *options, stdout=out)
    assert "~ tenant acme (allowed_regions: [] -> ['us'])" in out.getvalue()
    assert "staged as rollout" in out.getvalue()
    rollout = Rollout.objects.get()
    assert (rollout.steps, rollout.soak_s, rollout.nodes) == ([10, 100], 120, ["dp-3"])
    assert rollout.decisions.get().by_name == "root"
    version = publish_snapshot("the import").snapshot
    rollouts.tick()
    rollout.refresh_from_db()
    assert (rollout.version, rollout.canary_nodes) == (version.version, ["dp-3"])

    with pytest.raises(CommandError, match="cannot stage the change: a staged rollout of v"):
        call_command("asc_import", str(path), "--staged", "100", stdout=io.StringIO())


def test_asc_import_stages_nothing_when_nothing_changes(
    baseline: PolicySnapshot, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(export_yaml())
    out = io.StringIO()
    call_command("asc_import", str(path), "--staged", "5,100", "--soak", "60", stdout=out)
    assert "nothing to stage" in out.getvalue()
    assert not Rollout.objects.exists()
    with pytest.raises(CommandError, match="not a duration"):
        call_command("asc_import", str(path), "--staged", "100", "--soak", "soon")


def test_the_admin_says_why_a_change_is_refused_while_one_is_in_flight(
    admin: User, baseline: PolicySnapshot
) -> None:
    _, version = staged(admin)
    web = Client()
    web.force_login(admin)
    url = "/admin/asc_catalog/provider/add/"
    response = web.post(url, {"name": "later", "kind": "mock", "enabled": "on"}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    page = response.content.decode()
    assert f"staged rollout of v{version.version} is in flight" in page
    assert not Provider.objects.filter(name="later").exists()


def test_a_budget_holds_across_the_versions_of_a_rollout(
    admin: User, baseline: PolicySnapshot
) -> None:
    """Canaries and the other nodes serve one tenant under two versions; both lease the same
    limit (its id is the same in both, and after a rollback) from the one ledger, so together
    they never spend past the amount in force."""
    tenant = Tenant.objects.get(slug="acme")
    budget = limits.put_limit(
        Limit(tenant=tenant, kind="budget", period="none", amount=Decimal("1")), actor=None
    )
    base = publish_snapshot("budget").snapshot
    rollout = rollouts.start(steps=[10, 100], soak_s=60, actor=admin, nodes=["dp-0"])
    budget.amount = Decimal("0.5")
    limits.put_limit(budget, actor=None)
    staged = publish_snapshot("the change").snapshot
    rollouts.tick()
    ids = [[x.id for x in load_snapshot(s).policy.limits] for s in (base, staged)]
    assert ids[0] == ids[1] == [str(budget.pk)]
    ask = control_pb2.LeaseAsk(limit_id=str(budget.pk), want=budget.units())
    canary = acquire("dp-0", [ask], 1_795_000_000.0)[0]
    other = acquire("dp-1", [ask], 1_795_000_000.0)[0]
    assert canary.granted + other.granted == budget.units(), "one ledger, the amount in force"
    rollouts.abort(rollout.pk, actor=admin)
    assert Limit.objects.get().pk == budget.pk, "restored in place: leases keep their limit"
    assert Limit.objects.get().amount == Decimal("1")
