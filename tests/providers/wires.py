"""One fake provider per adapter, and the snapshot that routes "chat" to it: what the
contract tests are parametrized over."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Behaviour, FakeServer
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-asc-acme-contract"
PRICES = (2_000_000, 8_000_000, 500_000)  # micro-USD per million tokens: input, output, cached

ADAPTERS = ("openai", "azure_openai", "mistral", "openai_compatible", "anthropic", "gemini")
WITH_EMBEDDINGS = ("openai", "azure_openai", "mistral", "openai_compatible", "gemini")
KINDS = {
    "openai": snapshot_pb2.PROVIDER_KIND_OPENAI,
    "azure_openai": snapshot_pb2.PROVIDER_KIND_AZURE_OPENAI,
    "mistral": snapshot_pb2.PROVIDER_KIND_MISTRAL,
    "openai_compatible": snapshot_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE,
    "anthropic": snapshot_pb2.PROVIDER_KIND_ANTHROPIC,
    "gemini": snapshot_pb2.PROVIDER_KIND_GEMINI,
}


@dataclass
class Wire:
    """A running fake for one adapter: the provider settings that reach it."""

    name: str
    fake: FakeServer
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> snapshot_pb2.ProviderKind:
        return KINDS[self.name]

    @property
    def upstream_key(self) -> str:
        return self.fake.api_key

    @property
    def model(self) -> str:
        return self.fake.model


def fake_for(name: str, default: Behaviour | None = None, suffix: str = "") -> FakeServer:
    key, model = f"sk-upstream-{name}{suffix}", f"{name}-model{suffix}"
    if name == "anthropic":
        return FakeAnthropic(api_key=key, model=model, default=default)
    if name == "gemini":
        return FakeGemini(api_key=key, model=model, default=default)
    flavour = {"azure_openai": "azure", "mistral": "mistral"}.get(name, "openai")
    return FakeOpenAI(api_key=key, model=model, default=default, flavour=flavour)  # type: ignore[arg-type]


@asynccontextmanager
async def start_wire(
    name: str, default: Behaviour | None = None, suffix: str = ""
) -> AsyncIterator[Wire]:
    async with fake_for(name, default, suffix) as fake:
        options = {"api_version": "2024-10-21"} if name == "azure_openai" else {}
        yield Wire(name, fake, options)


def add_wire(
    builder: snapshots.PolicyBuilder,
    wire: Wire,
    tenant: str,
    *,
    suffix: str = "",
    region: str = "eu",
    options: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Provider, credential and model for ``wire``; returns (model id, credential id)."""
    provider, credential, model = (
        f"p-{wire.name}{suffix}",
        f"c-{wire.name}{suffix}",
        f"m-{wire.name}{suffix}",
    )
    builder.provider(
        provider,
        kind=wire.kind,
        base_url=wire.fake.base_url,
        options={**wire.options, **(options or {})},
    )
    builder.credential(credential, tenant, provider, wire.upstream_key)
    builder.model(model, provider, wire.model, region=region, prices=PRICES)
    return model, credential


def single_route(wire: Wire) -> snapshot_pb2.Snapshot:
    """Tenant acme, whose key may use route "chat" (and "embed"), served by ``wire``."""
    builder = snapshots.PolicyBuilder().tenant("t-acme")
    target = add_wire(builder, wire, "t-acme")
    builder.route("r-chat", "t-acme", "chat", [target])
    builder.route("r-embed", "t-acme", "embed", [target])
    builder.key("k-acme", "t-acme", KEY, ["r-chat", "r-embed"])
    return builder.snapshot(version=3)
