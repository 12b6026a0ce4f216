"""Fixtures for tests of one gateway in front of a fake OpenAI upstream (``gpt``, model
"gpt-fake") and a fake Anthropic one (``claude``, model "claude-fake"), each failing the test
if it saw a request its real provider would refuse. The test module names the upstream keys
(``OPENAI_UPSTREAM``, ``ANTHROPIC_UPSTREAM``), its snapshot (``make_snapshot(openai_url,
anthropic_url)``) and the gateway key its ``client`` uses (``KEY``). Import the fixtures the
module uses from here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.providers.gateway import Gateway, running_gateway


@pytest.fixture
async def gpt(request: pytest.FixtureRequest) -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=request.module.OPENAI_UPSTREAM, model="gpt-fake") as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def claude(request: pytest.FixtureRequest) -> AsyncIterator[FakeAnthropic]:
    key = request.module.ANTHROPIC_UPSTREAM
    async with FakeAnthropic(api_key=key, model="claude-fake") as fake:
        yield fake
    assert fake.problems == []


@pytest.fixture
async def gateway(
    request: pytest.FixtureRequest, tmp_path: Path, gpt: FakeOpenAI, claude: FakeAnthropic
) -> AsyncIterator[Gateway]:
    snapshot = request.module.make_snapshot(gpt.base_url, claude.base_url)
    async with running_gateway(tmp_path / "dp", snapshot) as gw:
        yield gw


@pytest.fixture
async def anthropic_client(
    request: pytest.FixtureRequest, gateway: Gateway
) -> AsyncIterator[AsyncAnthropic]:
    sdk = gateway.anthropic(request.module.KEY)
    yield sdk
    await sdk.close()


@pytest.fixture
async def openai_client(
    request: pytest.FixtureRequest, gateway: Gateway
) -> AsyncIterator[AsyncOpenAI]:
    sdk = gateway.openai(request.module.KEY)
    yield sdk
    await sdk.close()


def three_routes(
    openai_url: str, anthropic_url: str, openai_key: str, anthropic_key: str
) -> snapshots.PolicyBuilder:
    """Tenant "t-acme" with routes "gpt" (r-gpt, the fake OpenAI), "claude" (r-claude, the
    fake Anthropic) and "mock" (r-mock, the built-in mock); keys are the test's to add."""
    return (
        snapshots.PolicyBuilder()
        .tenant("t-acme")
        .provider("p-openai", kind=snapshot_pb2.PROVIDER_KIND_OPENAI, base_url=openai_url)
        .provider("p-anthropic", kind=snapshot_pb2.PROVIDER_KIND_ANTHROPIC, base_url=anthropic_url)
        .provider("p-mock")
        .credential("c-openai", "t-acme", "p-openai", openai_key)
        .credential("c-anthropic", "t-acme", "p-anthropic", anthropic_key)
        .credential("c-mock", "t-acme", "p-mock")
        .model("m-gpt", "p-openai", "gpt-fake")
        .model("m-claude", "p-anthropic", "claude-fake")
        .model("m-mock", "p-mock", "mock-1")
        .route("r-gpt", "t-acme", "gpt", [("m-gpt", "c-openai")])
        .route("r-claude", "t-acme", "claude", [("m-claude", "c-anthropic")])
        .route("r-mock", "t-acme", "mock", [("m-mock", "c-mock")])
    )
