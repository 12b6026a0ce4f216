"""Two tenants on one real upstream, under hard budgets served by leases from an in-memory
control plane, and a client that posts raw bodies: what the hostile-input and supervision
tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import orjson
import pytest

from shared.pb import control_pb2, snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway

UPSTREAM_KEY = "sk-upstream-shared"
UPSTREAM_MODEL = "upstream-model"
QUESTION = [{"role": "user", "content": "Hello?"}]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    """The one upstream of ``hard_budgets`` (a fixture: tests/data_plane/conftest.py)."""
    async with FakeOpenAI(api_key=UPSTREAM_KEY, model=UPSTREAM_MODEL) as fake:
        yield fake


class GrantAll:
    """A control plane with plenty of budget: grants every ask in full, for ``ttl_ms``."""

    def __init__(self, ttl_ms: int = 60_000) -> None:
        self.ttl_ms = ttl_ms
        self.calls = 0

    async def acquire(self, request: control_pb2.LeaseRequest) -> control_pb2.LeaseResponse:
        self.calls += 1
        return control_pb2.LeaseResponse(
            grants=[
                control_pb2.LeaseGrant(
                    limit_id=ask.limit_id,
                    window=ask.window,
                    granted=ask.committed + ask.want,
                    remaining=10**15,
                    ttl_ms=self.ttl_ms,
                    nodes=1,
                )
                for ask in request.asks
            ]
        )


def hard_budgets(
    base_url: str, budgeted: Iterable[str] = ("t-acme", "t-beta"), *, key_cap: int = 0
) -> snapshot_pb2.Snapshot:
    """Tenants acme and beta with a "chat" route each on the upstream at ``base_url``, the
    ``budgeted`` ones under a hard budget of $1,000 (for ever: a calendar period would load a
    time zone from disk on the loop); acme's key capped at ``key_cap`` completion tokens."""
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .tenant("t-beta")
        .provider("p-main", kind=snapshot_pb2.PROVIDER_KIND_OPENAI, base_url=base_url)
        .credential("c-acme", "t-acme", "p-main", UPSTREAM_KEY)
        .credential("c-beta", "t-beta", "p-main", UPSTREAM_KEY)
        .model("m-main", "p-main", UPSTREAM_MODEL)
        .route("r-acme-chat", "t-acme", "chat", [("m-main", "c-acme")])
        .route("r-beta-chat", "t-beta", "chat", [("m-main", "c-beta")])
        .key("k-acme", "t-acme", snapshots.ACME_KEY, ["r-acme-chat"])
        .key("k-beta", "t-beta", snapshots.BETA_KEY, ["r-beta-chat"])
    )
    for tenant in budgeted:
        builder.policy.limits.add(
            id=f"l-{tenant}",
            tenant_id=tenant,
            scope=snapshot_pb2.LIMIT_SCOPE_TENANT,
            subject_id=tenant,
            kind=snapshot_pb2.LIMIT_KIND_BUDGET,
            period=snapshot_pb2.LIMIT_PERIOD_NONE,
            time_zone="UTC",
            amount=1_000 * 10**9,
            hard=True,
        )
    builder.policy.keys[0].max_tokens = key_cap
    return builder.snapshot()


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": QUESTION, **extra}


async def post(
    gateway: Gateway, key: str, body: dict[str, Any] | bytes, path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, Any]]:
    status, answer, _ = await exchange(gateway, key, body, path)
    return status, answer


async def exchange(
    gateway: Gateway, key: str, body: dict[str, Any] | bytes, path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, Any], str]:
    """Status, body and the gateway's request id of one request."""
    headers = {
        "Authorization": f"Bearer {key}",
        "anthropic-version": "2023-06-01",
        "Content-Type": "application/json",
    }
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}{path}", data=data, headers=headers) as response,
    ):
        return response.status, await response.json(), response.headers["x-request-id"]
