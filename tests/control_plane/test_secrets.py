"""Secrets stay secret: traffic through a real data plane with a known provider credential
and virtual key (answers, streams, refusals, upstream errors that echo the credential, a key
one character off), then every log line of both planes, the data plane's metrics, every
response (bodies and headers), the usage and audit records as stored and exported, the
exported configuration and the published snapshot are searched for both secrets: none holds
either."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from control_plane.audit.models import AuditRecord
from control_plane.catalog.models import Model, Provider
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import publish_snapshot
from control_plane.tenancy.models import Tenant
from control_plane.usage.models import UsageRecord
from control_plane.usage.services import ingest_batch
from data_plane.usage.reporter import MemoryUsageClient
from shared.pb import snapshot_pb2
from tests.control_plane import factories
from tests.data_plane.waiting import eventually
from tests.fakes.base import Behaviour
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import running_gateway

pytestmark = pytest.mark.django_db

PROVIDER_SECRET = "sk-upstream-known-4e1f9a7c2b"
UPSTREAM_MODEL = "gpt-upstream"
QUESTION = [{"role": "user", "content": "Hello?"}]


@dataclass
class Seen:
    """Everything the test collected, as text."""

    texts: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, value: Any) -> None:
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        self.texts.append((where, text))

    def holding(self, secret: str) -> list[str]:
        return [where for where, text in self.texts if secret in text]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def traffic(
    state_dir: Path, snapshot: snapshot_pb2.Snapshot, key: str, seen: Seen
) -> MemoryUsageClient:
    """Run a data plane on ``snapshot`` and send it every kind of request."""
    seal_key = os.environ["ASC_SEAL_KEY"]  # what the control plane sealed the credential with
    async with running_gateway(state_dir, snapshot, seal_key=seal_key) as gateway:
        url, usage = gateway.url, gateway.usage
        wrong = key[:-1] + ("x" if key[-1] != "x" else "y")
        calls: list[tuple[str, str, dict[str, Any]]] = [
            (key, "/v1/chat/completions", {"model": "chat", "messages": QUESTION}),
            (key, "/v1/chat/completions", {"model": "chat", "messages": QUESTION, "stream": True}),
            (key, "/v1/chat/completions", {"model": "chat", "messages": QUESTION}),  # echo 400
            (key, "/v1/chat/completions", {"model": "chat", "messages": QUESTION}),  # echo 401
            (key, "/v1/chat/completions", {"model": "chat", "messages": QUESTION}),  # echo 500
            (key, "/v1/chat/completions", {"model": "nope", "messages": QUESTION}),
            (key, "/v1/chat/completions", {"model": "chat", "max_tokens": 1e400}),
            (wrong, "/v1/chat/completions", {"model": "chat", "messages": QUESTION}),
            (key, "/v1/messages", {"model": "chat", "max_tokens": 5, "messages": QUESTION}),
            (wrong, "/v1/messages", {"model": "chat", "max_tokens": 5, "messages": QUESTION}),
            (key, "/v1/embeddings", {"model": "chat", "input": "hello"}),
        ]
        async with aiohttp.ClientSession() as session:
            for secret, path, body in calls:
                headers = {"Authorization": f"Bearer {secret}", "anthropic-version": "2023-06-01"}
                async with session.post(url + path, json=body, headers=headers) as response:
                    seen.add(f"response {path} {response.status}", await response.read())
                    seen.add(f"response headers {path}", dict(response.headers))
            async with session.get(f"{url}/v1/models", headers={"x-api-key": key}) as response:
                seen.add("models", await response.read())
            async with session.get(f"{url}/metrics") as response:
                seen.add("data-plane metrics", await response.read())
        recorded = sum(secret == key for secret, _, _ in calls)
        await eventually(lambda: len(usage.events) == recorded, "every usage event")
    return usage


def test_no_secret_in_any_log_metric_answer_record_or_export(
    loop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    api: APIClient,
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Incorrect API key provided: {PROVIDER_SECRET}. You can find your API key at..."
    upstream = FakeOpenAI(api_key=PROVIDER_SECRET, model=UPSTREAM_MODEL)
    upstream.script.extend(
        [
            Behaviour(),
            Behaviour(),
            Behaviour(status=400, error_message=echo),
            Behaviour(status=401, error_message=echo),
            Behaviour(status=500, error_message=echo),
        ]
    )
    loop.run_until_complete(upstream.__aenter__())
    try:
        tenant = factories.tenant("acme")
        provider = Provider.objects.create(
            name="upstream", kind="openai", base_url=upstream.base_url
        )
        model = Model.objects.create(
            provider=provider,
            provider_model=UPSTREAM_MODEL,
            region="eu",
            input_price=Decimal("1"),
            output_price=Decimal("2"),
        )
        credential = factories.credential(tenant, provider, secret=PROVIDER_SECRET)
        route = factories.route(tenant, model, credential)
        _, key = factories.key(tenant, [route])
        published = publish_snapshot("secrets test").snapshot
        snapshot = snapshot_pb2.Snapshot.FromString(bytes(published.payload))
        seen = Seen()
        usage = loop.run_until_complete(traffic(tmp_path / "dp", snapshot, key, seen))
        for state in sorted((tmp_path / "dp").rglob("*")):  # snapshot copy, spool
            if state.is_file():
                seen.add(f"data-plane state {state.name}", state.read_bytes())
    finally:
        loop.run_until_complete(upstream.__aexit__(None, None, None))
    assert upstream.problems == [], "the upstream got the credential it expects"
    assert len(usage.events) == 9
    for batch in usage.batches.values():
        seen.add("usage batch as sent", batch.SerializeToString())
        ingest_batch(batch)

    for model_class in (UsageRecord, AuditRecord):
        for row in model_class.objects.values():
            seen.add(f"{model_class.__name__} row", row)
    for snapshot_row in PolicySnapshot.objects.values():
        seen.add("published snapshot", snapshot_row)
    out = io.StringIO()
    call_command("asc_export", stdout=out)
    seen.add("asc_export", out.getvalue())
    seen.add("config export API", api.get("/api/v1/config/export/").content)
    tenant_id = Tenant.objects.get(slug="acme").id
    for export in (f"usage/export/?tenant={tenant_id}", f"audit/export/?tenant={tenant_id}"):
        response = api.get(f"/api/v1/{export}")
        body = getattr(response, "streaming_content", None)
        seen.add(export, b"".join(body) if body is not None else response.content)
    for listing in ("usage/", "audit/", "credentials/", "keys/", "snapshots/"):
        seen.add(f"API {listing}", api.get(f"/api/v1/{listing}").content)
    seen.add("logs", caplog.text)
    seen.add("log records", [(r.getMessage(), r.args, r.__dict__) for r in caplog.records])

    assert {where.split()[0] for where, _ in seen.texts} >= {"response", "logs", "UsageRecord"}
    assert seen.holding(PROVIDER_SECRET) == []
    assert seen.holding(key) == []
