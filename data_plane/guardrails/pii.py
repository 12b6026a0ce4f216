"""Personal data detectors: e-mail, phone, national ids, IP, MRN (accounts: cards, IBAN).

Each function takes the text (and optionally the range [pos, end) to scan) and returns
validated spans: a regex hit that fails its checksum or validity rule (Luhn, mod-97, SSA
rules, ...) is not a finding. Patterns are module constants compiled at import, bounded so
that every detector has a finite reach (see `spans.Detector`).

Each detector is also one or more chains (see `chains`): the same pattern and rule, tried only
where its triggers say a match may start. Triggers are written for the automaton's shadow of
the text (see `automaton`); a trigger that starts with a character class before the candidate
(`[^\\w.+-]`, ...) mirrors the pattern's look-behind, and takes every byte a character the
look-behind lets through can become (a non-ASCII one becomes 0x80, outside every ASCII class).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from data_plane.guardrails import checks
from data_plane.guardrails.chains import END, Convert, RegexChain
from data_plane.guardrails.spans import (
    EMAIL,
    ES_DNI,
    FR_INSEE,
    IP_ADDRESS,
    MRN,
    PHONE,
    UK_NINO,
    US_SSN,
    Decision,
    Span,
    Trigger,
)

# --- e-mail --------------------------------------------------------------------------------
# Local part at most 64 characters, domain at most 64 (longer domains are cut at a dot, which
# still redacts the part that identifies the person: a cut domain needs no top-level domain of
# its own). Matching is anchored on each "@".
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?(?![A-Za-z0-9-])"
)
_EMAIL_TLD = re.compile(r"\.[A-Za-z]{2,24}\Z")
_LOCAL_CHARS = string.ascii_letters + string.digits + "._%+-"


def emails(text: str, pos: int = 0, end: int = END) -> list[Span]:
    """Each "@" in turn: the address around it, its local part starting at or after the end of
    the previous address (the leftmost match of `_EMAIL` from there, as a search would find)."""
    out: list[Span] = []
    lo = pos
    at = text.find("@", pos, end)
    while at != -1:
        found, lo = _email_at(text, at, lo, end)
        out.extend(found)
        at = text.find("@", max(at + 1, lo), end)
    return out


def _email_at(text: str, at: int, lo: int, end: int) -> tuple[list[Span], int]:
    """The address whose "@" is at `at` ([] when there is none, or it is not valid) and where
    the next address may start (the end of this match, or `lo` when there is no match)."""
    before = text[max(lo, at - 64, 0) : at]
    local = len(before) - len(before.rstrip(_LOCAL_CHARS))  # the local part's length
    if not local:
        return [], lo
    m = _EMAIL.match(text, at - local, end)
    if m is None:
        return [], lo
    start, stop = m.span()
    domain = text[at + 1 : stop]
    while text[start] == ".":
        start += 1
    cut = text.startswith(".", stop) and stop + 1 < len(text) and text[stop + 1].isalnum()
    if (
        text[start] != "@"
        and (cut or _EMAIL_TLD.search(domain))
        and ".." not in domain
        and "-." not in domain
        and ".-" not in domain
    ):
        return [Span(start, stop, EMAIL)], stop
    return [], stop


def _local_end(text: str) -> int:
    """How many of the last characters of `text` an address could start in whose "@" is at
    its very end or still to come: its local part, if it has begun."""
    tail = text[-65:]
    at = tail.endswith("@")
    if at:
        tail = tail[:-1]
    return min(len(tail) - len(tail.rstrip(_LOCAL_CHARS)), 64) + at


class _EmailChain:
    """Candidates are the "@" of `local@x`; the address starts at most 64 characters before it
    and is decided once the longest domain and the character after it are visible."""

    triggers = (Trigger(r"[A-Za-z0-9._%+-]@[A-Za-z0-9]", 2),)
    lead = 64
    need = 68
    held = staticmethod(_local_end)

    def decide(self, text: str, x: int, cursor: int, final: bool) -> Decision | None:
        if not final and x + self.need > len(text):
            return None
        found, resume = _email_at(text, x, cursor, END)
        return found, resume, True


EMAIL_CHAIN = _EmailChain()


# --- phone numbers ---------------------------------------------------------------------------
# International (+CC ...), NANP with separators, and trunk-0 national formats with separators.
# A run of digits with no separator and no "+" is never a phone number: that is an order id.
# Nor is the tail of a longer grouped number (a card, an IBAN, an INSEE number, valid or not):
# a NANP or national number does not start right after a digit and a separator.
_PHONE = re.compile(
    r"(?<![\w.+-])(?:"
    r"(?P<intl>\+[1-9]\d{0,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6})"
    r"|(?<!\d[ .-])(?P<nanp>(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4})"
    r"|(?<!\d[ .-])(?P<national>0[1-9]\d{0,3}(?:[ .-]\d{2,6}){1,4})"
    r")(?![\w+-]|[.-]\d)"
)
# Dates and SSN-shaped numbers are not national phone numbers.
_NOT_PHONE_SHAPE = re.compile(
    r"\d{2}([-./ ])\d{2}\1\d{4}|\d{4}([-./ ])\d{2}\2\d{2}|\d{3}([- ])\d{2}\3\d{4}"
)


def _phone(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    raw = m.group()
    n = sum(map(str.isdigit, raw))
    if m.group("intl") is not None:
        ok = 8 <= n <= 15
    elif m.group("nanp") is not None:
        digits = "".join(ch for ch in raw if ch.isdigit())
        ok = digits[0] >= "2" and digits[3] >= "2"
    else:
        ok = 9 <= n <= 12 and _NOT_PHONE_SHAPE.fullmatch(raw) is None
    return ([Span(m.start(), m.end(), PHONE)] if ok else []), m.end()


# Before a number: no word character, "." "+" or "-", nor (for NANP and national numbers) a
# digit and a separator.
_NOT_PHONE_BEFORE = r"[^\w.+-]"
_NOT_GROUP_BEFORE = r"(?:[^\w.+ -]|\D )"
PHONE_CHAIN = RegexChain(
    _PHONE,
    _phone,
    (
        Trigger(_NOT_PHONE_BEFORE + r"\+[1-9]", 2),
        Trigger(_NOT_GROUP_BEFORE + r"\(\d{3}\)\d{3}[ .-]\d{4}", 13),
        Trigger(_NOT_GROUP_BEFORE + r"\(\d{3}\)[ .-]\d{3}[ .-]\d{4}", 14),
        Trigger(_NOT_GROUP_BEFORE + r"\d{3}[ .-]\d{3}[ .-]\d{4}", 12),
        *(
            Trigger(_NOT_GROUP_BEFORE + "0[1-9]" + r"\d" * k + r"[ .-]\d\d", 5 + k)
            for k in range(4)
        ),
    ),
    need=50,
)


def phones(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return PHONE_CHAIN.find(text, pos, end)


# --- national identifiers ------------------------------------------------------------------
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|\.\d)")
_SSN_LABELLED = re.compile(
    r"(?i:\b(?:ssn|social[ \t]+security(?:[ \t]+(?:no\.?|number|#))?)[ \t]*[:#]?[ \t]*)"
    r"(\d{3})()(\d{2})(\d{4})(?![\w-])"
)


def _ssn(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    ok = checks.us_ssn_ok(m.group(1), m.group(3), m.group(4))
    return ([Span(m.start(1), m.end(4), US_SSN)] if ok else []), m.end()


# The labelled form allows any run of blanks between label and number: `need` covers about 60.
SSN_CHAINS = (
    RegexChain(_SSN, _ssn, (Trigger(r"[^\w-]\d{3}[- ]\d{2}[- ]\d{4}", 11),), need=48),
    RegexChain(
        _SSN_LABELLED,
        _ssn,
        (Trigger(r"\Wssn", 3, caseless=True), Trigger(r"\Wsocial[ \t]", 7, caseless=True)),
        need=96,
    ),
)


def ssns(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return sorted(span for chain in SSN_CHAINS for span in chain.find(text, pos, end))


_NINO = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def _nino(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    return ([Span(m.start(), m.end(), UK_NINO)] if checks.uk_nino_ok(m.group(1)) else []), m.end()


def _spaced(*parts: tuple[str, int]) -> list[tuple[str, int]]:
    """Every way of joining fixed-width `parts` (pattern, width) with or without one space
    between two of them, as (pattern, width)."""
    out = [parts[0]]
    for pattern, width in parts[1:]:
        out = [(p + s + pattern, w + len(s) + width) for p, w in out for s in ("", " ")]
    return out


# Anchored on the digits and the final letter; the number starts two or three characters
# before them (two letters and maybe a space).
NINO_CHAIN = RegexChain(
    _NINO,
    _nino,
    tuple(
        Trigger(pattern, width + 3, caseless=True, spread=2)
        for pattern, width in _spaced((r"\d\d", 2), (r"\d\d", 2), (r"\d\d", 2), ("[a-d]", 1))
    ),
    need=15,
)


def ninos(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return NINO_CHAIN.find(text, pos, end)


_DNI = re.compile(r"(?<![A-Za-z0-9-])(?:\d{8}|[XYZxyz]-?\d{7})-?[A-Za-z](?![A-Za-z0-9])")


def _dni(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    return ([Span(m.start(), m.end(), ES_DNI)] if checks.es_dni_ok(m.group()) else []), m.end()


DNI_CHAIN = RegexChain(
    _DNI,
    _dni,
    (
        Trigger(r"\d{8}[A-Za-z]", 9),
        Trigger(r"\d{8}-[A-Za-z]", 10),
        Trigger(r"[XYZxyz]\d{7}", 8),
        Trigger(r"[XYZxyz]-\d{7}", 9),
    ),
    need=13,
)


def dnis(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return DNI_CHAIN.find(text, pos, end)


_INSEE = re.compile(
    r"(?<![\w.-])[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2}"
    r"(?![\w-])"
)


def _insee(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    return ([Span(m.start(), m.end(), FR_INSEE)] if checks.fr_insee_ok(m.group()) else []), m.end()


INSEE_CHAIN = RegexChain(
    _INSEE,
    _insee,
    tuple(
        Trigger(r"[^\w.-]" + pattern, width)
        for pattern, width in _spaced(("[12]", 1), (r"\d\d", 2), (r"\d\d", 2), (r"\d[\dABab]", 2))
    ),
    need=23,
)


def insees(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return INSEE_CHAIN.find(text, pos, end)


# --- IP addresses --------------------------------------------------------------------------
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\w)"
)


def _ip(check: Callable[[str], bool]) -> Convert:
    def convert(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
        return ([Span(m.start(), m.end(), IP_ADDRESS)] if check(m.group()) else []), m.end()

    return convert


IP_CHAINS = (
    RegexChain(
        _IPV4,
        _ip(checks.ipv4_ok),
        tuple(
            Trigger(rf"[^\w.]\d{{{a}}}\.\d{{{b}}}\.", a + b + 2)
            for a in (1, 2, 3)
            for b in (1, 2, 3)
        ),
        need=54,
    ),
    # Anchored on the first colon and what follows it (a hex digit or a colon); the address
    # starts zero to four hex digits before it.
    RegexChain(_IPV6, _ip(checks.ipv6_ok), (Trigger(":[0-9A-Fa-f:]", 6, spread=5),), need=54),
)


def ips(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return sorted(span for chain in IP_CHAINS for span in chain.find(text, pos, end))


# --- medical record numbers ----------------------------------------------------------------
# Only in context: "MRN: 1234567", "medical record number 00123456", "patient ID A123456".
# The span is the number; the label stays readable.
_MRN = re.compile(
    r"(?<![A-Za-z0-9])(?:mrn|medical[ \t]+record(?:[ \t]+(?:number|no\.?|num|#))?"
    r"|patient[ \t]+(?:id|number|no\.?))[ \t]*(?:is[ \t]+)?[:#]?[ \t]*"
    r"([A-Za-z]{0,3}-?\d{4,12})(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def _mrn(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    return [Span(m.start(1), m.end(1), MRN)], m.end()


# Any run of blanks may follow the label: `need` covers about 50.
MRN_CHAIN = RegexChain(
    _MRN,
    _mrn,
    tuple(
        Trigger(r"[^A-Za-z1-9]" + label, width, caseless=True)
        for label, width in (("mrn", 3), (r"medical[ \t]", 8), (r"patient[ \t]", 8))
    ),
    need=96,
)


def mrns(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return MRN_CHAIN.find(text, pos, end)
