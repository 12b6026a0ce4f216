"""Chains: a detector's matching driven by candidate positions instead of by every position.

A regex pass (`finditer`, or a search loop that resumes where its last match told it to) only
ever finds a match where the regex matches at that very position. So trying `regex.match` at
every candidate, in order and skipping those inside the previous match, finds exactly what the
pass finds, as long as every position where the regex can match is a candidate. The automaton
provides the candidates (one Hyperscan pass for every chain, see `automaton`), so the regexes
run only where something may be, and the validators (Luhn, mod 97, ...) only on their matches.

`ChainRun` keeps a chain's state over one text or one stream: its pending candidates, its
cursor and, in a stream, the open-ended finding that is still growing. `FallbackRun` does the
same for a pattern with no candidates (a tenant pattern the automaton cannot take): its own
`finditer`, resumed where it can no longer change.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from data_plane.guardrails.spans import Chain, Decision, Detector, Span, Trigger

END = sys.maxsize  # default end of a scanned range: the whole text

Convert = Callable[[str, re.Match[str]], tuple[list[Span], int]]


def whole_match(category: str) -> Convert:
    """A converter reporting the whole match, the pass resuming at its end."""

    def convert(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
        return [Span(m.start(), m.end(), category)], m.end()

    return convert


@dataclass(frozen=True, slots=True)
class RegexChain:
    """The matches of `regex`, each turned by `convert` into findings (none when a validator
    rejects it) and the position where the pass resumes (the match's end for `finditer`).

    Bounded (`open_ended` False): a match is decided once `need` characters follow the
    candidate. Open-ended: a match is certain as soon as it is found, and final once `tail`
    characters follow its last finding.
    """

    regex: re.Pattern[str]
    convert: Convert
    triggers: tuple[Trigger, ...]
    need: int
    open_ended: bool = False
    tail: int = 2
    lead: int = 0
    held: Callable[[str], int] | None = None

    def decide(self, text: str, x: int, cursor: int, final: bool) -> Decision | None:
        enough = final or x + self.need <= len(text)
        if not enough and not self.open_ended:
            return None
        m = self.regex.match(text, x)
        if m is None:
            return ([], cursor, True) if enough else None
        spans, resume = self.convert(text, m)
        if final or not self.open_ended:
            return spans, resume, True
        last = max((s.end for s in spans), default=m.end())
        return spans, resume, len(text) - last >= self.tail

    def find(self, text: str, pos: int = 0, end: int = END) -> list[Span]:
        """The pass itself, over every position from `pos` (the reference the candidates must
        reproduce)."""
        out: list[Span] = []
        m = self.regex.search(text, pos, end)
        while m is not None:
            spans, resume = self.convert(text, m)
            out.extend(spans)
            m = self.regex.search(text, resume, end)
        return out


def decide_all(chain: Chain, text: str, candidates: list[tuple[int, int]]) -> list[Span]:
    """The findings of `chain` in the whole `text`, from its candidates ([lo, hi) ranges)."""
    decide = chain.decide
    out: list[Span] = []
    cursor = 0
    done = 0  # every candidate position before it is decided (ranges overlap)
    if len(candidates) > 1:
        candidates = sorted(candidates)
    for lo, hi in candidates:
        x = lo if lo > done else done
        if x < cursor:
            x = cursor
        while x < hi:
            decision = decide(text, x, cursor, True)
            assert decision is not None  # the text is whole: every candidate is decided
            spans, resume, _ = decision
            if spans:
                out += spans
            if resume > cursor:
                cursor = resume
            x = x + 1 if x >= cursor else cursor
        done = x
    return out


class ChainRun:
    """One chain over one text or stream: pending candidates (absolute [lo, hi) ranges of
    positions), the cursor, where the candidates decided so far end (`done`: ranges overlap,
    and a position is decided once), and the open-ended finding still growing (certain, not
    final)."""

    __slots__ = ("chain", "cursor", "detector", "done", "open", "pending")

    def __init__(self, chain: Chain, detector: Detector) -> None:
        self.chain = chain
        self.detector = detector
        self.cursor = 0
        self.done = 0
        self.pending: list[tuple[int, int]] = []
        self.open: tuple[Span, ...] = ()

    def advance(self, text: str, origin: int, final: bool) -> list[Span]:
        """Decide the pending candidates in order, as far as `text` (which starts at absolute
        position `origin`) allows; return the findings decided (absolute positions)."""
        decide = self.chain.decide
        pending = self.pending
        if len(pending) > 1:
            pending.sort()
        out: list[Span] = []
        cursor, done = self.cursor, self.done
        self.open = ()
        for i, (lo, hi) in enumerate(pending):
            x = lo if lo > done else done
            if x < cursor:
                x = cursor
            while x < hi:
                since = cursor - origin
                decision = decide(text, x - origin, since if since > 0 else 0, final)
                if decision is None or not decision[2]:
                    if decision is not None:
                        self.open = tuple(_moved(decision[0], origin))
                    del pending[:i]
                    self.cursor, self.done = cursor, x
                    return out
                spans, resume, _ = decision
                if spans:
                    out += _moved(spans, origin)
                resume += origin
                if resume > cursor:
                    cursor = resume
                x = x + 1 if x >= cursor else cursor
            done = x
        pending.clear()
        self.cursor, self.done = cursor, done
        return out

    def low_water(self) -> int:
        """Where the next finding of this chain may start, as far as its candidates tell."""
        low = END
        if self.pending:
            low = max(self.cursor, max(self.pending[0][0], self.done) - self.chain.lead)
        if self.open:
            low = min(low, self.open[0].start)
        return low

    def due(self) -> int:
        """The length of text at which the first pending candidate can be decided."""
        if not self.pending:
            return END
        return max(self.cursor, self.done, self.pending[0][0]) + self.chain.need


class FallbackRun:
    """A pattern matched by its own `finditer` (non-empty matches are findings).

    In a stream, a match is decided once `reach` characters follow its start; the pass resumes
    at the last decided match (or where no match can start any more), which reproduces
    `finditer` over the whole text for matches shorter than `reach`.
    """

    __slots__ = ("detector", "regex", "restart")

    def __init__(self, regex: re.Pattern[str], detector: Detector) -> None:
        self.regex = regex
        self.detector = detector
        self.restart = 0

    def advance(self, text: str, origin: int, final: bool) -> list[Span]:
        n = origin + len(text)
        reach = self.detector.reach
        category = self.detector.category
        out: list[Span] = []
        restart = self.restart
        for m in self.regex.finditer(text, max(restart - origin, 0)):
            start = m.start() + origin
            if not final and start + reach > n:
                restart = start
                break
            if m.end() > m.start():
                out.append(Span(start, m.end() + origin, category))
                restart = m.end() + origin
            else:
                restart = start
        else:
            if not final:
                restart = max(restart, n + 1 - reach)
        self.restart = restart
        return out


def _moved(spans: list[Span], origin: int) -> list[Span]:
    if not origin:
        return spans
    return [Span(s.start + origin, s.end + origin, s.category) for s in spans]
