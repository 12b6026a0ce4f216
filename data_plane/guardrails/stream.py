"""Guardrails on streamed output: release text as it comes, never part of a secret.

`StreamGuard` takes the text deltas of a streamed completion and returns, for each, the text
that is safe to release now; `finish()` releases the rest. Concatenated, the released text is
exactly `apply(compiled, whole_text).text` (the redacted text when redacting, the text itself
when allowing or tagging), whatever the chunking. With a blocking finding, `feed` returns ""
from the moment the finding is certain and `blocked` turns true; nothing of the secret has been
released (released text is a prefix of the redacted text that stops before the secret).

Hold-back bound and its latency cost
------------------------------------
The guard always keeps the last `H = compiled.hold_back` characters unreleased, where H is the
largest `reach` of the enabled detectors: the number of characters from a finding's start
within which the detector has reported it (131 with e-mail enabled: a 64-character local part,
"@", a 64-character domain and one look-ahead character; 96 without it). A secret split over
any number of chunks is therefore seen whole before its first character could be released.
Findings that are still open (a PEM key block before its END line, a token whose run is still
growing, any finding not yet decided) hold back from their start, however long they get.
The cost is latency, not throughput: the first character reaches the client once H + step
characters have been generated (about 40 tokens at the defaults) or at the end of the stream,
and from then on output trails the model by H to H + step characters. The guard scans a window
of the held text plus H characters of already released context (findings that start there
were dealt with already; they matter for what follows them) every `step` characters (default
32), so its CPU cost is that of scanning roughly (2H + step) / step times the output, and a
block is reported within `step` characters of becoming certain.

Release never cuts inside a finding, whatever its action, so no finding of the whole text
straddles the released boundary. What the guard cannot reproduce is a match that begins more
than H characters before the boundary and runs on past it without any separator (undelimited
tokens chained for hundreds of characters): scanning mid-text, such a run may be split into
findings differently than a scan of the whole text would. Text where secrets are delimited by
whitespace or punctuation, that is all ordinary text, is not affected.

The guard is pure: no I/O, no clock; its only state is the held text and the counts.
"""

from __future__ import annotations

from data_plane.guardrails.engine import (
    Action,
    CompiledGuardrails,
    Verdict,
    drop_fragments,
    redaction_regions,
    render,
    run_detectors,
    verdict_from_counts,
)
from data_plane.guardrails.spans import Detector, Span

# Released characters kept before the scanned context, for look-behinds at its start (the
# built-in patterns look back two characters at most; custom ones rarely further).
_MARGIN = 32


class StreamGuard:
    __slots__ = (
        "_blocked_by",
        "_buf",
        "_compiled",
        "_counts",
        "_ctx",
        "_done",
        "_scan_at",
        "_step",
    )

    def __init__(self, compiled: CompiledGuardrails, *, step: int = 32) -> None:
        self._compiled = compiled
        self._step = max(1, step)
        self._ctx = ""  # the last H + _MARGIN released characters: context for the next scan
        self._buf = ""  # text received and not yet released
        self._scan_at = self._step
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
        self._buf += delta
        if len(self._buf) < self._scan_at:
            return ""
        return self._advance(final=False)

    def finish(self) -> str:
        """End of stream: return everything still held (redacted), or "" when blocked."""
        if self._done:
            return ""
        self._done = True
        if self._blocked_by or not self._buf:
            return ""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        compiled = self._compiled
        hold = compiled.hold_back
        window = self._ctx + self._buf
        base = len(self._ctx)
        n = len(window)
        findings = _settle(_scan_window(compiled, window, base), base, n, final)
        actions = compiled.actions

        blocking = sorted(
            {
                s.category
                for s, _, certain in findings
                if certain and actions[s.category] is Action.BLOCK
            }
        )
        if blocking:
            self._blocked_by = tuple(blocking)
            for category in blocking:
                self._counts[category] = self._counts.get(category, 0) + 1
            self._buf = ""
            return ""

        cut = n if final else n - hold
        for span, settled, _ in findings:
            if not settled and span.start < cut:
                cut = span.start
        # Never cut inside a finding (of any action) nor inside overlapping findings: the next
        # window then starts on a clean boundary, and every finding is counted exactly once.
        block_start = block_end = -1
        for span, _, _ in findings:
            if span.start >= block_end:
                block_start, block_end = span.start, span.end
            else:
                block_end = max(block_end, span.end)
            if block_start < cut < block_end:
                cut = block_start
                break
        regions = redaction_regions(compiled, (s for s, _, _ in findings))
        if cut <= base:
            self._schedule(hold)
            return ""

        for span, _, _ in findings:
            if span.start < cut:
                self._counts[span.category] = self._counts.get(span.category, 0) + 1
        released = render(compiled, window, [r for r in regions if r.end <= cut], base, cut)
        self._ctx = window[max(0, cut - hold - _MARGIN) : cut]
        self._buf = window[cut:]
        self._schedule(hold)
        return released

    def _schedule(self, hold: int) -> None:
        held = len(self._buf)
        self._scan_at = held + max(self._step, (held - hold) // 4)


def _scan_window(
    compiled: CompiledGuardrails, window: str, base: int
) -> list[tuple[Span, Detector]]:
    """Findings of the window, scanned from H characters before `base` (the `_MARGIN`
    characters before that are look-behind context only).

    No finding of the whole text straddles `base` (the guard never cuts inside one), so a
    window finding that does is an artefact of starting the scan mid-text: a match that began
    inside an already released one (a JWT's payload segment, a `password=` inside a Bearer
    value whose label is no longer in the window). Such a match would hide the findings after
    it, so that detector's scan resumes just after the artefact's start, as often as needed.
    """
    found = run_detectors(compiled, window, max(0, base - compiled.hold_back))
    stale = {id(d): d for s, d in found if s.start < base < s.end}
    if not stale:
        return drop_fragments(found)
    kept = [(s, d) for s, d in found if id(d) not in stale]
    for key, detector in stale.items():
        spans = [s for s, d in found if id(d) == key]
        while (artefact := _straddling(spans, base)) is not None:
            spans = detector.find(window, artefact.start + 1)
        kept.extend((span, detector) for span in spans)
    return drop_fragments(kept)


def _straddling(spans: list[Span], base: int) -> Span | None:
    return next((s for s in spans if s.start < base < s.end), None)


def _settle(
    found: list[tuple[Span, Detector]], base: int, n: int, final: bool
) -> list[tuple[Span, bool, bool]]:
    """Keep findings starting in the unreleased part; mark each settled (will not change) and
    certain (exists whatever follows); merge same-category overlaps (settled if all members
    are, certain if any is)."""
    marked: list[tuple[Span, bool, bool]] = []
    for span, detector in found:
        if span.start < base:
            continue
        if final:
            settled = True
        elif detector.open_ended:
            settled = n - span.end >= detector.tail
        else:
            settled = n - span.start >= detector.reach
        marked.append((span, settled, settled or detector.open_ended))
    marked.sort()
    out: list[tuple[Span, bool, bool]] = []
    last: dict[str, int] = {}
    for span, settled, certain in marked:
        i = last.get(span.category)
        if i is not None and span.start < out[i][0].end:
            prev, prev_settled, prev_certain = out[i]
            end = max(prev.end, span.end)
            out[i] = (
                Span(prev.start, end, span.category),
                prev_settled and settled,
                prev_certain or certain,
            )
            continue
        last[span.category] = len(out)
        out.append((span, settled, certain))
    return out
