"""Guardrails on streamed output: release text as it comes, never part of a secret.

`StreamGuard` takes the text deltas of a streamed completion and returns, for each, the text
that is safe to release now; `finish()` releases the rest. Concatenated, the released text is
exactly `apply(compiled, whole_text).text` (the redacted text when redacting, the text itself
when allowing or tagging), whatever the chunking. With a blocking finding, `feed` returns ""
from the moment the finding is certain and `blocked` turns true; nothing of the secret has been
released (released text is a prefix of the redacted text that stops before the secret).

Incremental: each character is scanned once
-------------------------------------------
The guard runs the whole-text algorithm of `engine.scan` on the stream as it grows: the
automaton (a Hyperscan stream) reads each new character once and reports the candidates of
every detector's chains; each chain decides its candidates in text order, keeping its cursor
from one chunk to the next, as soon as enough text follows a candidate (`need` characters,
so the decision is the one the whole text would give). Its state is the held text, the
automaton's stream state, the pending candidates and the decided findings not yet released.

Release and its latency cost
----------------------------
Text is released up to the first position where a finding might still start: the earliest
pending candidate of any chain (minus how far before its candidate a finding can start), an
open-ended finding that is still growing (a PEM key block before its END line, a token whose
run goes on), or, for candidates the automaton cannot have reported yet, the longest distance
from the end of a trigger back to where its finding may start (25 for the built-in triggers,
a tenant pattern's reach for its own; for an e-mail address, the local part already written,
64 characters at most). Release never cuts inside a finding, whatever its action, so no
finding of the whole text straddles the released boundary. A secret is therefore seen whole,
and decided, before its first character could be released.
The cost is latency, not throughput. The guard works when the text held would otherwise pass
`H + step` characters (H = `compiled.hold_back`, the largest reach of the enabled detectors;
131 with e-mail enabled), or, when a finding or candidate holds it longer, when the first
pending candidate can be decided: output trails the model by at most H + step characters on
text without findings (the first character reaches the client once H + step characters have
been generated, or at the end of the stream), and a block is reported within H + step
characters of the secret's start. Each time it works it scans what came since with the
automaton (one Hyperscan call) and decides what can be decided, so its CPU cost is that of
one whole-text scan plus a fixed cost every H + step characters or so.

Tenant patterns the automaton cannot take are matched by a pass of their own over the held
text (`chains.FallbackRun`); a custom pattern match longer than its `max_len` may be found
differently than in the whole text, and so may a label followed by a run of blanks longer
than its chain's `need` allows for.

The guard is pure: no I/O, no clock.
"""

from __future__ import annotations

from data_plane.guardrails.automaton import HitStream
from data_plane.guardrails.chains import END, ChainRun, FallbackRun
from data_plane.guardrails.engine import (
    Action,
    CompiledGuardrails,
    Verdict,
    drop_fragments,
    merge_same_category,
    redaction_regions,
    render,
    verdict_from_counts,
)
from data_plane.guardrails.spans import Detector, Span

# Released characters kept before the held text, for look-behinds at its start (the built-in
# patterns look back two characters, and four for a card's grouping; custom ones rarely
# further).
_MARGIN = 32

Found = tuple[Span, Detector]


