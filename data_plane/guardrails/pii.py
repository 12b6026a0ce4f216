"""Personal data detectors: e-mail, phone, national ids, payment cards, IBAN, IP, MRN.

Each function takes the text (and optionally the range [pos, end) to scan) and returns
validated spans: a regex hit that fails its checksum or validity rule (Luhn, mod-97, SSA
rules, ...) is not a finding. Patterns are module constants compiled at import, bounded so
that every detector has a finite reach (see `spans.Detector`).
"""

from __future__ import annotations

import re
import sys

from data_plane.guardrails import checks
from data_plane.guardrails.spans import (
    EMAIL,
    ES_DNI,
    FR_INSEE,
    IBAN,
    IP_ADDRESS,
    MRN,
    PAYMENT_CARD,
    PHONE,
    UK_NINO,
    US_SSN,
    Span,
)

# Default end of the scanned range: the whole text (`finditer` clips it to the length).
_END = sys.maxsize

# --- e-mail --------------------------------------------------------------------------------
# Local part at most 64 characters, domain at most 64 (longer domains are cut at a dot, which
# still redacts the part that identifies the person: a cut domain needs no top-level domain of
# its own). Matching is anchored on each "@".
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?(?![A-Za-z0-9-])"
)
_EMAIL_TLD = re.compile(r"\.[A-Za-z]{2,24}\Z")


