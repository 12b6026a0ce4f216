"""The control plane's keyrings, from settings: one encrypts provider credentials at rest, the
other seals them for the data planes (see shared/crypto.py and docs/adr/0002)."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from shared.crypto import CryptoError, Keyring


@cache
def _keyring(encoded: str, name: str) -> Keyring:
    try:
        return Keyring(encoded)
    except (CryptoError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} is missing or invalid: {exc}") from exc


def credential_keyring() -> Keyring:
    return _keyring(settings.ASC_CREDENTIAL_KEY, "ASC_CREDENTIAL_KEY")


def seal_keyring() -> Keyring:
    return _keyring(settings.ASC_SEAL_KEY, "ASC_SEAL_KEY")