class StreamGuard:
    __slots__ = (
        "_active",
        "_back",
        "_blocked_by",
        "_blocks",
        "_compiled",
        "_counts",
        "_done",
        "_fallbacks",
        "_found",
        "_helds",
        "_hits",
        "_next",
        "_origin",
        "_released",
        "_runs",
        "_scanned",
        "_scanner",
        "_step",
        "_text",
    )

    def __init__(self, compiled: CompiledGuardrails, *, step: int = 32) -> None:
        scanner = compiled.scanner
        self._compiled = compiled
        self._blocks = Action.BLOCK in compiled.actions.values()
        self._step = max(1, step)
        self._scanner = scanner
        self._back = scanner.back
        self._helds = scanner.helds
        self._hits: HitStream | None = None  # opened on the first chunk scanned
        self._runs: dict[int, ChainRun] = {}  # by chain index, from its first candidate
        self._active: set[int] = set()  # runs with pending candidates or an open finding
        self._fallbacks = [FallbackRun(regex, detector) for regex, detector in scanner.fallbacks]
        self._found: list[Found] = []  # decided findings not released yet
        self._text = ""  # held text, after up to _MARGIN released characters of context
        self._origin = 0  # position of _text[0] in the stream
        self._released = 0
        self._scanned = 0
        self._next = compiled.hold_back + self._step  # stream length at which to work next
        self._counts: dict[str, int] = {}
        self._blocked_by: tuple[str, ...] = ()
        self._done = False

    @property
    def blocked(self) -> bool:
        return bool(self._blocked_by)

    @property
    def verdict(self) -> Verdict:
        """Audit-facing summary of everything released or blocked so far (no text)."""
        verdict = verdict_from_counts(self._compiled.actions, self._counts)
        if self._blocked_by:
            return Verdict(Action.BLOCK, verdict.counts, self._blocked_by)
        return verdict

    def feed(self, delta: str) -> str:
        """Take the next delta; return the text that may be released now (often "")."""
        if self._blocked_by or self._done or not delta:
            return ""
        self._text += delta
        if self._origin + len(self._text) < self._next:
            return ""
        return self._advance(final=False)

    def finish(self) -> str:
        """End of stream: return everything still held (redacted), or "" when blocked."""
        if self._done:
            return ""
        self._done = True
        if self._blocked_by:
            return ""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        text, origin = self._text, self._origin
        n = origin + len(text)
        if n > self._scanned or final:
            self._scan(text, origin, n, final)
        low, opened = self._decide(text, origin, n, final)
        found = self._found
        cut = low if low < n else n
        kept: list[Found] = []
        if found or opened:
            kept = drop_fragments(found + opened if opened else found)
            if self._blocks and self._block(kept, low, final):
                return ""
            for span, _ in opened:
                if span.start < cut:
                    cut = span.start
            cut = _outside_findings(kept, cut)
        released = self._released
        if cut <= released:
            self._schedule(n)
            return ""
        if kept:
            out = self._release(kept, text, origin, cut)
            self._found = [pair for pair in found if pair[0].start >= cut]
        else:
            out = text[released - origin : cut - origin]
        self._released = cut
        keep = cut - _MARGIN
        if keep > origin:
            self._text = text[keep - origin :]
            self._origin = keep
        self._schedule(n)
        return out

    def _scan(self, text: str, origin: int, n: int, final: bool) -> None:
        """Feed the characters not scanned yet to the automaton; queue their candidates. A
        stream that ends before its first piece was scanned is scanned as a whole text."""
        scanner = self._scanner
        if n > self._scanned and scanner.catalogs:
            if final and self._hits is None:  # nothing released yet: `text` is the stream
                hits = scanner.hits(text)
            else:
                if self._hits is None:
                    self._hits = scanner.stream()
                assert self._hits is not None  # the scanner has catalogs
                hits = self._hits.scan(text[self._scanned - origin :])
            if hits:
                runs, active = self._runs, self._active
                for index, ranges in hits.items():
                    run = runs.get(index)
                    if run is None:
                        run = runs[index] = ChainRun(*scanner.chains[index])
                    pending = run.pending
                    pending += ranges
                    if len(pending) > 1:
                        pending.sort()
                    active.add(index)
            self._scanned = n
        if final and self._hits is not None:
            self._hits.close()

    def _decide(self, text: str, origin: int, n: int, final: bool) -> tuple[int, list[Found]]:
        """Decide what the text allows; return where a finding may still start, and the
        open-ended findings still growing."""
        if final:
            low = n
        else:
            low = n + 1 - self._back
            for held in self._helds:
                start = n - held(text)
                if start < low:
                    low = start
        opened: list[Found] = []
        active = self._active
        if active:
            found, runs = self._found, self._runs
            for index in sorted(active) if len(active) > 1 else tuple(active):
                run = runs[index]
                if not final and not run.open and run.due() > n:  # nothing it can decide yet
                    start = run.low_water()
                    if start < low:
                        low = start
                    continue
                spans = run.advance(text, origin, final)
                if spans:
                    detector = run.detector
                    found += [(span, detector) for span in spans]
                if run.pending or run.open:
                    start = run.low_water()
                    if start < low:
                        low = start
                    if run.open:
                        detector = run.detector
                        opened += [(span, detector) for span in run.open]
                else:
                    active.discard(index)
        for fallback in self._fallbacks:
            found = self._found
            found += [(s, fallback.detector) for s in fallback.advance(text, origin, final)]
            if not final and fallback.restart < low:
                low = fallback.restart
        return low, opened

    def _block(self, kept: list[Found], low: int, final: bool) -> bool:
        """Block on a certain finding of a blocking category: decided or open-ended, and, for
        a detector that yields to others, with every finding that could contain it decided."""
        actions = self._compiled.actions
        blocking = sorted(
            {
                span.category
                for span, detector in kept
                if actions[span.category] is Action.BLOCK
                and (final or not detector.yields_to or span.start < low)
            }
        )
        if not blocking:
            return False
        self._blocked_by = tuple(blocking)
        for category in blocking:
            self._counts[category] = self._counts.get(category, 0) + 1
        self._text = ""
        self._found = []
        if self._hits is not None:
            self._hits.close()
        return True

    def _release(self, kept: list[Found], text: str, origin: int, cut: int) -> str:
        """text up to `cut` (from the released position), redacted; count its findings."""
        start, stop = self._released - origin, cut - origin
        findings = merge_same_category(span for span, _ in kept if span.start < cut)
        if not findings:
            return text[start:stop]
        for span in findings:
            self._counts[span.category] = self._counts.get(span.category, 0) + 1
        regions = [
            Span(r.start - origin, r.end - origin, r.category)
            for r in redaction_regions(self._compiled, findings)
        ]
        return render(self._compiled, text, regions, start, stop)

    def _schedule(self, n: int) -> None:
        """Work next when the held text would pass H + step characters; when it already does
        (a finding or a candidate holds it), when the first pending candidate can be decided,
        or once the text has grown by a quarter (an open finding, a long run of digits)."""
        step, hold = self._step, self._compiled.hold_back
        due = self._released + hold + step
        if due <= n:
            due = min((self._runs[i].due() for i in self._active), default=END)
            for fallback in self._fallbacks:
                due = min(due, fallback.restart + fallback.detector.reach)
            if due <= n or due == END:
                due = n + max(step, (n - self._released - hold) // 4)
        self._next = due


def _outside_findings(kept: list[Found], cut: int) -> int:
    """`cut`, or the start of the (overlapping) findings it would fall inside."""
    block_start = block_end = -1
    for span in sorted(span for span, _ in kept if span.start < cut):
        if span.start >= block_end:
            block_start, block_end = span.start, span.end
        else:
            block_end = max(block_end, span.end)
        if block_start < cut < block_end:
            return block_start
    return cut
