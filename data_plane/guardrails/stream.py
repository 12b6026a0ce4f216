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
of the held text plus H characters of already released context (for look-behinds) every
`step` characters (default 32), so its CPU cost is that of scanning roughly (2H + step) / step
times the output, and a block is reported within `step` characters of becoming certain.

The guard is pure: no I/O, no clock; its only state is the held text and the counts.
"""

from __future__ import annotations

from data_plane.guardrails.engine import (
    Action,
    CompiledGuardrails,
    Verdict,
    redaction_regions,
    render,
    run_detectors,
    verdict_from_counts,
)
from data_plane.guardrails.spans import Detector, Span


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
        self._ctx = ""  # the last H released characters, context for look-behinds
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
        findings = _settle(run_detectors(compiled, window), base, n, final)
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
        regions = redaction_regions(compiled, (s for s, _, _ in findings))
        for region in regions:
            if region.start < cut < region.end:
                cut = region.start
        if cut <= base:
            self._schedule(hold)
            return ""

        for span, _, _ in findings:
            if span.start < cut:
                self._counts[span.category] = self._counts.get(span.category, 0) + 1
        released = render(compiled, window, [r for r in regions if r.end <= cut], base, cut)
        self._ctx = window[max(0, cut - hold) : cut]
        self._buf = window[cut:]
        self._schedule(hold)
        return released

    def _schedule(self, hold: int) -> None:
        held = len(self._buf)
        self._scan_at = held + max(self._step, (held - hold) // 4)


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
