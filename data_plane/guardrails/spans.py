"""Findings and the detector contract shared by the built-in and policy-defined detectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

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


@dataclass(frozen=True, slots=True)
class Detector:
    """A pure function `(text, pos) -> spans` plus what the streaming guard needs to know.

    `find(text, pos)` reports the findings that start at or after `pos`; the characters before
    `pos` are context only (look-behinds see them), so a scan that starts mid-text does not
    mistake the middle of a word or number for the start of a finding.

    `gate` is a cheap test every finding's text must pass (a character or literal it must
    contain); the scanner evaluates each distinct gate once per text and skips the detector
    when it fails, so clean text costs a few substring searches.

    `reach`: once the `reach` characters from a finding's start are visible (or the text has
    ended), the detector has reported that finding, with its final extent unless it is
    `open_ended`. Patterns are bounded so that reach is finite; the streaming guard holds back
    the largest reach of the enabled detectors.

    `open_ended`: the finding is certain as soon as it is reported (a key prefix, a PEM
    header) and then grows over the rest of its run; it has stopped growing once `tail`
    characters follow its end.

    `yields_to`: categories whose findings make this detector's findings inside them
    fragments, dropped (the account-number part of an IBAN is not also a phone number).
    """

    category: str
    find: Callable[[str, int], list[Span]]
    reach: int
    gate: Callable[[str], bool] | None = None
    open_ended: bool = False
    tail: int = 2
    yields_to: frozenset[str] = frozenset()
