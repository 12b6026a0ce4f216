"""The guardrail vocabulary both planes agree on: built-in detector categories and actions.

The control plane validates policies against these names before publishing; the data plane's
detectors report exactly these categories (a test keeps the two in step).
"""

from __future__ import annotations

CATEGORIES: frozenset[str] = frozenset(
    {
        "email",
        "phone",
        "us_ssn",
        "uk_nino",
        "es_dni",
        "fr_insee",
        "payment_card",
        "iban",
        "ip_address",
        "credential",
        "private_key",
        "mrn",
    }
)
ACTIONS: tuple[str, ...] = ("allow", "tag", "redact", "block")
