"""Upstream provider adapters. ``registry.build_providers`` maps each snapshot ProviderKind to
its adapter; adding a provider is one module plus one line there."""
