"""The cache key of a request (pure).

The key is a SHA-256 over everything that decides the answer and whose answer it is: the
tenant and the route (so no tenant, and no key the route is not granted to, can reach
another's entry: the route is authorised before the key is computed), the route's targets
(another model behind the same name answers differently), the client's wire format and
stream flag (an entry is replayed as the bytes that were sent), the version and beta headers
passed upstream, the output guardrail policy (it may change the answer's text: an answer is
never served under another policy than the one it passed), and the request body as it would
go upstream (after input guardrails' redactions) in canonical JSON: keys sorted, no
whitespace. No field of the body is left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

# Part of every key: a change of the entry format or of this function starts afresh.
VERSION = "asc-cache-v1"


def cache_key(
    *,
    tenant_id: str,
    route_id: str,
    targets: Iterable[str],
    wire: str,
    stream: bool,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    output_policy: str = "",
) -> str:
    """The hex digest naming one request's cached answer. ``targets``: what the route's
    targets are (provider models, in order); ``output_policy``: the fingerprint of the output
    guardrail policy the answer passes ("" when none)."""
    head = orjson.dumps(
        [
            VERSION,
            tenant_id,
            route_id,
            list(targets),
            wire,
            stream,
            sorted((name.lower(), value) for name, value in headers.items()),
            output_policy,
        ]
    )
    canonical = orjson.dumps(
        body if isinstance(body, dict) else dict(body), option=orjson.OPT_SORT_KEYS
    )
    digest = hashlib.sha256(head)
    digest.update(b"\n")
    digest.update(canonical)
    return digest.hexdigest()
