"""Guardrail policy, its compiled form, and the pure scan/apply functions of the request path.

A `GuardrailPolicy` (from the snapshot) is compiled once into `CompiledGuardrails`: the enabled
detectors, the action of every category they can report, the placeholders, the stream
hold-back and the scanner (one automaton pass finds the candidates of every detector, see
`automaton` and `chains`). `scan` and `apply` are then pure functions of (compiled, text): no
I/O, no clock.

Invariants:
- The audit-facing part of a result (`Verdict`: decision, categories, counts) never holds the
  matched text nor its position; only `Outcome.text` (the text to forward) carries text, and it
  is left out of `repr`.
- The most severe action found wins: block > redact > tag > allow. Redaction replaces every
  finding whose action is redact or block by its category's placeholder ("[EMAIL]"); findings
  that overlap are merged into one placeholder, named after the most severe of them (the
  earliest on a tie).
- Same-category findings that overlap (a Bearer header holding a JWT) count once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from data_plane.guardrails.automaton import Scanner, build_scanner, compile_catalog
from data_plane.guardrails.chains import FallbackRun, decide_all
from data_plane.guardrails.detectors import (
    BUILTIN_CATEGORIES,
    BUILTIN_DETECTORS,
    keyword_detector,
    regex_detector,
)
from data_plane.guardrails.spans import Detector, Span


class Action(StrEnum):
    ALLOW = "allow"
    TAG = "tag"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_ORDER = (Action.ALLOW, Action.TAG, Action.REDACT, Action.BLOCK)
_RANKS = {action: rank for rank, action in enumerate(_ORDER)}


class GuardrailPolicyError(ValueError):
    """The policy cannot be compiled (unknown category, bad regex, empty list...)."""


@dataclass(frozen=True, slots=True)
class CustomRegex:
    """Named list of regular expressions; findings are reported as `custom:<name>`.

    `max_len` bounds a match for the stream hold-back (see `detectors.regex_detector`).
    """

    name: str
    patterns: tuple[str, ...]
    ignore_case: bool = False
    max_len: int = 64


@dataclass(frozen=True, slots=True)
class KeywordList:
    """Named list of words or phrases matched case-insensitively as whole words."""

    name: str
    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GuardrailPolicy:
    """What to look for and what to do about it.

    `enabled`: built-in categories to scan for (custom and keyword lists are always enabled).
    `actions`: action per category (`"payment_card"`, `"custom:<name>"`, ...); every enabled
    category without one gets `default_action`.
    """

    enabled: frozenset[str] = BUILTIN_CATEGORIES
    actions: Mapping[str, Action] = field(default_factory=dict)
    default_action: Action = Action.REDACT
    custom_regexes: tuple[CustomRegex, ...] = ()
    keyword_lists: tuple[KeywordList, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledGuardrails:
    detectors: tuple[Detector, ...]
    actions: Mapping[str, Action]
    placeholders: Mapping[str, str]
    hold_back: int
    scanner: Scanner = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Findings sorted by position, same-category overlaps merged. Positions, never text."""

    findings: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The audit-facing classification: decision and categories with counts. No text."""

    decision: Action = Action.ALLOW
    counts: tuple[tuple[str, int], ...] = ()
    blocked_by: tuple[str, ...] = ()

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(category for category, _ in self.counts)

    @property
    def reason(self) -> str | None:
        """Stable reason code for a refusal, e.g. "guardrail_blocked:payment_card"."""
        if self.decision is not Action.BLOCK:
            return None
        return "guardrail_blocked:" + ",".join(self.blocked_by)

    def counts_dict(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass(frozen=True, slots=True)
class Outcome:
    """`verdict` is what audit records; `text` is what to forward (redacted when redacting)."""

    verdict: Verdict
    text: str = field(repr=False)
    changed: bool = False

    @property
    def decision(self) -> Action:
        return self.verdict.decision


CLEAN = Verdict()
_EMPTY_SCAN = ScanResult(())
# The triggers of every built-in detector, compiled once; a policy routes the hits of those it
# enables to its chains.
_BUILTIN = compile_catalog([c for d in BUILTIN_DETECTORS for c in d.chains], som=False)


def compile_policy(policy: GuardrailPolicy) -> CompiledGuardrails:
    """Validate the policy and compile its patterns once; raises GuardrailPolicyError."""
    unknown = set(policy.enabled) - BUILTIN_CATEGORIES
    if unknown:
        raise GuardrailPolicyError(f"unknown guardrail categories: {sorted(unknown)}")
    names = [f"custom:{c.name}" for c in policy.custom_regexes]
    names += [f"keyword:{k.name}" for k in policy.keyword_lists]
    if len(set(names)) != len(names):
        raise GuardrailPolicyError("custom regex and keyword list names must be unique")
    detectors = [d for d in BUILTIN_DETECTORS if d.category in policy.enabled]
    try:
        for custom in policy.custom_regexes:
            _check_name(custom.name)
            _check_strings(f"custom regex list {custom.name!r}", custom.patterns)
            if custom.max_len < 1:
                raise GuardrailPolicyError(f"custom regex list {custom.name!r}: max_len < 1")
            detectors.append(
                regex_detector(
                    custom.name,
                    custom.patterns,
                    ignore_case=custom.ignore_case,
                    max_len=custom.max_len,
                )
            )
        for keywords in policy.keyword_lists:
            _check_name(keywords.name)
            _check_strings(f"keyword list {keywords.name!r}", keywords.words)
            detectors.append(keyword_detector(keywords.name, keywords.words))
    except (re.error, ValueError, TypeError) as exc:  # re.error is not a ValueError
        raise GuardrailPolicyError(str(exc)) from exc
    scanner = build_scanner(detectors, _BUILTIN)
    categories = {d.category for d in detectors}
    actions: dict[str, Action] = {}
    for category, action in policy.actions.items():
        if category not in categories and category not in BUILTIN_CATEGORIES:
            raise GuardrailPolicyError(f"action for unknown category {category!r}")
        try:
            actions[category] = Action(action)
        except ValueError as exc:
            raise GuardrailPolicyError(f"unknown action {action!r} for {category!r}") from exc
    try:
        default = Action(policy.default_action)
    except ValueError as exc:
        raise GuardrailPolicyError(f"unknown default action {policy.default_action!r}") from exc
    resolved = {category: actions.get(category, default) for category in sorted(categories)}
    return CompiledGuardrails(
        detectors=tuple(detectors),
        actions=MappingProxyType(resolved),
        placeholders=MappingProxyType({c: f"[{c.upper()}]" for c in resolved}),
        hold_back=max((d.reach for d in detectors), default=0),
        scanner=scanner,
    )


def _check_strings(what: str, items: object) -> None:
    """A non-empty tuple or list of strings: a bare string would be taken character by
    character (every letter a pattern or a keyword)."""
    if not isinstance(items, (tuple, list)) or not items:
        raise GuardrailPolicyError(f"{what} must be a non-empty tuple of strings")
    if not all(isinstance(item, str) for item in items):
        raise GuardrailPolicyError(f"{what} must hold strings only")


def _check_name(name: str) -> None:
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise GuardrailPolicyError(f"invalid list name {name!r}: use letters, digits, _ and -")


def run_detectors(
    compiled: CompiledGuardrails, text: str
) -> tuple[list[Span], list[tuple[Span, Detector]]]:
    """Every raw finding of the text: the chains decide the automaton's candidates, the
    fallback patterns make their own pass. The findings of detectors that yield to others come
    apart, with their detector (see `drop_fragments`)."""
    scanner = compiled.scanner
    spans: list[Span] = []
    fragile: list[tuple[Span, Detector]] = []
    chains = scanner.chains
    for index, ranges in scanner.hits(text).items():
        chain, detector = chains[index]
        found = decide_all(chain, text, ranges)
        if not found:
            continue
        if detector.yields_to:
            fragile += [(span, detector) for span in found]
        else:
            spans += found
    for regex, detector in scanner.fallbacks:
        found = FallbackRun(regex, detector).advance(text, 0, True)
        if detector.yields_to:
            fragile += [(span, detector) for span in found]
        else:
            spans += found
    return spans, fragile


def drop_fragments(
    found: list[tuple[Span, Detector]], others: Iterable[Span] = ()
) -> list[tuple[Span, Detector]]:
    """Drop the findings that lie inside a finding (of `found` or `others`) of a category their
    detector yields to."""
    yielding = {c for _, d in found for c in d.yields_to}
    if not yielding:
        return found
    containers = [s for s, _ in found if s.category in yielding]
    containers += [s for s in others if s.category in yielding]
    if not containers:
        return found
    return [
        (span, detector)
        for span, detector in found
        if not detector.yields_to
        or not any(
            c.category in detector.yields_to and c.start <= span.start and span.end <= c.end
            for c in containers
        )
    ]


def merge_same_category(spans: Iterable[Span]) -> list[Span]:
    """Sort, and merge overlapping spans of one category into one."""
    out: list[Span] = []
    last: dict[str, int] = {}
    for span in sorted(spans):
        i = last.get(span.category)
        if i is not None and span.start < out[i].end:
            if span.end > out[i].end:
                out[i] = Span(out[i].start, span.end, span.category)
            continue
        last[span.category] = len(out)
        out.append(span)
    return out


def scan(compiled: CompiledGuardrails, text: str) -> ScanResult:
    spans, fragile = run_detectors(compiled, text)
    if fragile:
        spans += [span for span, _ in drop_fragments(fragile, spans)]
    if not spans:
        return _EMPTY_SCAN
    return ScanResult(tuple(merge_same_category(spans)))


def verdict_of(compiled: CompiledGuardrails, findings: Iterable[Span]) -> Verdict:
    counts: dict[str, int] = {}
    for span in findings:
        counts[span.category] = counts.get(span.category, 0) + 1
    return verdict_from_counts(compiled.actions, counts)


def verdict_from_counts(actions: Mapping[str, Action], counts: Mapping[str, int]) -> Verdict:
    if not counts:
        return CLEAN
    decision = max((actions[c] for c in counts), key=lambda a: a.rank)
    blocked = tuple(sorted(c for c in counts if actions[c] is Action.BLOCK))
    return Verdict(decision, tuple(sorted(counts.items())), blocked)


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for several texts (the messages of a request): counts add up."""
    counts: dict[str, int] = {}
    decision = Action.ALLOW
    blocked: set[str] = set()
    for verdict in verdicts:
        for category, n in verdict.counts:
            counts[category] = counts.get(category, 0) + n
        if verdict.decision.rank > decision.rank:
            decision = verdict.decision
        blocked.update(verdict.blocked_by)
    if not counts:
        return CLEAN
    return Verdict(decision, tuple(sorted(counts.items())), tuple(sorted(blocked)))


