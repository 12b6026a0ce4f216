"""Secrets handling shared by both planes.

- Virtual keys are stored and shipped only as SHA-256 hashes (``hash_key``); the secret is
  shown once at creation.
- Provider credentials are encrypted with AES-256-GCM. The control plane encrypts them at rest
  with its own key (``ASC_CREDENTIAL_KEY``) and re-seals them for the data planes with the
  fleet's sealing key (``ASC_SEAL_KEY``), so a snapshot on disk or on the wire never holds a
  plain credential. The associated data binds a sealed value to the record it belongs to, so a
  ciphertext cannot be moved to another credential.

Sealed format: b"v1." + 8-byte key id + 12-byte nonce + ciphertext||tag. The key id lets a
reader pick the right key during rotation (several keys may be configured, comma separated;
the first one seals).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = b"v1."
_KEY_ID_LEN = 8
_NONCE_LEN = 12
VIRTUAL_KEY_PREFIX = "sk-asc-"


class CryptoError(ValueError):
    """A sealed value could not be opened (wrong key, tampered data or bad format)."""


def new_aes_key() -> str:
    """A fresh random 256-bit key, URL-safe base64 encoded, for the environment."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def new_virtual_key() -> str:
    return VIRTUAL_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_hint(secret: str) -> str:
    """What may be shown back of a secret: its first and last characters only."""
    if len(secret) <= 12:
        return "…" + secret[-2:]
    return secret[:7] + "…" + secret[-4:]


class Keyring:
    """One or more AES-256-GCM keys; the first seals, any of them opens."""

    def __init__(self, encoded_keys: str) -> None:
        keys = [k.strip() for k in encoded_keys.split(",") if k.strip()]
        if not keys:
            raise CryptoError("no key configured")
        self._keys: list[tuple[bytes, AESGCM]] = []
        for encoded in keys:
            raw = base64.urlsafe_b64decode(encoded.encode())
            if len(raw) != 32:
                raise CryptoError("keys must be 32 bytes, URL-safe base64 encoded")
            self._keys.append((hashlib.sha256(raw).digest()[:_KEY_ID_LEN], AESGCM(raw)))

    @classmethod
    def from_env(cls, name: str) -> Keyring:
        value = os.environ.get(name, "")
        if not value:
            raise CryptoError(f"environment variable {name} is not set")
        return cls(value)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        key_id, aead = self._keys[0]
        nonce = os.urandom(_NONCE_LEN)
        return _PREFIX + key_id + nonce + aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        if not sealed.startswith(_PREFIX):
            raise CryptoError("not a sealed value")
        body = sealed[len(_PREFIX) :]
        key_id, nonce, ciphertext = (
            body[:_KEY_ID_LEN],
            body[_KEY_ID_LEN : _KEY_ID_LEN + _NONCE_LEN],
            body[_KEY_ID_LEN + _NONCE_LEN :],
        )
        for candidate_id, aead in self._keys:
            if candidate_id == key_id:
                try:
                    return aead.decrypt(nonce, ciphertext, context)
                except Exception as exc:  # cryptography raises InvalidTag, a bare Exception
                    raise CryptoError("sealed value failed authentication") from exc
        raise CryptoError("sealed with an unknown key")


def credential_context(credential_id: str) -> bytes:
    """Associated data a provider credential is sealed with, on both planes: its own id, so a
    sealed value cannot be moved to another credential."""
    return credential_id.encode()
