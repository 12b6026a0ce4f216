"""Account numbers: payment cards (Luhn and network rules) and IBANs (mod 97).

Like `pii`, each detector is a reference pass (`cards`, `ibans`) and the chain that finds the
same from the automaton's candidates.
"""

from __future__ import annotations

import re

from data_plane.guardrails import checks
from data_plane.guardrails.chains import END, RegexChain
from data_plane.guardrails.spans import IBAN, PAYMENT_CARD, Decision, Span, Trigger

# --- payment cards -------------------------------------------------------------------------
# Digit groups joined by single spaces or dashes form a run; the card is looked for among the
# run's consecutive groups (so "qty 2 4111 1111 1111 1111" still finds the card), every group of
# a multi-group card having at least three digits and one kind of separator. A multi-group
# candidate that continues, with that same separator, into a group of three or more digits is
# part of a longer number (a 20-digit reference grouped by four), not a card. A group right
# after "." or "," is the fraction or thousands part of a number and never part of a card.
# Every rule looks at most one group beyond the candidate, which bounds the detector's reach.
_RUN = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*")


def cards(text: str, pos: int = 0, end: int = END) -> list[Span]:
    out: list[Span] = []
    for m in _RUN.finditer(text, pos, end):
        raw = m.group()
        if len(raw) - raw.count(" ") - raw.count("-") < 13:  # too few digits for a card
            continue
        groups: list[tuple[int, int]] = []
        start = m.start()
        for group in raw.replace("-", " ").split(" "):  # digits, one separator between groups
            stop = start + len(group)
            groups.append((start, stop))
            start = stop + 1
        _cards_in_run(text, groups, out)
    return out


def _cards_in_run(text: str, run: list[tuple[int, int]], out: list[Span]) -> None:
    i = 0
    count = len(run)
    while i < count:
        # No card network's numbers start with 0, 1, 7, 8 or 9 (`card_lengths`).
        j = 0 if text[run[i][0]] in "01789" else _card_end(text, run, i)
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
    prefix = ""
    for j in range(i, len(run)):
        start, stop = run[j]
        if stop - start < 3 and j > i:
            break
        digits += stop - start
        if digits > 19:
            break
        if len(prefix) < 4:
            prefix += text[start : min(stop, start + 4)]
        if digits >= 13:
            ends.append(j + 1)
    if not ends:
        return 0
    # A card has one of its network's lengths (known from its first four digits), and passes
    # the Luhn check (`_is_card`, tried last).
    lengths = checks.card_lengths(prefix)
    for j in reversed(ends):
        if run[j - 1][1] - run[i][0] - (j - i - 1) in lengths and _is_card(text, run, i, j):
            return j
    return 0


def _is_card(text: str, run: list[tuple[int, int]], i: int, j: int) -> bool:
    """run[i:j] (13 to 19 digits, groups after the first of 3+ digits, a length its network
    issues) is a card: its grouping, and the Luhn check."""
    first, last = run[i][0], run[j - 1][1]
    if first > 0 and text[first - 1] in ".,":  # later groups follow a space or a dash
        return False
    if j - i == 1:
        return checks.luhn_ok(text[first:last])
    sep = text[run[i][1]]
    if any(text[e] != sep for _, e in run[i + 1 : j - 1]):
        return False
    if text.startswith(sep, last) and _digits_at(text, last + 1, 1) >= 3:
        return False
    if first >= 2 and text[first - 1] == sep and _digits_at(text, first - 2, -1) >= 3:
        return False
    return checks.luhn_ok(text[first:last].replace(sep, ""))


def _digits_at(text: str, i: int, direction: int) -> int:
    """How many digits (up to 3) run from text[i] in `direction` (1 forwards, -1 backwards)."""
    count = 0
    while count < 3 and 0 <= i < len(text) and text[i].isdigit():
        count += 1
        i += direction
    return count


_RUN_FROM = re.compile(r"\d*(?:[ -]\d+)*")


class _CardChain:
    """The candidate is the 13th digit of a run of digit groups that holds 13 digits or more
    (the trigger starts where the run does: after a character that is no digit, and no
    separator that follows one), at most 24 characters after the run's start. The run is looked
    at whole, once it has ended, as `cards` would."""

    triggers = (Trigger(r"(?:[^\d -]|[^\d][ -])(?:\d[ -]?){12}\d", 1),)
    lead = 24
    need = 64
    held = None

    def decide(self, text: str, x: int, cursor: int, final: bool) -> Decision | None:
        run = _RUN_FROM.match(text, x)
        stop = run.end() if run is not None else x
        if not final and stop + 4 > len(text):  # `_is_card` looks one group beyond the run
            return None
        return cards(text, max(cursor, x - self.lead), stop), stop, True


CARD_CHAIN = _CardChain()


# --- IBAN ----------------------------------------------------------------------------------
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")


def _iban(text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    """The candidate run can be longer than the IBAN (it is followed by more upper-case words
    or another IBAN): the search resumes after each IBAN, or after the failed candidate's
    country code, never after the whole run, so the next IBAN in it is still found."""
    found = _iban_at(text, m)
    return found, found[0].end if found else m.start() + 2


# The first `length` characters of a candidate (spaces between them not counted).
_IBAN_BODIES = {
    length: re.compile(rf"\S{{4}}(?: ?\S){{{length - 4}}}")
    for length in set(checks.IBAN_LENGTHS.values())
}
IBAN_CHAIN = RegexChain(_IBAN, _iban, (Trigger(r"[A-Z]{2}\d\d[ A-Z0-9]{6}", 10),), need=66)


def ibans(text: str, pos: int = 0, end: int = END) -> list[Span]:
    return IBAN_CHAIN.find(text, pos, end)


def _iban_at(text: str, m: re.Match[str]) -> list[Span]:
    """The IBAN at the start of candidate `m` ([] or one span)."""
    raw = m.group()
    length = checks.IBAN_LENGTHS.get(raw[:2])
    if length is None:
        return []
    # Where the IBAN's `length` characters end inside the match (spaces don't count).
    body = _IBAN_BODIES[length].match(raw)
    stop = body.end() if body is not None else 0
    if not stop or (stop < len(raw) and raw[stop] != " "):
        return []
    if stop == len(raw) and m.end() < len(text) and text[m.end()].isalnum():
        return []
    if not checks.iban_ok(raw[:stop].replace(" ", "")):
        return []
    return [Span(m.start(), m.start() + stop, IBAN)]
