"""Secret detectors: API keys and tokens, credential assignments, PEM private key blocks.

Token-shaped secrets are open-ended: a finding is certain once its prefix and a bounded number
of characters have been seen (`sk-` plus 20 characters with an upper-case letter or a digit in
the first 48, a PEM header, ...) and then extends over the rest of the token's run. That is what
lets the streaming guard block on a key before its tail has even been generated. Fixed-length
ids (AWS access key ids, Google API keys) are bounded and decided by the character after them.
"""

from __future__ import annotations

import re

from data_plane.guardrails.spans import CREDENTIAL, PRIVATE_KEY, Span

# Literals one of which every token finding contains: the gate for `tokens`.
TOKEN_LITERALS = (
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "k_live_", "k_test_", "sk-",
    "eyJ",
)  # fmt: skip
FIXED_LITERALS = ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA")
# Lower-case literals one of which every assignment finding contains (gate on text.lower()).
ASSIGNMENT_LITERALS = ("pass", "pwd", "secret", "key", "token", "bearer")

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


def fixed_ids(text: str, pos: int = 0) -> list[Span]:
    return [Span(m.start(), m.end(), CREDENTIAL) for m in _FIXED.finditer(text, pos)]


def tokens(text: str, pos: int = 0) -> list[Span]:
    return [Span(m.start(), m.end(), CREDENTIAL) for m in _TOKEN.finditer(text, pos)]


def assignments(text: str, pos: int = 0) -> list[Span]:
    out: list[Span] = []
    for m in _ASSIGNMENT.finditer(text, pos):
        group = m.lastindex or 0  # the one value group that took part in the match
        out.append(Span(m.start(group), m.end(group), CREDENTIAL))
    return out


# A PEM private key block runs to its END line, or to the end of the text when the END line
# never comes (a truncated key is still a key).
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]{1,12} ){0,3})PRIVATE KEY((?: BLOCK)?)-----"
    r"[\s\S]*?(?:-----END \1PRIVATE KEY\2-----|\Z)"
)


def private_keys(text: str, pos: int = 0) -> list[Span]:
    return [Span(m.start(), m.end(), PRIVATE_KEY) for m in _PEM.finditer(text, pos)]
