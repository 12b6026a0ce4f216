"""The data plane in process on a real port, in front of fake OpenAI-compatible providers
(real HTTP servers), driven by the official openai SDK: completions and streams pass through
with the decrypted credential, failures become OpenAI-format errors or fallbacks, never a
crash, and each request leaves one usage event."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from aiohttp import web
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from data_plane.app import create_app
from data_plane.settings import Settings
from data_plane.snapshots.store import SnapshotStore
from data_plane.usage.reporter import MemoryUsageClient
from shared.pb import control_pb2, snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.snapshots import ACME_KEY, ACME_UPSTREAM, OPENAI_COMPATIBLE
from tests.data_plane.waiting import eventually
from tests.fakes.openai_server import Behaviour, FakeOpenAI

PRIMARY_MODEL = "gpt-fake-primary-2025"
BACKUP_MODEL = "gpt-fake-backup-2025"
BACKUP_UPSTREAM = "sk-upstream-backup-55e1"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello to the gateway"},
]
PROMPT_TOKENS = 7  # words in MESSAGES, as the fake counts them
REPLY = Behaviour().reply
BACKUP_REPLY = "Hello from the backup provider."


def gateway_snapshot(primary: str, backup: str) -> snapshot_pb2.Snapshot:
    """Routes of tenant acme: "chat" (primary only), "chat-ha" (primary, then backup),
    "chat-slow" (primary with a short read timeout, then backup), "chat-badcred" (primary
    with a credential it refuses), "other" (not granted to the key)."""
    return (
        snapshots.PolicyBuilder()
        .tenant("t-acme", regions=["eu"])
        .provider("p-primary", kind=OPENAI_COMPATIBLE, base_url=primary)
        .provider("p-slow", kind=OPENAI_COMPATIBLE, base_url=primary, options={"timeout_s": "0.3"})
        .provider("p-backup", kind=OPENAI_COMPATIBLE, base_url=backup + "/")
        .credential("c-primary", "t-acme", "p-primary", ACME_UPSTREAM)
        .credential("c-slow", "t-acme", "p-slow", ACME_UPSTREAM)
        .credential("c-badcred", "t-acme", "p-primary", "sk-upstream-revoked")
        .credential("c-backup", "t-acme", "p-backup", BACKUP_UPSTREAM)
        .model("m-primary", "p-primary", PRIMARY_MODEL, region="eu")
        .model("m-slow", "p-slow", PRIMARY_MODEL, region="eu")
        .model("m-backup", "p-backup", BACKUP_MODEL, region="eu")
        .route("r-chat", "t-acme", "chat", [("m-primary", "c-primary")])
        .route(
            "r-ha",
            "t-acme",
            "chat-ha",
            [("m-primary", "c-primary", 0, 1), ("m-backup", "c-backup", 1, 1)],
        )
        .route(
            "r-slow",
            "t-acme",
            "chat-slow",
            [("m-slow", "c-slow", 0, 1), ("m-backup", "c-backup", 1, 1)],
        )
        .route("r-badcred", "t-acme", "chat-badcred", [("m-primary", "c-badcred")])
        .route("r-other", "t-acme", "other", [("m-primary", "c-primary")])
        .key("k-acme", "t-acme", ACME_KEY, ["r-chat", "r-ha", "r-slow", "r-badcred"])
        .snapshot(version=4)
    )


async def collect_text(stream: AsyncIterator[ChatCompletionChunk], into: list[str]) -> None:
    """Append each chunk's text to ``into`` (which keeps what came before an error)."""
    async for chunk in stream:
        if chunk.choices:
            into.append(chunk.choices[0].delta.content or "")


@dataclass
class Gateway:
    url: str
    usage: MemoryUsageClient

    def client(self, api_key: str = ACME_KEY) -> AsyncOpenAI:
        # No SDK retries: each test call is exactly one gateway request.
        return AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=30)

    async def events(self, count: int) -> list[control_pb2.UsageEvent]:
        await eventually(lambda: len(self.usage.events) >= count, f"{count} usage event(s)")
        assert len(self.usage.events) == count
        return self.usage.events


