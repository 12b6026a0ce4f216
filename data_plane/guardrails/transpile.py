"""Tenant regular expressions as Hyperscan patterns that match at least wherever Python's do.

The pattern is parsed by Python's own regex parser and written back for Hyperscan over the
shadow of the text (see `automaton.shadow`): every character class becomes the set of shadow
bytes of the characters Python's class matches (checked with Python itself on the ASCII range;
a class that can match a non-ASCII character also takes every byte a non-ASCII character can
become), and what Hyperscan cannot do is widened away: look-arounds, anchors and word boundaries
are dropped, atomic groups and possessive repeats become plain ones. The result can only match
more than the original, so its hits are candidates the chain confirms with Python; it never
loses a match. Back-references and conditionals cannot be widened: such a pattern raises
`Untranslatable` and keeps its own pass (`chains.FallbackRun`).
"""

from __future__ import annotations

import re

# Python's parser is private; Python is pinned to 3.12 (pyproject), where it is `re._parser`.
from re import _constants as sre  # type: ignore[attr-defined]  # private module, no stub
from re import _parser  # type: ignore[attr-defined]  # private module, no stub
from typing import Any

from data_plane.guardrails.automaton import shadow

# Bytes a non-ASCII character can become in the shadow: a decimal digit ("0"), a letter that
# case-insensitive matching equates with an ASCII one, or any other character (0x80); and those
# of the non-ASCII characters each category matches.
_WIDE = frozenset({0x80, ord("0"), ord("i"), ord("k"), ord("s")})
_NEVER = "\\xff"  # a byte the shadow never holds: the class that matches nothing
_CATEGORIES = {
    sre.CATEGORY_DIGIT: ("\\d", frozenset({ord("0")})),
    sre.CATEGORY_NOT_DIGIT: ("\\D", _WIDE - {ord("0")}),
    sre.CATEGORY_SPACE: ("\\s", frozenset({0x80})),
    sre.CATEGORY_NOT_SPACE: ("\\S", _WIDE),
    sre.CATEGORY_WORD: ("\\w", _WIDE),
    sre.CATEGORY_NOT_WORD: ("\\W", frozenset({0x80})),
}
_CLASS_FLAGS = re.IGNORECASE | re.ASCII | re.DOTALL | re.UNICODE
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_DROPPED = (sre.AT, sre.ASSERT, sre.ASSERT_NOT)


class Untranslatable(ValueError):
    """The pattern uses what no Hyperscan pattern can stand for (a back-reference, ...)."""


def transpile(pattern: str, flags: int = 0) -> str:
    """The Hyperscan pattern (flags: none but SOM) matching at least where `pattern` does."""
    parsed = _parser.parse(pattern, flags)
    return _sequence(parsed, parsed.state.flags)


def _sequence(items: Any, flags: int) -> str:
    return "".join(_node(op, av, flags) for op, av in items)


def _node(op: Any, av: Any, flags: int) -> str:
    if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
        return _emit(_members(op, av, flags))
    if op is sre.BRANCH:
        return "(?:" + "|".join(_sequence(alt, flags) for alt in av[1]) + ")"
    if op is sre.SUBPATTERN:
        _group, add, remove, sub = av
        return "(?:" + _sequence(sub, (flags | add) & ~remove) + ")"
    if op is sre.ATOMIC_GROUP:
        return "(?:" + _sequence(av, flags) + ")"
    if op in _REPEATS:
        low, high, sub = av
        if high == 0:
            return ""
        bound = f"{{{low},}}" if high is sre.MAXREPEAT else f"{{{low},{high}}}"
        return "(?:" + _sequence(sub, flags) + ")" + bound
    if op in _DROPPED:
        return ""
    raise Untranslatable(f"regex construct {op} has no automaton equivalent")


def _members(op: Any, av: Any, flags: int) -> set[int]:
    """The shadow bytes of the characters one class (or literal, or `.`) matches."""
    caseless = bool(flags & re.IGNORECASE)
    if op is sre.LITERAL and not caseless:
        return {shadow(chr(av))[0]}
    if op is sre.LITERAL and av < 128 and not flags & re.ASCII:
        return {ord(chr(av).lower()), ord(chr(av).upper())}
    source, wide = _python_class(op, av)
    scoped = flags & _CLASS_FLAGS
    if scoped & re.ASCII:  # `(?a:...)` inside a pattern that is Unicode elsewhere
        scoped &= ~re.UNICODE
    matcher = re.compile(source, scoped)
    return {b for b in range(128) if matcher.fullmatch(chr(b))} | wide


def _python_class(op: Any, av: Any) -> tuple[str, frozenset[int]]:
    """Python source for the class alone, and the bytes of the non-ASCII characters it may
    match (all of them when that is not simple to tell)."""
    if op is sre.ANY:
        return ".", _WIDE
    if op is sre.LITERAL:  # case-insensitive here
        return _char(av), _WIDE if av >= 128 else frozenset()
    if op is sre.NOT_LITERAL:
        return f"[^{_char(av)}]", _WIDE
    parts: list[str] = []
    wide: frozenset[int] = frozenset()
    for item, value in av:
        if item is sre.NEGATE:
            parts.insert(0, "^")
            wide = _WIDE
        elif item is sre.LITERAL:
            parts.append(_char(value))
            wide = wide | _WIDE if value >= 128 else wide
        elif item is sre.RANGE:
            parts.append(f"{_char(value[0])}-{_char(value[1])}")
            wide = wide | _WIDE if value[1] >= 128 else wide
        elif item is sre.CATEGORY and value in _CATEGORIES:
            source, extra = _CATEGORIES[value]
            parts.append(source)
            wide = wide | extra
        else:
            raise Untranslatable(f"character class item {item} has no automaton equivalent")
    return "[" + "".join(parts) + "]", wide


def _char(code: int) -> str:
    return f"\\U{code:08x}"


def _emit(members: set[int]) -> str:
    if not members:
        return _NEVER
    ranges: list[str] = []
    ordered = sorted(members)
    start = prev = ordered[0]
    for b in [*ordered[1:], -1]:
        if b == prev + 1:
            prev = b
            continue
        ranges.append(f"\\x{start:02x}" if start == prev else f"\\x{start:02x}-\\x{prev:02x}")
        start = prev = b
    return "[" + "".join(ranges) + "]"
