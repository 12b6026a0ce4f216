"""The detector registry: built-in detectors by category, plus policy-defined ones.

Built-in categories are stable strings (they appear in audit records and metrics): email,
phone, us_ssn, uk_nino, es_dni, fr_insee, payment_card, iban, ip_address, credential,
private_key, mrn. Policy-defined detectors are `custom:<name>` (regular expressions) and
`keyword:<name>` (case-insensitive whole words).

Gates are shared: the scanner evaluates each distinct gate function once per text, so the eight
digit-based detectors cost one digit search on text without digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from data_plane.guardrails import credentials, pii
from data_plane.guardrails.spans import (
    CREDENTIAL,
    EMAIL,
    ES_DNI,
    FR_INSEE,
    IBAN,
    IP_ADDRESS,
    MRN,
    PAYMENT_CARD,
    PHONE,
    PRIVATE_KEY,
    UK_NINO,
    US_SSN,
    Detector,
    Span,
)

_DIGIT = re.compile(r"\d")
_LETTER_DIGIT = re.compile(r"[A-Za-z]\d|\d[A-Za-z]")


def has_digit(text: str) -> bool:
    return _DIGIT.search(text) is not None


def _has_at(text: str) -> bool:
    return "@" in text


def _has_ip_separator(text: str) -> bool:
    return ("." in text or ":" in text) and _DIGIT.search(text) is not None


def _has_token_prefix(text: str) -> bool:
    return any(literal in text for literal in credentials.TOKEN_LITERALS)


def _has_fixed_prefix(text: str) -> bool:
    return "AIza" in text or any(literal in text for literal in credentials.FIXED_LITERALS)


def _has_assignment_label(text: str) -> bool:
    lower = text.lower()
    return any(literal in lower for literal in credentials.ASSIGNMENT_LITERALS)


def _has_pem_header(text: str) -> bool:
    return "-----BEGIN " in text


BUILTIN_DETECTORS: tuple[Detector, ...] = (
    Detector(EMAIL, pii.emails, reach=131, gate=_has_at),
    Detector(
        PHONE,
        pii.phones,
        reach=50,
        gate=has_digit,
        yields_to=frozenset({PAYMENT_CARD, IBAN, FR_INSEE}),
    ),
    Detector(US_SSN, pii.ssns, reach=48, gate=has_digit),
    Detector(UK_NINO, pii.ninos, reach=15, gate=has_digit),
    Detector(ES_DNI, pii.dnis, reach=13, gate=has_digit),
    Detector(FR_INSEE, pii.insees, reach=23, gate=has_digit),
    Detector(PAYMENT_CARD, pii.cards, reach=64, gate=has_digit),
    Detector(IBAN, pii.ibans, reach=66, gate=has_digit),
    Detector(IP_ADDRESS, pii.ips, reach=54, gate=_has_ip_separator),
    Detector(MRN, pii.mrns, reach=64, gate=has_digit),
    Detector(CREDENTIAL, credentials.fixed_ids, reach=41, gate=_has_fixed_prefix),
    Detector(CREDENTIAL, credentials.tokens, reach=72, gate=_has_token_prefix, open_ended=True),
    Detector(
        CREDENTIAL,
        credentials.assignments,
        reach=96,
        gate=_has_assignment_label,
        open_ended=True,
        tail=1,
    ),
    Detector(
        PRIVATE_KEY,
        credentials.private_keys,
        reach=80,
        gate=_has_pem_header,
        open_ended=True,
        tail=1,
    ),
)

BUILTIN_CATEGORIES: frozenset[str] = frozenset(d.category for d in BUILTIN_DETECTORS)


def regex_detector(
    name: str, patterns: Iterable[str], *, ignore_case: bool, max_len: int
) -> Detector:
    """`custom:<name>`: each pattern compiled once (raises re.error on a bad pattern).

    Matches longer than `max_len` are cut to it in the stream hold-back bound, so a custom
    pattern that can match more than `max_len` characters may be missed when it is split
    across stream chunks; non-streaming scans are unaffected.
    """
    category = f"custom:{name}"
    flags = re.IGNORECASE if ignore_case else 0
    compiled = tuple(re.compile(p, flags) for p in patterns)

    def find(text: str, pos: int = 0) -> list[Span]:
        out = [
            Span(m.start(), m.end(), category)
            for pattern in compiled
            for m in pattern.finditer(text, pos)
            if m.end() > m.start()
        ]
        out.sort()
        return out

    return Detector(category, find, reach=max_len + 2)


def keyword_detector(name: str, words: Iterable[str]) -> Detector:
    """`keyword:<name>`: case-insensitive whole-word match of any of `words`, one regex."""
    category = f"keyword:{name}"
    unique = sorted({w.strip().lower() for w in words if w.strip()}, key=lambda w: (-len(w), w))
    if not unique:
        raise ValueError(f"keyword list {name!r} is empty")
    pattern = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(w) for w in unique) + r")(?!\w)", re.IGNORECASE
    )

    def find(text: str, pos: int = 0) -> list[Span]:
        return [Span(m.start(), m.end(), category) for m in pattern.finditer(text, pos)]

    return Detector(category, find, reach=len(unique[0]) + 2)