@asynccontextmanager
async def running_gateway(
    state_dir: Path, snapshot_file: bytes | snapshot_pb2.Snapshot | None
) -> AsyncIterator[Gateway]:
    """The data plane as ``create_app`` builds it, without a control plane, with the given
    snapshot (or raw file content) in place on disk before it starts."""
    settings = Settings(
        host="127.0.0.1",
        port=0,
        control_plane="",
        node_id="dp-test",
        region="eu",
        state_dir=state_dir,
        seal_key=snapshots.SEAL_KEY,
        usage_flush_interval_s=0.02,
    )
    if isinstance(snapshot_file, snapshot_pb2.Snapshot):
        SnapshotStore(settings.snapshot_path, snapshots.keyring()).persist(snapshot_file)
    elif snapshot_file is not None:
        settings.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        settings.snapshot_path.write_bytes(snapshot_file)
    usage = MemoryUsageClient()
    app = create_app(settings, usage_client=usage, rand=random.Random(0))
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield Gateway(f"http://{host}:{port}", usage)
    finally:
        await runner.cleanup()


@pytest.fixture
async def primary() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=ACME_UPSTREAM, model=PRIMARY_MODEL) as fake:
        yield fake


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    default = Behaviour(reply=BACKUP_REPLY)
    async with FakeOpenAI(api_key=BACKUP_UPSTREAM, model=BACKUP_MODEL, default=default) as fake:
        yield fake


@pytest.fixture
async def gateway(
    tmp_path: Path, primary: FakeOpenAI, backup: FakeOpenAI
) -> AsyncIterator[Gateway]:
    snapshot = gateway_snapshot(primary.base_url, backup.base_url)
    async with running_gateway(tmp_path / "dp", snapshot) as gw:
        yield gw
    assert not primary.problems, "the gateway sent the primary only well-formed requests"
    assert not backup.problems, "and the backup too"


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[AsyncOpenAI]:
    sdk = gateway.client()
    yield sdk
    await sdk.close()


async def test_a_completion_passes_through_with_the_decrypted_credential(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    completion = await client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        temperature=0.2,
        extra_headers={"x-request-id": "req-from-client-1"},
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "chat", "the client sees the route name, not the upstream model"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        PROMPT_TOKENS,
        len(REPLY.split()),
    )

    assert primary.problems == []
    (sent,) = primary.received
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["Authorization"] == f"Bearer {ACME_UPSTREAM}", "the opened credential"
    assert ACME_KEY not in str(sent.headers), "the client's virtual key never goes upstream"
    assert sent.body["model"] == PRIMARY_MODEL
    assert sent.body["messages"] == MESSAGES
    assert sent.body["temperature"] == 0.2, "what the gateway does not need travels untouched"
    assert "stream" not in sent.body, "forwarded as the client sent it"

    (event,) = await gateway.events(1)
    assert event.request_id != "req-from-client-1", "usage is keyed by the gateway's own id"
    assert len(event.request_id) == 24
    assert (event.tenant_id, event.key_id, event.route_id, event.route_name) == (
        "t-acme",
        "k-acme",
        "r-chat",
        "chat",
    )
    assert (event.model_id, event.provider_id, event.credential_id, event.region) == (
        "m-primary",
        "p-primary",
        "c-primary",
        "eu",
    )
    assert (event.prompt_tokens, event.completion_tokens) == (PROMPT_TOKENS, 5)
    assert (event.status_code, event.error_code, event.stream) == (200, "", False)
    assert event.cost_nano_usd > 0
    assert event.snapshot_version == 4
    assert not event.fallbacks