def emails(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    out: list[Span] = []
    at = text.find("@", pos, end)
    lo = pos
    while at != -1:
        m = _EMAIL.search(text, max(lo, at - 64), end)
        if m is None:
            break
        start, stop = m.span()
        domain = text[text.index("@", start) + 1 : stop]
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
            out.append(Span(start, stop, EMAIL))
        lo = stop
        at = text.find("@", stop, end)
    return out


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


def phones(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    out: list[Span] = []
    for m in _PHONE.finditer(text, pos, end):
        raw = m.group()
        n = sum(ch.isdigit() for ch in raw)
        if m.group("intl") is not None:
            ok = 8 <= n <= 15
        elif m.group("nanp") is not None:
            digits = "".join(ch for ch in raw if ch.isdigit())
            ok = digits[0] >= "2" and digits[3] >= "2"
        else:
            ok = 9 <= n <= 12 and _NOT_PHONE_SHAPE.fullmatch(raw) is None
        if ok:
            out.append(Span(m.start(), m.end(), PHONE))
    return out


# --- national identifiers ------------------------------------------------------------------
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|\.\d)")
_SSN_LABELLED = re.compile(
    r"(?i:\b(?:ssn|social[ \t]+security(?:[ \t]+(?:no\.?|number|#))?)[ \t]*[:#]?[ \t]*)"
    r"(\d{3})()(\d{2})(\d{4})(?![\w-])"
)


def ssns(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    out = [
        Span(m.start(1), m.end(4), US_SSN)
        for pattern in (_SSN, _SSN_LABELLED)
        for m in pattern.finditer(text, pos, end)
        if checks.us_ssn_ok(m.group(1), m.group(3), m.group(4))
    ]
    return sorted(out)


_NINO = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def ninos(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    return [
        Span(m.start(), m.end(), UK_NINO)
        for m in _NINO.finditer(text, pos, end)
        if checks.uk_nino_ok(m.group(1))
    ]


_DNI = re.compile(r"(?<![A-Za-z0-9-])(?:\d{8}|[XYZxyz]-?\d{7})-?[A-Za-z](?![A-Za-z0-9])")


def dnis(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    return [
        Span(m.start(), m.end(), ES_DNI)
        for m in _DNI.finditer(text, pos, end)
        if checks.es_dni_ok(m.group())
    ]


_INSEE = re.compile(
    r"(?<![\w.-])[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2}"
    r"(?![\w-])"
)


def insees(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    return [
        Span(m.start(), m.end(), FR_INSEE)
        for m in _INSEE.finditer(text, pos, end)
        if checks.fr_insee_ok(m.group())
    ]


# --- payment cards -------------------------------------------------------------------------
# Digit groups joined by single spaces or dashes form a run; the card is looked for among the
# run's consecutive groups (so "qty 2 4111 1111 1111 1111" still finds the card), every group of
# a multi-group card having at least three digits and one kind of separator. A multi-group
# candidate that continues, with that same separator, into a group of three or more digits is
# part of a longer number (a 20-digit reference grouped by four), not a card. A group right
# after "." or "," is the fraction or thousands part of a number and never part of a card.
# Every rule looks at most one group beyond the candidate, which bounds the detector's reach.
_DIGITS = re.compile(r"(?<!\d)\d+")


def cards(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    out: list[Span] = []
    run: list[tuple[int, int]] = []
    for m in _DIGITS.finditer(text, pos, end):
        start = m.start()
        if run and start - run[-1][1] == 1 and text[start - 1] in " -":
            run.append(m.span())
            continue
        if run:
            _cards_in_run(text, run, out)
        run = [m.span()]
    if run:
        _cards_in_run(text, run, out)
    return out


def _cards_in_run(text: str, run: list[tuple[int, int]], out: list[Span]) -> None:
    i = 0
    while i < len(run):
        j = _card_end(text, run, i)
        if j:
            out.append(Span(run[i][0], run[j - 1][1], PAYMENT_CARD))
            i = j
        else:
            i += 1


def _card_end(text: str, run: list[tuple[int, int]], i: int) -> int:
    """The end j of the longest card made of the groups run[i:j], or 0.

    Candidates are 13 to 19 digits; past the first group every group has three or more digits
    (and then the first one too), so at most six groups are tried from each start."""
    ends: list[int] = []
    digits = 0
    for j in range(i, len(run)):
        size = run[j][1] - run[j][0]
        if size < 3 and j > i:
            break
        digits += size
        if digits > 19:
            break
        if digits >= 13:
            ends.append(j + 1)
    for j in reversed(ends):
        if _is_card(text, run, i, j):
            return j
    return 0


def _is_card(text: str, run: list[tuple[int, int]], i: int, j: int) -> bool:
    """run[i:j] (13 to 19 digits, groups after the first of 3+ digits) is a card."""
    part = run[i:j]
    if any(text[s - 1] in ".," for s, _ in part if s > 0):
        return False
    if j - i > 1:
        seps = {text[e] for _, e in part[:-1]}
        if len(seps) > 1:
            return False
        sep = seps.pop()
        first, last = part[0][0], part[-1][1]
        if text.startswith(sep, last) and _digits_at(text, last + 1, 1) >= 3:
            return False
        if first >= 2 and text[first - 1] == sep and _digits_at(text, first - 2, -1) >= 3:
            return False
    return checks.payment_card_ok("".join(text[s:e] for s, e in part))


def _digits_at(text: str, i: int, direction: int) -> int:
    """How many digits (up to 3) run from text[i] in `direction` (1 forwards, -1 backwards)."""
    count = 0
    while count < 3 and 0 <= i < len(text) and text[i].isdigit():
        count += 1
        i += direction
    return count


# --- IBAN ----------------------------------------------------------------------------------
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")


def ibans(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    """The candidate run can be longer than the IBAN (it is followed by more upper-case words
    or another IBAN): the search resumes after each IBAN, or after the failed candidate's
    country code, never after the whole run, so the next IBAN in it is still found."""
    out: list[Span] = []
    m = _IBAN.search(text, pos, end)
    while m is not None:
        found = _iban_at(text, m)
        out.extend(found)
        m = _IBAN.search(text, found[0].end if found else m.start() + 2, end)
    return out


def _iban_at(text: str, m: re.Match[str]) -> list[Span]:
    """The IBAN at the start of candidate `m` ([] or one span)."""
    raw = m.group()
    length = checks.IBAN_LENGTHS.get(raw[:2])
    if length is None:
        return []
    # Where the IBAN's `length` characters end inside the match (spaces don't count).
    kept = 0
    stop = 0
    for i, ch in enumerate(raw):
        if ch != " ":
            kept += 1
            if kept == length:
                stop = i + 1
                break
    if not stop or (stop < len(raw) and raw[stop] != " "):
        return []
    if stop == len(raw) and m.end() < len(text) and text[m.end()].isalnum():
        return []
    if not checks.iban_ok(raw[:stop].replace(" ", "")):
        return []
    return [Span(m.start(), m.start() + stop, IBAN)]


# --- IP addresses --------------------------------------------------------------------------
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\w)"
)


def ips(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    out: list[Span] = []
    if "." in text:
        out.extend(
            Span(m.start(), m.end(), IP_ADDRESS)
            for m in _IPV4.finditer(text, pos, end)
            if checks.ipv4_ok(m.group())
        )
    if ":" in text:
        out.extend(
            Span(m.start(), m.end(), IP_ADDRESS)
            for m in _IPV6.finditer(text, pos, end)
            if checks.ipv6_ok(m.group())
        )
    return sorted(out)


# --- medical record numbers ----------------------------------------------------------------
# Only in context: "MRN: 1234567", "medical record number 00123456", "patient ID A123456".
# The span is the number; the label stays readable.
_MRN = re.compile(
    r"(?<![A-Za-z0-9])(?:mrn|medical[ \t]+record(?:[ \t]+(?:number|no\.?|num|#))?"
    r"|patient[ \t]+(?:id|number|no\.?))[ \t]*(?:is[ \t]+)?[:#]?[ \t]*"
    r"([A-Za-z]{0,3}-?\d{4,12})(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def mrns(text: str, pos: int = 0, end: int = _END) -> list[Span]:
    return [Span(m.start(1), m.end(1), MRN) for m in _MRN.finditer(text, pos, end)]
