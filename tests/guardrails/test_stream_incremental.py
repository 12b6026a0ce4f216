"""The stream guard is incremental: the automaton reads each character once, tenant patterns
(taken by the automaton or not) stream as they scan, and text is released as soon as no
finding can start in it."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.guardrails import (
    Action,
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    StreamGuard,
    apply,
    compile_policy,
)
from data_plane.guardrails.automaton import HitStream, Scanner
from tests.guardrails.test_automaton import ALL, CUSTOM, texts
from tests.guardrails.test_stream import LETTER, PROSE, split

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def released(compiled: CompiledGuardrails, chunks: Sequence[str], step: int) -> tuple[str, bool]:
    guard = StreamGuard(compiled, step=step)
    out = "".join(guard.feed(chunk) for chunk in chunks) + guard.finish()
    return out, guard.blocked


@PROPERTY
@given(text=texts(), data=st.data())
def test_tenant_patterns_stream_as_they_scan(text: str, data: st.DataObject) -> None:
    """Transpiled patterns, patterns with their own pass, keyword lists, non-ASCII text."""
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=30))
    step = data.draw(st.sampled_from([1, 4, 32]))
    for compiled in (ALL, CUSTOM):
        guard = StreamGuard(compiled, step=step)
        out = "".join(guard.feed(chunk) for chunk in split(text, cuts)) + guard.finish()
        whole = apply(compiled, text)
        assert out == whole.text
        assert guard.verdict == whole.verdict


class _Reading:
    """A scanner whose automaton stream records what it is given to read."""

    def __init__(self, scanner: Scanner) -> None:
        self._scanner = scanner
        self.read: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._scanner, name)

    def stream(self) -> _ReadingStream:
        inner = self._scanner.stream()
        assert inner is not None
        return _ReadingStream(inner, self.read)


class _ReadingStream:
    def __init__(self, inner: HitStream, read: list[str]) -> None:
        self._inner = inner
        self._read = read

    def scan(self, text: str) -> object:
        self._read.append(text)
        return self._inner.scan(text)

    def close(self) -> None:
        self._inner.close()


def test_the_automaton_reads_each_character_once() -> None:
    reading = _Reading(CUSTOM.scanner)
    compiled = dataclasses.replace(CUSTOM, scanner=reading)  # type: ignore[arg-type]
    text = (LETTER + " PRJ-123456 falcon ") * 3
    guard = StreamGuard(compiled, step=8)
    out = "".join(guard.feed(text[i : i + 5]) for i in range(0, len(text), 5)) + guard.finish()
    assert out == apply(CUSTOM, text).text
    assert "".join(reading.read) == text
    assert len(reading.read) > 10  # in pieces, as the text came


def test_what_is_released_reaches_where_a_finding_could_still_start() -> None:
    """The guard works when the held text would pass H + step characters; it then releases up
    to where a finding could still start: on prose, within an e-mail's local part (at most 64
    characters and the "@") of the end, not `hold_back` (the largest reach) characters."""
    step = 8
    guard = StreamGuard(ALL, step=step)
    text = " ".join(PROSE) * 4
    out = ""
    releases = 0
    for fed in range(1, len(text) + 1):
        piece = guard.feed(text[fed - 1])
        out += piece
        assert text.startswith(out)
        assert len(out) >= fed - ALL.hold_back - step
        if piece:
            releases += 1
            assert fed - len(out) <= 65
    assert ALL.hold_back == 131
    assert releases > 3
    assert out + guard.finish() == text


def test_a_blocking_tenant_pattern_releases_nothing_of_its_match() -> None:
    compiled = compile_policy(
        GuardrailPolicy(
            actions={"custom:project": Action.BLOCK},
            custom_regexes=(CustomRegex("project", (r"(?<=code )PRJ-\d{4,8}", r"(z)\1-\d+")),),
        )
    )
    for secret in ("code PRJ-123456", "zz-4242"):
        text = f"{PROSE[1] * 3} {secret} {PROSE[2] * 3}"
        for chunks in (list(text), split(text, range(0, len(text), 7)), [text]):
            out, blocked = released(compiled, chunks, step=4)
            assert blocked
            assert secret[-4:] not in out
            assert apply(compiled, text).text.startswith(out)


def test_abandoned_and_finished_guards_free_their_automaton_state() -> None:
    for _ in range(300):
        guard = StreamGuard(CUSTOM, step=1)
        guard.feed(LETTER[:200])
        del guard
    gc.collect()
    guard = StreamGuard(CUSTOM)
    guard.feed("jane@example.com and PRJ-1234 ")
    assert guard.finish() == "[EMAIL] and [CUSTOM:TENANT] "
    assert guard.finish() == ""
    assert guard.feed("more") == ""


def test_a_position_already_decided_is_not_decided_again_without_its_context() -> None:
    """A tenant pattern's hits overlap (one for every end of a match of its widened form); a
    position decided once stays decided, even after the text before it has been released and
    its look-behind (here the word boundary of `\\bK\\w+`) could no longer see it. The
    chunking is one the property test above once found."""
    chunks = [
        "256", ".1.1.1", "4", "111 1111 1", "111 11", "11-2024IB", "AN DE89", " 370",
        "4 0044 053", "2 0130 00 thanksXAKIAI", "OSFODNN7EXAMP", "LEASIAY34FZKBOKMUTVV7A,3 ",
        "85 05 78 006", " 0", "84 ", "91port", "able 06 12 34", " 56 78BE68 5390 075",
        "4 7034", "+1-800-555-0199",
    ]  # fmt: skip
    text = "".join(chunks)
    assert "[CUSTOM:TENANT]" not in apply(CUSTOM, text).text
    assert released(CUSTOM, chunks, step=32)[0] == apply(CUSTOM, text).text
