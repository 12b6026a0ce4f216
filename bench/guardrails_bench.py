"""Guardrails speed: microseconds per KB of typical chat text, every built-in category enabled.

Measures `scan` and `apply` (the input path) and the `StreamGuard` (the output path, text fed
in 16-character deltas, about four tokens each) on clean text and on text with a few findings
per KB (e-mail, phone, card, IBAN, an AWS key id), and the same with a tenant's own patterns
added (custom regexes, one with a look-behind, and a keyword list). Run with
`python -m bench guardrails` (or
`python -m bench.guardrails_bench`); `run()` returns the numbers so the bench driver can print
them. Nothing here asserts a timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from data_plane.guardrails import (
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    KeywordList,
    StreamGuard,
    apply,
    compile_policy,
    scan,
)

TITLE = "microseconds per KB of chat text (4 KB texts; stream: 16-char deltas)"

# An assistant answer as chat models write them: prose, a list, numbers, versions, some code.
_CHAT = (
    "Sure! Here is a summary of the quarterly report. Revenue grew 12% to 4.2 million, "
    "driven by 3 new regions; churn fell from 5.1% to 3.8%.\n\n"
    "**Next steps**\n"
    "1. Migrate the billing service to version 2.1 by 2024-07-01.\n"
    "2. Review section 4 of the design doc with the team.\n"
    "3. Draft a short reply to the customer explaining the schedule.\n\n"
    "```python\n"
    "def retry(fn, attempts=3, delay=0.5):\n"
    "    for i in range(attempts):\n"
    "        try:\n"
    "            return fn()\n"
    "        except TimeoutError:\n"
    "            time.sleep(delay * 2 ** i)\n"
    "```\n"
    "Let me know if you want me to expand on any of these points. "
)
_PII = (
    "The customer, jane.doe@example.com (+44 20 7946 0958), paid with 4111 1111 1111 1111 "
    "from IBAN DE89 3704 0044 0532 0130 00; the logs show key AKIAIOSFODNN7EXAMPLE.\n"
)


def chat_text(size: int, with_pii: bool) -> str:
    """`size` characters of chat text; with PII, one paragraph of findings per ~1 KB."""
    body = ""
    while len(body) < size:
        body += _CHAT
        if with_pii:
            body += _PII
    return body[:size]


def _us_per_kb(fn: Callable[[], object], size: int, min_seconds: float = 0.3) -> float:
    fn()  # warm up
    iterations = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        for _ in range(10):
            fn()
        iterations += 10
        elapsed = time.perf_counter() - start
    return elapsed / iterations * 1e6 / (size / 1024)


def _stream(compiled: CompiledGuardrails, text: str, chunk: int) -> str:
    guard = StreamGuard(compiled)
    out = [guard.feed(text[i : i + chunk]) for i in range(0, len(text), chunk)]
    out.append(guard.finish())
    return "".join(out)


_TENANT = GuardrailPolicy(
    custom_regexes=(CustomRegex("project", (r"PRJ-\d{4,8}", r"(?<=ticket )[A-Z]{2,5}-\d+")),),
    keyword_lists=(KeywordList("codenames", ("falcon", "blue moon", "nightjar")),),
)


def run(size: int = 4096, chunk: int = 16) -> dict[str, float]:
    compiled = compile_policy(GuardrailPolicy())
    results: dict[str, float] = {}
    for label, with_pii in (("clean", False), ("with PII", True)):
        text = chat_text(size, with_pii)
        results[f"{label}: scan"] = _us_per_kb(partial(scan, compiled, text), size)
        results[f"{label}: apply"] = _us_per_kb(partial(apply, compiled, text), size)
        results[f"{label}: stream"] = _us_per_kb(partial(_stream, compiled, text, chunk), size)
    tenant = compile_policy(_TENANT)
    text = chat_text(size, True)
    results["with PII, tenant: scan"] = _us_per_kb(partial(scan, tenant, text), size)
    results["with PII, tenant: stream"] = _us_per_kb(partial(_stream, tenant, text, chunk), size)
    return results


def main() -> None:
    print(TITLE)
    for name, value in run().items():
        print(f"  {name:<20} {value:>10.1f}")


if __name__ == "__main__":
    main()
