"""Checkpoint signatures: Ed25519 with the key in ASC_AUDIT_SIGNING_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def private_key() -> Ed25519PrivateKey:
    try:
        raw = base64.urlsafe_b64decode(settings.ASC_AUDIT_SIGNING_KEY.encode())
        return Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"ASC_AUDIT_SIGNING_KEY is missing or invalid: {exc}") from exc


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_bytes(key)).hexdigest()[:16]


def sign(message: bytes) -> tuple[str, str]:
    """(key id, hex signature)."""
    key = private_key()
    return key_id(key.public_key()), key.sign(message).hex()


def verify(public: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    try:
        public.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