def redaction_regions(compiled: CompiledGuardrails, findings: Iterable[Span]) -> list[Span]:
    """Merged regions to replace (action redact or block), each named by its worst finding."""
    regions: list[Span] = []
    ranks: list[int] = []
    actions = compiled.actions
    redact = Action.REDACT.rank
    for span in findings:
        rank = actions[span.category].rank
        if rank < redact:
            continue
        if regions and span.start < regions[-1].end:
            last = regions[-1]
            category = span.category if rank > ranks[-1] else last.category
            regions[-1] = Span(last.start, max(last.end, span.end), category)
            ranks[-1] = max(rank, ranks[-1])
        else:
            regions.append(span)
            ranks.append(rank)
    return regions


def render(
    compiled: CompiledGuardrails, text: str, regions: Iterable[Span], start: int, end: int
) -> str:
    """text[start:end] with each region (inside that range) replaced by its placeholder."""
    parts: list[str] = []
    pos = start
    for region in regions:
        parts.append(text[pos : region.start])
        parts.append(compiled.placeholders[region.category])
        pos = region.end
    parts.append(text[pos:end])
    return "".join(parts)


def apply(compiled: CompiledGuardrails, text: str) -> Outcome:
    """Scan and act: the verdict, and the text to forward (redacted when there is anything to
    redact or block; with block the caller refuses the request, and the text is still safe)."""
    findings = scan(compiled, text).findings
    if not findings:
        return Outcome(CLEAN, text, False)
    verdict = verdict_of(compiled, findings)
    if verdict.decision.rank < Action.REDACT.rank:
        return Outcome(verdict, text, False)
    regions = redaction_regions(compiled, findings)
    return Outcome(verdict, render(compiled, text, regions, 0, len(text)), True)
