"""Which adapter serves which snapshot ProviderKind. Adding a provider: write its module,
add one line to ``build_providers``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import aiohttp

from data_plane.providers.base import Provider
from data_plane.providers.mock import MockProvider
from data_plane.providers.openai import OpenAIProvider
from shared.pb import snapshot_pb2

Kind = snapshot_pb2.ProviderKind


def build_providers(session: aiohttp.ClientSession) -> Mapping[int, Provider]:
    openai_compatible = OpenAIProvider(session)
    return MappingProxyType(
        {
            Kind.PROVIDER_KIND_MOCK: MockProvider(),
            Kind.PROVIDER_KIND_OPENAI: openai_compatible,
            Kind.PROVIDER_KIND_OPENAI_COMPATIBLE: openai_compatible,
            Kind.PROVIDER_KIND_MISTRAL: openai_compatible,
        }
    )
