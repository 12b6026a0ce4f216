"""Request tags for attribution: the pure merge and validation (``data_plane.policy.tags``),
tag-scoped limits among a request's applicable limits, the compiled policy's tag rules (full
snapshots and deltas), and a real data plane in front of fake OpenAI and Anthropic upstreams
with the official SDKs: tags from ``metadata``, the ``x-asc-tags`` header, the key and its
project reach the usage event (and so the audit record); an unknown tag is a 400 in the
client's format, or dropped; where ``metadata`` goes upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from data_plane.errors import ApiError
from data_plane.limits import rules as limits
from data_plane.policy import tags
from data_plane.policy.compiled import compile_snapshot
from data_plane.policy.incremental import Changed, apply_changes
from data_plane.upstream.providers import anthropic_wire, gemini_wire, openai_wire
from shared import audit, consistency
from shared.pb import control_pb2, snapshot_pb2
from shared.policy_index import Change
from tests.data_plane import snapshots
from tests.data_plane.budgets import QUESTION, UPSTREAM_KEY, UPSTREAM_MODEL, GrantAll
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway

RULES: tags.Rules = {"feature": frozenset({"summarizer", "search"}), "team": frozenset()}
KEY = "sk-asc-acme-tagged"
PLAIN_KEY = "sk-asc-acme-plain"
CLAUDE_KEY = "sk-asc-acme-claude"


def merged(
    metadata: Any = None,
    header: str | None = None,
    *,
    fixed: dict[str, str] | None = None,
    drop: bool = False,
    rules: tags.Rules = RULES,
) -> tags.Tags | ApiError:
    return tags.request_tags(rules, drop, fixed or {}, metadata, header)


# The pure module


def test_tags_from_metadata_and_the_header_are_merged_and_sorted() -> None:
    found = merged({"team": "search-infra"}, "feature=summarizer")
    assert found == (("feature", "summarizer"), ("team", "search-infra"))


def test_the_header_takes_spaces_and_empty_items() -> None:
    assert merged(None, " feature = search , ,team=a ") == (("feature", "search"), ("team", "a"))


def test_the_keys_tags_win_over_the_clients() -> None:
    found = merged({"feature": "search"}, fixed={"feature": "summarizer"})
    assert found == (("feature", "summarizer"),)


def test_an_unknown_key_is_refused_by_name() -> None:
    refused = merged({"feature": "search", "colour": "blue"})
    assert isinstance(refused, ApiError)
    assert (refused.status, refused.code) == (400, tags.UNKNOWN_TAG)
    assert "colour=blue" in refused.message
    assert "key is not one this tenant accepts" in refused.message


def test_a_value_outside_the_listed_ones_is_refused() -> None:
    refused = merged(None, "feature=translator")
    assert isinstance(refused, ApiError)
    assert refused.code == tags.UNKNOWN_TAG
    assert "feature=translator" in refused.message
    assert "value is not one this tenant accepts" in refused.message


@pytest.mark.parametrize(
    "value", ["has space", "", "x" * 129, "a,b", "é", 5, None, {"nested": "x"}]
)
def test_a_malformed_value_is_never_accepted(value: Any) -> None:
    refused = merged({"team": value})
    assert isinstance(refused, ApiError)
    assert refused.code == tags.UNKNOWN_TAG
    assert merged({"team": value}, drop=True) == ()


def test_unknown_tags_are_dropped_when_the_tenant_says_so() -> None:
    found = merged({"colour": "blue", "feature": "search"}, "feature2=x", drop=True)
    assert found == (("feature", "search"),)


@pytest.mark.parametrize(
    ("metadata", "header", "param"),
    [
        (["feature"], None, "metadata"),
        ("feature=search", None, "metadata"),
        (None, "a", "x-asc-tags"),
    ],
)
def test_malformed_tags_are_a_400_even_when_dropping(
    metadata: Any, header: str | None, param: str
) -> None:
    for drop in (False, True):
        refused = merged(metadata, header, drop=drop)
        assert isinstance(refused, ApiError)
        assert (refused.status, refused.code, refused.param) == (400, tags.INVALID_TAGS, param)


def test_more_tags_than_the_cap_are_refused() -> None:
    rules = {f"k{i}": frozenset() for i in range(20)}
    many = {f"k{i}": "v" for i in range(17)}
    refused = merged(many, rules=rules, drop=True)
    assert isinstance(refused, ApiError)
    assert refused.code == tags.INVALID_TAGS
    assert "at most 16" in refused.message
    with_key = merged(
        {f"k{i}": "v" for i in range(10)}, fixed={f"k{i}": "w" for i in range(10, 17)}, rules=rules
    )
    assert isinstance(with_key, ApiError)
    assert "key's and project's" in with_key.message


def test_a_tenant_without_rules_takes_no_tags_from_metadata() -> None:
    assert merged({"anything": "goes", "at": "all"}, rules={}) == ()
    refused = merged(None, "feature=search", rules={})
    assert isinstance(refused, ApiError)
    assert refused.code == tags.UNKNOWN_TAG


def test_key_and_project_tags_the_rules_no_longer_allow_are_left_out() -> None:
    project = (("feature", "retired"), ("team", "search"))
    key = (("team", "ranking"),)
    assert tags.fixed_tags(RULES, project, key) == {"team": "ranking"}
    assert tags.fixed_tags({}, project, key) == {}


# Compiled policy, tag limits


def tagged_policy(base_url: str = "", anthropic_url: str = "") -> snapshots.PolicyBuilder:
    """Tenant acme (tag rules RULES, refusing unknown tags) with a "chat" route on an
    OpenAI upstream and a "claude" route on an Anthropic one; KEY is in project "search"
    (tags team=search, feature=search) and sets feature=summarizer itself. Tenant beta has a
    tag limit of the same tag value, which must never apply to acme."""
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .tenant("t-beta")
        .provider("p-openai", kind=snapshot_pb2.PROVIDER_KIND_OPENAI, base_url=base_url)
        .provider("p-claude", kind=snapshot_pb2.PROVIDER_KIND_ANTHROPIC, base_url=anthropic_url)
        .credential("c-acme", "t-acme", "p-openai", UPSTREAM_KEY)
        .credential("c-claude", "t-acme", "p-claude", UPSTREAM_KEY)
        .model("m-main", "p-openai", UPSTREAM_MODEL)
        .model("m-claude", "p-claude", UPSTREAM_MODEL)
        .route("r-chat", "t-acme", "chat", [("m-main", "c-acme")])
        .route("r-claude", "t-acme", "claude", [("m-claude", "c-claude")])
        .key("k-tagged", "t-acme", KEY, ["r-chat"])
        .key("k-plain", "t-acme", PLAIN_KEY, ["r-chat", "r-claude"])
    )
    policy = builder.policy
    acme = policy.tenants[0]
    for key, values in RULES.items():
        acme.allowed_tags.add(key=key, values=sorted(values))
    policy.projects.add(
        id="pr-search",
        tenant_id="t-acme",
        name="search",
        tags=[
            snapshot_pb2.Tag(key="feature", value="search"),
            snapshot_pb2.Tag(key="team", value="search"),
        ],
    )
    policy.keys[0].project_id = "pr-search"
    policy.keys[0].tags.add(key="feature", value="summarizer")
    policy.tenants[1].allowed_tags.add(key="feature")
    for tenant, limit_id in (("t-acme", "l-summarizer"), ("t-beta", "l-beta-summarizer")):
        policy.limits.add(
            id=limit_id,
            tenant_id=tenant,
            scope=snapshot_pb2.LIMIT_SCOPE_TAG,
            subject_id="feature=summarizer",
            kind=snapshot_pb2.LIMIT_KIND_REQUESTS,
            period=snapshot_pb2.LIMIT_PERIOD_MINUTE,
            time_zone="UTC",
            amount=1000,
            hard=True,
        )
    return builder


def test_the_compiled_policy_holds_tag_rules_and_key_and_project_tags() -> None:
    compiled = compile_snapshot(tagged_policy().snapshot(), snapshots.keyring())
    acme = compiled.tenants["t-acme"]
    assert dict(acme.tag_rules) == RULES
    assert not acme.drop_unknown_tags
    key = next(k for k in compiled.keys_by_hash.values() if k.id == "k-tagged")
    assert key.tags == (("feature", "summarizer"),)
    assert compiled.project_tags == {"pr-search": (("feature", "search"), ("team", "search"))}


def test_a_tag_limit_applies_to_requests_carrying_that_value_in_its_own_tenant_only() -> None:
    compiled = compile_snapshot(tagged_policy().snapshot(), snapshots.keyring())
    key = next(k for k in compiled.keys_by_hash.values() if k.id == "k-tagged")
    route = compiled.routes["r-chat"]
    ids = [lim.id for lim in limits.applicable(compiled, key, route, (("feature", "summarizer"),))]
    assert ids == ["l-summarizer"]
    assert limits.applicable(compiled, key, route, (("feature", "search"),)) == ()
    assert limits.applicable(compiled, key, route) == ()


def test_a_tag_limit_of_a_tag_its_tenant_does_not_allow_is_inconsistent() -> None:
    builder = tagged_policy()
    builder.policy.limits[0].subject_id = "feature=translator"
    builder.policy.limits[1].subject_id = "no-equals-sign"
    found = consistency.problems(builder.policy)
    assert "limit l-summarizer names tag feature=translator its tenant does not allow" in found
    assert "limit l-beta-summarizer names tag no-equals-sign its tenant does not allow" in found


def test_malformed_tag_rules_and_set_tags_are_inconsistent() -> None:
    builder = tagged_policy()
    builder.policy.tenants[0].allowed_tags.add(key="bad key")
    builder.policy.keys[0].tags.add(key="team", value="has space")
    builder.policy.projects[0].tags.add(key="", value="x")
    found = "; ".join(consistency.problems(builder.policy))
    assert "tenant t-acme allowed_tags: tag key 'bad key'" in found
    assert "key k-tagged tags: tag 'team' value 'has space'" in found
    assert "project pr-search tags: tag key ''" in found


def _delta(before: snapshot_pb2.Policy, after: snapshot_pb2.Policy, kind: str) -> Changed:
    old = {e.id: e for e in getattr(before, kind)}
    changes = []
    for entity in getattr(after, kind):
        was = old.get(entity.id)
        if was is None or was != entity:
            changes.append(
                Change(
                    kind,
                    entity.id,
                    _frame(kind, was) if was is not None else None,
                    _frame(kind, entity),
                )
            )
    return Changed.of(changes)


def _frame(kind: str, entity: Any) -> bytes:
    return snapshot_pb2.Policy(**{kind: [entity]}).SerializeToString(deterministic=True)


def test_a_delta_changes_tag_rules_project_tags_and_tag_limits() -> None:
    builder = tagged_policy()
    compiled = compile_snapshot(builder.snapshot(), snapshots.keyring())
    before = snapshot_pb2.Policy()
    before.CopyFrom(builder.policy)
    policy = builder.policy
    policy.tenants[0].drop_unknown_tags = True
    del policy.projects[0].tags[:]
    policy.limits[0].subject_id = "feature=search"
    for kind in ("tenants", "projects", "limits"):
        compiled = apply_changes(
            compiled,
            _delta(before, policy, kind),
            lambda kind, id: None,
            snapshots.keyring(),
            version=2,
            hash="h",
            created_unix_ms=0,
        )
    assert compiled.tenants["t-acme"].drop_unknown_tags
    assert "pr-search" not in compiled.project_tags
    key = next(k for k in compiled.keys_by_hash.values() if k.id == "k-tagged")
    route = compiled.routes["r-chat"]
    assert limits.applicable(compiled, key, route, (("feature", "summarizer"),)) == ()
    ids = [lim.id for lim in limits.applicable(compiled, key, route, (("feature", "search"),))]
    assert ids == ["l-summarizer"]


def test_tags_are_attribution_not_content_an_audit_purge_keeps_them() -> None:
    event = control_pb2.UsageEvent(
        request_id="r1", subject="alice", tags=[snapshot_pb2.Tag(key="feature", value="search")]
    )
    record = audit.seal(control_pb2.AuditRecord(chain_id="c", event=event), "", 1)
    assert audit.record_hash(record) == record.hash
    assert audit.content_intact(record)
    kept = audit.purged(record)
    assert list(kept.event.tags) == list(event.tags)
    assert kept.event.subject == ""
    assert audit.record_hash(kept) == record.hash  # the purged record still verifies


# Where an OpenAI request's metadata goes upstream


def test_metadata_goes_only_to_upstreams_of_openais_wire_format() -> None:
    body = {"model": "m", "messages": QUESTION, "metadata": {"feature": "search"}}
    assert openai_wire.openai_chat(body, "up", False)["metadata"] == {"feature": "search"}
    azure = openai_wire.openai_chat(body, None, False, strict="azure_openai")
    assert azure["metadata"] == {"feature": "search"}
    assert "metadata" not in openai_wire.mistral_chat(body, "up", False)
    assert "metadata" not in gemini_wire.request(body)
    assert "metadata" not in anthropic_wire.request(body, "up", False, 100)
    with_user = anthropic_wire.request({**body, "user": "u-1"}, "up", False, 100)
    assert with_user["metadata"] == {"user_id": "u-1"}  # Anthropic's own metadata: a user id


# Through a real data plane


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=UPSTREAM_KEY, model=UPSTREAM_MODEL) as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=UPSTREAM_KEY, model=UPSTREAM_MODEL) as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def gateway(
    tmp_path: Path, upstream: FakeOpenAI, claude: FakeAnthropic
) -> AsyncIterator[Gateway]:
    snapshot = tagged_policy(upstream.base_url, claude.base_url).snapshot()
    async with running_gateway(tmp_path, snapshot, lease_source=GrantAll()) as gw:
        yield gw


def tags_of(event: control_pb2.UsageEvent) -> dict[str, str]:
    return {t.key: t.value for t in event.tags}


async def test_metadata_tags_reach_the_usage_event_and_the_openai_upstream(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    async with gateway.openai(PLAIN_KEY) as client:
        await client.chat.completions.create(
            model="chat", messages=QUESTION, metadata={"feature": "search", "team": "ranking"}
        )
    (event,) = await gateway.events(1)
    assert tags_of(event) == {"feature": "search", "team": "ranking"}
    assert upstream.received[-1].body["metadata"] == {"feature": "search", "team": "ranking"}


async def test_the_keys_and_projects_tags_win_and_the_header_adds(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    async with gateway.openai(KEY, default_headers={"x-asc-tags": "feature=search"}) as client:
        await client.chat.completions.create(model="chat", messages=QUESTION)
    (event,) = await gateway.events(1)
    assert tags_of(event) == {"feature": "summarizer", "team": "search"}
    assert "x-asc-tags" not in {h.lower() for h in upstream.received[-1].headers}


async def test_an_unknown_tag_is_a_400_naming_it_and_nothing_goes_upstream(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    async with gateway.openai(PLAIN_KEY) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model="chat", messages=QUESTION, metadata={"colour": "blue"}
            )
    assert refused.value.code == "unknown_tag"
    assert "colour=blue" in refused.value.message
    assert upstream.received == []
    (event,) = await gateway.events(1)
    assert (event.status_code, event.error_code, list(event.tags)) == (400, "unknown_tag", [])


async def test_an_anthropic_client_gets_the_refusal_in_its_own_format_and_metadata_stays_home(
    gateway: Gateway, claude: FakeAnthropic, upstream: FakeOpenAI
) -> None:
    async with gateway.anthropic(PLAIN_KEY) as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(
                model="claude",
                max_tokens=20,
                messages=QUESTION,
                extra_headers={"x-asc-tags": "feature=translator"},
            )
        assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert "feature=translator" in refused.value.message
        # Anthropic's own metadata holds a user id, not tags; it is passed on as it is.
        await client.messages.create(
            model="claude",
            max_tokens=20,
            messages=QUESTION,
            metadata={"user_id": "u-1"},
            extra_headers={"x-asc-tags": "team=ranking"},
        )
        assert claude.received[-1].body["metadata"] == {"user_id": "u-1"}
    # An OpenAI request's metadata is not sent to an Anthropic upstream (it would refuse it).
    async with gateway.openai(PLAIN_KEY) as oa:
        await oa.chat.completions.create(
            model="claude", messages=QUESTION, max_tokens=20, metadata={"feature": "search"}
        )
    assert "metadata" not in claude.received[-1].body
    events = await gateway.events(3)
    assert [tags_of(e) for e in events] == [{}, {"team": "ranking"}, {"feature": "search"}]


async def test_responses_metadata_is_tagged_and_the_audit_record_carries_the_tags(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    async with gateway.openai(PLAIN_KEY) as client:
        await client.responses.create(
            model="chat", input="Hello?", metadata={"feature": "summarizer"}
        )
    (event,) = await gateway.events(1)
    assert tags_of(event) == {"feature": "summarizer"}
    assert upstream.received[-1].body["metadata"] == {"feature": "summarizer"}
    records = [r for b in gateway.usage.batches.values() for r in b.audit]
    (record,) = [r for r in records if r.event.request_id == event.request_id]
    assert tags_of(record.event) == {"feature": "summarizer"}
    assert audit.record_hash(record) == record.hash


async def test_a_dropping_tenant_serves_the_request_without_the_unknown_tags(
    tmp_path: Path, upstream: FakeOpenAI, claude: FakeAnthropic
) -> None:
    builder = tagged_policy(upstream.base_url, claude.base_url)
    builder.policy.tenants[0].drop_unknown_tags = True
    async with (
        running_gateway(tmp_path, builder.snapshot(), lease_source=GrantAll()) as gateway,
        gateway.openai(PLAIN_KEY, default_headers={"x-asc-tags": "colour=blue"}) as client,
    ):
        await client.chat.completions.create(
            model="chat", messages=QUESTION, metadata={"feature": "search", "size": "xl"}
        )
        (event,) = await gateway.events(1)
    assert (event.status_code, tags_of(event)) == (200, {"feature": "search"})


class Ledger:
    """A control plane holding one node's leases to ``amount`` units per limit (the rule of
    control_plane.limits.services.decide, with no other node)."""

    def __init__(self, amount: int) -> None:
        self.amount = amount
        self.granted: dict[str, int] = {}
        self.asked: list[str] = []

    async def acquire(self, request: control_pb2.LeaseRequest) -> control_pb2.LeaseResponse:
        grants = []
        for ask in request.asks:
            self.asked.append(ask.limit_id)
            had = self.granted.get(ask.limit_id, 0)
            now = max(ask.committed, min(had + max(ask.want, 0), self.amount))
            self.granted[ask.limit_id] = now
            grants.append(
                control_pb2.LeaseGrant(
                    limit_id=ask.limit_id,
                    window=ask.window,
                    granted=now,
                    remaining=self.amount - now,
                    ttl_ms=60_000,
                    nodes=1,
                )
            )
        return control_pb2.LeaseResponse(grants=grants)


async def test_a_tag_rate_limit_refuses_that_tag_value_only(
    tmp_path: Path, upstream: FakeOpenAI, claude: FakeAnthropic
) -> None:
    ledger = Ledger(amount=3)
    snapshot = tagged_policy(upstream.base_url, claude.base_url).snapshot()
    async with (
        running_gateway(tmp_path, snapshot, lease_source=ledger) as gateway,
        gateway.openai(PLAIN_KEY) as client,
    ):
        for _ in range(3):
            await client.chat.completions.create(
                model="chat", messages=QUESTION, metadata={"feature": "summarizer"}
            )
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(
                model="chat", messages=QUESTION, metadata={"feature": "summarizer"}
            )
        assert refused.value.code == "rate_limited"
        await client.chat.completions.create(
            model="chat", messages=QUESTION, metadata={"feature": "search"}
        )
        await client.chat.completions.create(model="chat", messages=QUESTION)
        events = await gateway.events(6)
    assert [e.status_code for e in events] == [200, 200, 200, 429, 200, 200]
    assert set(ledger.asked) == {"l-summarizer"}, "beta's limit on the same value never applies"


async def test_embeddings_take_tags_from_the_header(gateway: Gateway) -> None:
    async with gateway.openai(PLAIN_KEY, default_headers={"x-asc-tags": "team=ranking"}) as client:
        await client.embeddings.create(model="chat", input="Hello?")
        with pytest.raises(openai.BadRequestError) as refused:
            await client.embeddings.create(
                model="chat", input="Hello?", extra_headers={"x-asc-tags": "colour=blue"}
            )
    assert refused.value.code == "unknown_tag"
    first, _ = await gateway.events(2)
    assert tags_of(first) == {"team": "ranking"}
