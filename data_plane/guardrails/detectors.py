"""The detector registry: built-in detectors by category, plus policy-defined ones.

Built-in categories are stable strings (they appear in audit records and metrics): email,
phone, us_ssn, uk_nino, es_dni, fr_insee, payment_card, iban, ip_address, credential,
private_key, mrn. Policy-defined detectors are `custom:<name>` (regular expressions) and
`keyword:<name>` (case-insensitive whole words).

Every detector is a reference pass (`find`) and the chains that find the same from the
automaton's candidates. A policy-defined pattern joins the automaton through `transpile`; one
that cannot (a back-reference, a pattern that can match the empty string, ...) keeps a pass of
its own, for that pattern only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from data_plane.guardrails import accounts, automaton, credentials, pii
from data_plane.guardrails.chains import RegexChain, whole_match
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
    Trigger,
)
from data_plane.guardrails.transpile import transpile

BUILTIN_DETECTORS: tuple[Detector, ...] = (
    Detector(EMAIL, pii.emails, reach=131, chains=(pii.EMAIL_CHAIN,)),
    Detector(
        PHONE,
        pii.phones,
        reach=50,
        yields_to=frozenset({PAYMENT_CARD, IBAN, FR_INSEE}),
        chains=(pii.PHONE_CHAIN,),
    ),
    Detector(US_SSN, pii.ssns, reach=48, chains=pii.SSN_CHAINS),
    Detector(UK_NINO, pii.ninos, reach=15, chains=(pii.NINO_CHAIN,)),
    Detector(ES_DNI, pii.dnis, reach=13, chains=(pii.DNI_CHAIN,)),
    Detector(FR_INSEE, pii.insees, reach=23, chains=(pii.INSEE_CHAIN,)),
    Detector(PAYMENT_CARD, accounts.cards, reach=64, chains=(accounts.CARD_CHAIN,)),
    Detector(IBAN, accounts.ibans, reach=66, chains=(accounts.IBAN_CHAIN,)),
    Detector(IP_ADDRESS, pii.ips, reach=54, chains=pii.IP_CHAINS),
    Detector(MRN, pii.mrns, reach=64, chains=(pii.MRN_CHAIN,)),
    Detector(CREDENTIAL, credentials.fixed_ids, reach=41, chains=(credentials.FIXED_CHAIN,)),
    Detector(
        CREDENTIAL,
        credentials.tokens,
        reach=72,
        open_ended=True,
        chains=(credentials.TOKEN_CHAIN,),
    ),
    Detector(
        CREDENTIAL,
        credentials.assignments,
        reach=96,
        open_ended=True,
        tail=1,
        chains=(credentials.ASSIGNMENT_CHAIN,),
    ),
    Detector(
        PRIVATE_KEY,
        credentials.private_keys,
        reach=80,
        open_ended=True,
        tail=1,
        chains=(credentials.PEM_CHAIN,),
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
    reach = max_len + 2

    def find(text: str, pos: int = 0) -> list[Span]:
        out = [
            Span(m.start(), m.end(), category)
            for pattern in compiled
            for m in pattern.finditer(text, pos)
            if m.end() > m.start()
        ]
        out.sort()
        return out

    chains = tuple(c for c in (_chain(r, category, reach) for r in compiled) if c is not None)
    taken = {id(c.regex) for c in chains}
    fallback = tuple(r for r in compiled if id(r) not in taken)
    return Detector(category, find, reach=reach, chains=chains, fallback=fallback)


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

    reach = len(unique[0]) + 2
    chain = _chain(pattern, category, reach)
    if chain is None:
        return Detector(category, find, reach=reach, fallback=(pattern,))
    return Detector(category, find, reach=reach, chains=(chain,))


def _chain(regex: re.Pattern[str], category: str, reach: int) -> RegexChain | None:
    """The pattern's chain, its trigger the pattern itself widened for the automaton; None
    when the automaton cannot take it. A match longer than `reach` may be cut in a stream."""
    try:
        trigger = Trigger(transpile(regex.pattern, regex.flags), 0)
    except (ValueError, RecursionError):  # Untranslatable, or a pattern too deeply nested
        return None
    if not automaton.accepts(trigger):
        return None
    return RegexChain(regex, whole_match(category), (trigger,), need=reach)
