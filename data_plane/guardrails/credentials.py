"""Secret detectors: API keys and tokens, credential assignments, PEM private key blocks.

Token-shaped secrets are open-ended: a finding is certain once its prefix and a bounded number
of characters have been seen (`sk-` plus 20 characters with an upper-case letter or a digit in
the first 48, a PEM header, ...) and then extends over the rest of the token's run. That is what
lets the streaming guard block on a key before its tail has even been generated. Fixed-length
ids (AWS access key ids, Google API keys) are bounded and decided by the character after them.

Each pattern is also a chain (see `chains`), tried where its triggers say a match may start:
the key prefix with a few characters of its body, the label of an assignment with the
character after it.
"""

from __future__ import annotations

import re

from data_plane.guardrails.chains import END, RegexChain, whole_match
from data_plane.guardrails.spans import CREDENTIAL, PRIVATE_KEY, Span, Trigger

FIXED_LITERALS = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA")

_FIXED = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}"
    r"|AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])"
)

_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"gh[pousr]_[A-Za-z0-9]{36,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|sk-(?=[a-z_-]{0,47}[A-Z0-9])[A-Za-z0-9_-]{20,}"
    r"|eyJ[A-Za-z0-9_-]{17,}(?:\.[A-Za-z0-9_-]+){0,2}"
    r")"
)

_VALUE = r"[^\s\"'<>,;`]"
_LABEL = (
    r"(?i:password|passwd|pwd|pass|secret|secret[_-]?key|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|auth[_-]?token|access[_-]?token|refresh[_-]?token"
    r"|api[_-]?token|bearer[_-]?token)(?![A-Za-z0-9])[\"']?[ \t]*"
)
# `label = value` and `label: "value"` are code or config: any value of 4+ characters; a
# quoted value runs to its closing quote (or the end of the line), spaces included. An
# unquoted `label: value` may be prose, so the value needs a digit or symbol in its first 16.
_ASSIGNMENT = re.compile(
    _LABEL + r"(?:[=:][ \t]*\"([^\"\r\n]{4,})|[=:][ \t]*'([^'\r\n]{4,})"
    r"|=[ \t]*(" + _VALUE + r"{4,})"
    r"|:[ \t]*(?=" + _VALUE + r"{0,15}[^A-Za-z\s])(" + _VALUE + r"{4,}))"
    r"|(?<![A-Za-z0-9])(?i:bearer)[ \t]+(?=[a-z._~+/=-]{0,47}[A-Z0-9])([A-Za-z0-9._~+/=-]{16,})"
)


FIXED_CHAIN = RegexChain(
    _FIXED,
    whole_match(CREDENTIAL),
    (
        Trigger("(?:" + "|".join(FIXED_LITERALS) + ")[A-Z0-9]{4}", 8),
        Trigger("AIza[0-9A-Za-z_-]{4}", 8),
    ),
    need=41,
)
TOKEN_CHAIN = RegexChain(
    _TOKEN,
    whole_match(CREDENTIAL),
    (
        Trigger("gh[pousr]_[A-Za-z0-9]{4}", 8),
        Trigger("github_pat_[A-Za-z0-9_]{4}", 15),
        Trigger("xox[abposr]-[A-Za-z0-9-]{4}", 9),
        Trigger("[sr]k_live_[A-Za-z0-9]{4}", 12),
        Trigger("[sr]k_test_[A-Za-z0-9]{4}", 12),
        Trigger("sk-[A-Za-z0-9_-]{4}", 7),
        Trigger("eyJ[A-Za-z0-9_-]{4}", 7),
    ),
    need=72,
    open_ended=True,
)


def _assignment(_text: str, m: re.Match[str]) -> tuple[list[Span], int]:
    group = m.lastindex or 0  # the one value group that took part in the match
    return [Span(m.start(group), m.end(group), CREDENTIAL)], m.end()


# Every label spelling, each followed by what may follow a label (a quote, a blank, = or :).
_JOINED = tuple(
    first + sep + second
    for first, second in (
        ("secret", "key"),
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("client", "secret"),
        ("auth", "token"),
        ("access", "token"),
        ("refresh", "token"),
        ("api", "token"),
        ("bearer", "token"),
    )
    for sep in ("", "_", "-")
)
_LABELS = ("password", "passwd", "pwd", "pass", "secret", *_JOINED)
# Any run of blanks may follow a label: `need` covers about 50.
ASSIGNMENT_CHAIN = RegexChain(
    _ASSIGNMENT,
    _assignment,
    (
        *(Trigger(label + "[\"' \t=:]", len(label) + 1, caseless=True) for label in _LABELS),
        Trigger("bearer[ \t]", 7, caseless=True),
    ),
    need=96,
    open_ended=True,
    tail=1,
)


def fixed_ids(text: str, pos: int = 0) -> list[Span]:
    return FIXED_CHAIN.find(text, pos, END)


def tokens(text: str, pos: int = 0) -> list[Span]:
    return TOKEN_CHAIN.find(text, pos, END)


def assignments(text: str, pos: int = 0) -> list[Span]:
    return ASSIGNMENT_CHAIN.find(text, pos, END)


# A PEM private key block runs to its END line, or to the end of the text when the END line
# never comes (a truncated key is still a key).
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]{1,12} ){0,3})PRIVATE KEY((?: BLOCK)?)-----"
    r"[\s\S]*?(?:-----END \1PRIVATE KEY\2-----|\Z)"
)


PEM_CHAIN = RegexChain(
    _PEM,
    whole_match(PRIVATE_KEY),
    (Trigger("-----BEGIN ", 11),),
    need=80,
    open_ended=True,
    tail=1,
)


def private_keys(text: str, pos: int = 0) -> list[Span]:
    return PEM_CHAIN.find(text, pos, END)