async def test_a_stream_with_usage(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"chat"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (PROMPT_TOKENS, 5)
    assert all(c.usage is None for c in chunks[:-1])

    assert primary.problems == []
    (sent,) = primary.received
    assert sent.headers["Authorization"] == f"Bearer {ACME_UPSTREAM}"
    assert (sent.body["model"], sent.body["stream"]) == (PRIMARY_MODEL, True)
    assert sent.body["stream_options"] == {"include_usage": True}

    (event,) = await gateway.events(1)
    assert (event.stream, event.status_code, event.error_code) == (True, 200, "")
    assert (event.prompt_tokens, event.completion_tokens) == (PROMPT_TOKENS, 5)


async def test_a_stream_without_usage_is_still_metered(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    assert all(c.choices for c in chunks), "so no usage-only chunk reaches it"
    (sent,) = primary.received
    assert sent.body["stream_options"] == {"include_usage": True}, "the gateway asks anyway"
    (event,) = await gateway.events(1)
    assert (event.prompt_tokens, event.completion_tokens) == (PROMPT_TOKENS, 5)


async def test_an_upstream_500_is_an_openai_format_5xx_and_the_gateway_keeps_serving(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_error"
    assert info.value.type == "upstream_error"

    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content == REPLY

    failed, served = await gateway.events(2)
    assert (failed.status_code, failed.error_code) == (502, "upstream_error")
    assert [(a.model_id, a.outcome) for a in failed.fallbacks] == [("m-primary", "status_500")]
    assert (served.status_code, served.error_code) == (200, "")


async def test_an_upstream_500_before_a_stream_starts_is_a_5xx_too(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=503))
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    assert (info.value.status_code, info.value.code) == (502, "upstream_error")
    (event,) = await gateway.events(1)
    assert [a.outcome for a in event.fallbacks] == ["status_503"]


async def test_a_429_falls_back_to_the_next_target(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=429, retry_after="2"))
    completion = await client.chat.completions.create(model="chat-ha", messages=MESSAGES)
    assert completion.choices[0].message.content == BACKUP_REPLY
    assert completion.model == "chat-ha"
    assert len(primary.received) == 1
    (sent,) = backup.received
    assert sent.headers["Authorization"] == f"Bearer {BACKUP_UPSTREAM}", "the backup's own key"
    assert sent.body["model"] == BACKUP_MODEL
    (event,) = await gateway.events(1)
    assert (event.model_id, event.credential_id, event.status_code) == ("m-backup", "c-backup", 200)
    assert [(a.model_id, a.provider_id, a.outcome) for a in event.fallbacks] == [
        ("m-primary", "p-primary", "status_429")
    ]


async def test_a_stream_falls_back_when_the_first_target_fails_before_any_chunk(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(drop_after_chunks=0))
    stream = await client.chat.completions.create(
        model="chat-ha",
        messages=MESSAGES,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == BACKUP_REPLY
    (event,) = await gateway.events(1)
    assert event.model_id == "m-backup"
    assert len(event.fallbacks) == 1


async def test_a_slow_target_times_out_and_falls_back(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(latency_s=60))  # far beyond p-slow's 0.3 s read timeout
    completion = await client.chat.completions.create(model="chat-slow", messages=MESSAGES)
    assert completion.choices[0].message.content == BACKUP_REPLY
    (event,) = await gateway.events(1)
    assert [(a.model_id, a.outcome) for a in event.fallbacks] == [("m-slow", "timeout")]
    assert event.model_id == "m-backup"


async def test_a_connection_cut_mid_stream_ends_the_stream_with_an_error(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(drop_after_chunks=3))  # role, "Hello", " from", then cut
    stream = await client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        await collect_text(stream, received)
    text = "".join(received)
    assert text == "Hello from", "what arrived before the cut was passed on"
    assert isinstance(info.value.body, dict)
    assert info.value.body.get("code") == "upstream_error"
    (event,) = await gateway.events(1)
    assert event.error_code == "stream_interrupted"

    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content == REPLY, "the gateway keeps serving"


async def test_an_upstream_stream_ending_without_done_is_not_passed_off_as_complete(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(end_after_chunks=3))  # role, "Hello", " from", then EOF
    stream = await client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        await collect_text(stream, received)
    assert "".join(received) == "Hello from"
    assert isinstance(info.value.body, dict)
    assert info.value.body.get("code") == "upstream_error"
    (event,) = await gateway.events(1)
    assert event.error_code == "stream_interrupted"


async def test_a_request_the_provider_rejects_is_a_400(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    primary.script.append(Behaviour(status=400, error_message="messages[1].content is too long"))
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="chat-ha", messages=MESSAGES)
    assert info.value.code == "upstream_rejected"
    assert "messages[1].content is too long" in info.value.message
    (event,) = await gateway.events(1)
    assert (event.status_code, event.error_code, event.model_id) == (
        400,
        "upstream_rejected",
        "m-primary",
    )


async def test_a_credential_the_provider_refuses_is_not_the_clients_auth_error(
    client: AsyncOpenAI, gateway: Gateway, primary: FakeOpenAI
) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="chat-badcred", messages=MESSAGES)
    assert (info.value.status_code, info.value.code) == (502, "upstream_error")
    (sent,) = primary.received
    assert sent.headers["Authorization"] == "Bearer sk-upstream-revoked"
    assert primary.problems == ["wrong Authorization header 'Bearer sk-upstream-revoked'"]
    primary.problems.clear()


@pytest.mark.parametrize(
    ("api_key", "model", "error", "status", "code"),
    [
        ("sk-asc-wrong", "chat", openai.AuthenticationError, 401, "invalid_api_key"),
        (ACME_KEY, "other", openai.PermissionDeniedError, 403, "model_not_allowed"),
        (ACME_KEY, "nope", openai.NotFoundError, 404, "model_not_found"),
    ],
)
async def test_refusals_are_openai_errors_and_nothing_goes_upstream(
    gateway: Gateway,
    primary: FakeOpenAI,
    api_key: str,
    model: str,
    error: type[openai.APIStatusError],
    status: int,
    code: str,
) -> None:
    sdk = gateway.client(api_key)
    try:
        with pytest.raises(error) as info:
            await sdk.chat.completions.create(model=model, messages=MESSAGES)
    finally:
        await sdk.close()
    assert (info.value.status_code, info.value.code) == (status, code)
    assert primary.received == []


async def test_a_malformed_request_is_a_400(client: AsyncOpenAI, primary: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="chat", messages=[])
    assert (info.value.code, info.value.param) == ("invalid_request", "messages")
    assert primary.received == []


async def test_models_lists_the_routes_the_key_may_use(client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == ["chat", "chat-badcred", "chat-ha", "chat-slow"]
    assert {m.owned_by for m in models.data} == {"acme"}


@pytest.mark.parametrize(
    "snapshot_file",
    [None, b"ASCSNAP1\nnot a checksum\ngarbage"],
    ids=["no snapshot", "corrupt snapshot"],
)
async def test_without_a_usable_snapshot_the_gateway_answers_503_not_ready(
    tmp_path: Path, snapshot_file: bytes | None
) -> None:
    async with running_gateway(tmp_path / "dp", snapshot_file) as gw:
        sdk = gw.client()
        try:
            with pytest.raises(openai.InternalServerError) as info:
                await sdk.chat.completions.create(model="chat", messages=MESSAGES)
        finally:
            await sdk.close()
    assert (info.value.status_code, info.value.code) == (503, "not_ready")


async def test_a_client_repeating_a_request_id_is_counted_every_time(
    client: AsyncOpenAI, gateway: Gateway
) -> None:
    """Usage and audit records are keyed by request id: a client choosing (or repeating) one
    would make the control plane drop its usage as duplicates."""
    for _ in range(2):
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_headers={"x-request-id": "same-id"}
        )
        assert raw.headers["x-request-id"] != "same-id"
    first, second = await gateway.events(2)
    assert first.request_id != second.request_id
