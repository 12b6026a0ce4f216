"""The automaton: one Hyperscan pass over a text reports the candidates of every chain.

Hyperscan reads bytes; it reads the *shadow* of the text, one byte per character so that
offsets are character positions: ASCII stays as it is, a non-ASCII decimal digit becomes "0",
the four non-ASCII letters Python's case-insensitive matching equates with an ASCII one (İ ı ſ
K) become that letter, and every other non-ASCII character becomes 0x80. Trigger patterns are
written for the shadow so that they match wherever the chain's regex could (see
`spans.Trigger`); a newline is put before the text, so that a trigger's context character (the
one before a candidate) also matches at the start.

The built-in triggers are compiled once (block mode for whole texts, stream mode for the stream
guard); a policy's own patterns (custom regexes, keyword lists) are compiled with the policy,
with start of match. Scanning uses each database's scratch space, so scans must not run from
several threads at once (the data plane scans on its event loop).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import hyperscan

from data_plane.guardrails.chains import RegexChain
from data_plane.guardrails.spans import Chain, Detector, Trigger

_FOLDS = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_SPECIAL = re.compile(r"[\u0130\u0131\u017f\u212a]|\d")
_LEAD = b"\n"
_STREAM_SOM = hyperscan.HS_MODE_STREAM | hyperscan.HS_MODE_SOM_HORIZON_MEDIUM

Hits = dict[int, list[tuple[int, int]]]  # by chain index: [first, end) ranges of candidates
Routes = tuple[tuple[int, int, int], ...]


def shadow(text: str) -> bytes:
    """One byte per character of `text` (see the module docstring)."""
    if text.isascii():
        return text.encode("ascii")
    return _NON_ASCII.sub(_shadow_run, text).encode("latin-1")


def _shadow_run(m: re.Match[str]) -> str:
    run = m.group()
    if _SPECIAL.search(run) is None:
        return "\x80" * len(run)
    return "".join(_FOLDS.get(ch) or ("0" if ch.isdecimal() else "\x80") for ch in run)


@dataclass(frozen=True, slots=True, eq=False)
class Catalog:
    """Compiled triggers: databases for whole texts and for streams, and for each pattern id the
    chain it reports for and the trigger."""

    block: hyperscan.Database
    stream: hyperscan.Database
    entries: tuple[tuple[Chain, Trigger], ...]


def compile_catalog(chains: Sequence[Chain], som: bool) -> Catalog | None:
    """Every trigger of `chains` in one pair of databases (None when there is none)."""
    entries = [(chain, trigger) for chain in chains for trigger in chain.triggers]
    if not entries:
        return None
    expressions = [trigger.pattern.encode("ascii") for _, trigger in entries]
    flags = [_flags(trigger, som) for _, trigger in entries]
    ids = list(range(len(entries)))
    block = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    block.compile(expressions=expressions, ids=ids, flags=flags)
    stream = hyperscan.Database(mode=_STREAM_SOM if som else hyperscan.HS_MODE_STREAM)
    stream.compile(expressions=expressions, ids=ids, flags=flags)
    return Catalog(block, stream, tuple(entries))


def accepts(trigger: Trigger) -> bool:
    """Whether Hyperscan compiles `trigger` with start of match, for whole texts and for streams
    (it refuses, for instance, a pattern that can match the empty string)."""
    expression = [trigger.pattern.encode("ascii")]
    try:
        for mode in (hyperscan.HS_MODE_BLOCK, _STREAM_SOM):
            hyperscan.Database(mode=mode).compile(
                expressions=expression, ids=[0], flags=[_flags(trigger, True)]
            )
    except hyperscan.error:
        return False
    return True


def _flags(trigger: Trigger, som: bool) -> int:
    flags = hyperscan.HS_FLAG_CASELESS if trigger.caseless else 0
    return flags | hyperscan.HS_FLAG_SOM_LEFTMOST if som else flags


@dataclass(frozen=True, slots=True, eq=False)
class Scanner:
    """A policy's chains (with their detectors), its fallback patterns, and the catalogs whose
    hits feed the chains: `routes[i]` maps a catalog's pattern id to (chain index or -1 when
    the policy leaves that chain out, trigger width, spread). `back` and `helds` bound where a
    finding whose hit is not reported yet may start (see `spans.Chain.held`)."""

    chains: tuple[tuple[Chain, Detector], ...]
    fallbacks: tuple[tuple[re.Pattern[str], Detector], ...]
    catalogs: tuple[tuple[Catalog, Routes], ...]
    back: int
    helds: tuple[Callable[[str], int], ...]

    def hits(self, text: str) -> Hits:
        """The candidates in `text`, by chain."""
        data = _LEAD + shadow(text)
        out: Hits = {}
        for catalog, routes in self.catalogs:
            catalog.block.scan(data, _router(routes, out), 0, None)
        return out

    def stream(self) -> HitStream | None:
        return HitStream(self) if self.catalogs else None


def build_scanner(detectors: Sequence[Detector], builtin: Catalog | None) -> Scanner:
    """The policy's scanner: its built-in chains fed by the shared `builtin` catalog, the others
    (transpiled tenant patterns) by a catalog of their own. Should the tenant patterns, each
    accepted alone, not compile together, they all keep a pass of their own."""
    shared = {id(chain) for chain, _ in builtin.entries} if builtin is not None else set()
    fallbacks = [(regex, detector) for detector in detectors for regex in detector.fallback]
    pairs = [(chain, detector) for detector in detectors for chain in detector.chains]
    own = [chain for chain, _ in pairs if id(chain) not in shared]
    try:
        custom = compile_catalog(own, som=True)
    except hyperscan.error:
        custom = None
        fallbacks += [
            (c.regex, d) for c, d in pairs if id(c) not in shared and isinstance(c, RegexChain)
        ]
        pairs = [(chain, detector) for chain, detector in pairs if id(chain) in shared]
    chains = tuple(pairs)
    index = {id(chain): i for i, (chain, _) in enumerate(chains)}
    catalogs: list[tuple[Catalog, Routes]] = []
    if builtin is not None:
        routes = tuple((index.get(id(c), -1), t.width, t.spread) for c, t in builtin.entries)
        if any(chain >= 0 for chain, _, _ in routes):
            catalogs.append((builtin, routes))
    if custom is not None:
        catalogs.append((custom, tuple((index[id(c)], 0, 0) for c, _ in custom.entries)))
    back = max((_back(c, d) for c, d in chains if c.held is None), default=0)
    helds = tuple(c.held for c, _ in chains if c.held is not None)
    return Scanner(chains, tuple(fallbacks), tuple(catalogs), back, helds)


def _back(chain: Chain, detector: Detector) -> int:
    """How far before the end of a hit its finding may start."""
    widths = [t.width for t in chain.triggers]
    if 0 in widths:  # start of match: bounded by the detector's reach (see `regex_detector`)
        return detector.reach
    return max(widths) + chain.lead


def _router(routes: Routes, out: Hits) -> Callable[[int, int, int, int, object], None]:
    """The match handler adding a database's hits to `out` as candidates (its offsets count
    the leading newline)."""
    get = out.get

    def route(pattern: int, start: int, end: int, _flags: int, _context: object) -> None:
        chain, width, spread = routes[pattern]
        if chain < 0:
            return
        if width:
            lo = end - 1 - width
            hit = (lo, lo + spread)
        else:
            hit = (max(start - 1, 0), end - 1)
        ranges = get(chain)
        if ranges is None:
            out[chain] = [hit]
        else:
            ranges.append(hit)

    return route


class HitStream:
    """The automaton over a stream: each character is scanned once, the state between chunks is
    Hyperscan's. `close()` frees that state (also done when the object is collected)."""

    __slots__ = ("_hits", "_open", "_pairs", "_started")

    def __init__(self, scanner: Scanner) -> None:
        # The binding's streams keep borrowed references to their database and handler: the
        # databases live in the scanner, the handlers here (they append to `_hits`, cleared,
        # never replaced). `Database.stream` returns one reference too many and `__enter__`
        # (which opens the stream) one too few: called once each, as here, they balance.
        self._hits: Hits = {}
        handlers = [_router(routes, self._hits) for _, routes in scanner.catalogs]
        streams = [
            catalog.stream.stream(handler, 0, None)
            for (catalog, _), handler in zip(scanner.catalogs, handlers, strict=True)
        ]
        for stream in streams:
            stream.__enter__()
        self._pairs = tuple(zip(streams, handlers, strict=True))
        self._open = True
        self._started = False

    def scan(self, text: str) -> Hits:
        """The candidates whose hits end in `text`, the next characters of the stream."""
        data = shadow(text)
        if not self._started:
            data = _LEAD + data
            self._started = True
        for stream, handler in self._pairs:
            stream.scan(data, 0, None, handler, None)
        hits = self._hits
        if not hits:
            return {}
        out = hits.copy()
        hits.clear()
        return out

    def close(self) -> None:
        if not getattr(self, "_open", False):
            return
        self._open = False
        for stream, handler in self._pairs:
            stream.close(match_event_handler=handler)
        self._hits.clear()

    def __del__(self) -> None:
        self.close()
