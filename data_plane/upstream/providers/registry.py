"""Which adapter serves which snapshot ProviderKind. Adding a provider: write its module,
add one line to ``build_providers``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from data_plane.upstream.client import UpstreamClient
from data_plane.upstream.providers.anthropic import AnthropicProvider
from data_plane.upstream.providers.base import Provider
from data_plane.upstream.providers.gemini import GeminiProvider
from data_plane.upstream.providers.mock import MockProvider
from data_plane.upstream.providers.openai import (
    AzureOpenAIProvider,
    MistralProvider,
    OpenAIProvider,
)
from shared.pb import snapshot_pb2

Kind = snapshot_pb2.ProviderKind


def build_providers(client: UpstreamClient) -> Mapping[int, Provider]:
    return MappingProxyType(
        {
            Kind.PROVIDER_KIND_MOCK: MockProvider(),
            Kind.PROVIDER_KIND_OPENAI: OpenAIProvider(client, name="openai", strict=True),
            Kind.PROVIDER_KIND_OPENAI_COMPATIBLE: OpenAIProvider(client),
            Kind.PROVIDER_KIND_AZURE_OPENAI: AzureOpenAIProvider(client),
            Kind.PROVIDER_KIND_MISTRAL: MistralProvider(client),
            Kind.PROVIDER_KIND_ANTHROPIC: AnthropicProvider(client),
            Kind.PROVIDER_KIND_GEMINI: GeminiProvider(client),
        }
    )
