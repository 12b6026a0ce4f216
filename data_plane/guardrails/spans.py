"""Findings and the detector contract shared by the built-in and policy-defined detectors."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

EMAIL = "email"
PHONE = "phone"
US_SSN = "us_ssn"
UK_NINO = "uk_nino"
ES_DNI = "es_dni"
FR_INSEE = "fr_insee"
PAYMENT_CARD = "payment_card"
IBAN = "iban"
IP_ADDRESS = "ip_address"
CREDENTIAL = "credential"
PRIVATE_KEY = "private_key"
MRN = "mrn"


class Span(NamedTuple):
    """A finding: half-open character range [start, end) and its category. Never the text."""

    start: int
    end: int
    category: str


class Trigger(NamedTuple):
    """A Hyperscan pattern that the text around every candidate of a chain matches.

    Patterns read the shadow of the text (see `automaton.shadow`), one byte per character, and
    must match wherever the chain's own matching could succeed: they may only add candidates.
    `width` > 0: the candidates are the `spread` positions from `width` characters before the
    end of the hit (the pattern may start with a character of context before them);
    `width` == 0: the hit's start is reported (SOM) and every position from it to the hit's
    end is a candidate.
    """

    pattern: str
    width: int
    caseless: bool = False
    spread: int = 1


# What a chain decided at a candidate: (spans, cursor, settled): its findings, where the chain
# goes on, and whether they are final (settled) or an open-ended finding that may still grow.
# A plain tuple, not a NamedTuple: one is made for every candidate decided, and a NamedTuple
# costs several times as much to create.
Decision = tuple[list[Span], int, bool]


class Chain(Protocol):
    """One pass of a detector (a regex and what turns its matches into findings), driven by
    candidates instead of by a scan of every position.

    Candidates are visited in text order with the chain's `cursor` (where its previous match
    ended); `decide(text, x, cursor, final)` looks at candidate position `x` and returns None
    while `text` is too short to be sure (fewer than `need` characters after `x`, and more
    text may come). A finding decided at `x` starts at or after `x - lead`. Whatever the
    candidates, the findings are those of the detector's `find`, the same pass over every
    position, as long as every position where a match could start is a candidate.

    `held(text)`, when not None, tells in how many of the last characters of `text` a finding
    may start whose hit the automaton has not reported yet (it has read all of `text`); by
    default that is the widest trigger plus `lead`.
    """

    @property
    def triggers(self) -> tuple[Trigger, ...]: ...

    @property
    def lead(self) -> int: ...

    @property
    def need(self) -> int: ...

    @property
    def held(self) -> Callable[[str], int] | None: ...

    def decide(self, text: str, x: int, cursor: int, final: bool) -> Decision | None: ...


@dataclass(frozen=True, slots=True)
class Detector:
    """A pure function `(text, pos) -> spans` plus what the streaming guard needs to know.

    `find(text, pos)` reports the findings that start at or after `pos`; the characters before
    `pos` are context only (look-behinds see them), so a scan that starts mid-text does not
    mistake the middle of a word or number for the start of a finding.

    `chains`: the same findings, found from the candidates the automaton reports (one
    Hyperscan pass over the text for every detector); `fallback`: patterns the automaton cannot
    take, matched by a pass of their own.

    `reach`: once the `reach` characters from a finding's start are visible (or the text has
    ended), the detector has reported that finding, with its final extent unless it is
    `open_ended`. Patterns are bounded so that reach is finite; the largest reach of the
    enabled detectors bounds how far the streaming guard's output trails the model.

    `open_ended`: the finding is certain as soon as it is reported (a key prefix, a PEM
    header) and then grows over the rest of its run; it has stopped growing once `tail`
    characters follow its end.

    `yields_to`: categories whose findings make this detector's findings inside them
    fragments, dropped (the account-number part of an IBAN is not also a phone number).
    """

    category: str
    find: Callable[[str, int], list[Span]]
    reach: int
    open_ended: bool = False
    tail: int = 2
    yields_to: frozenset[str] = frozenset()
    chains: tuple[Chain, ...] = ()
    fallback: tuple[re.Pattern[str], ...] = ()
