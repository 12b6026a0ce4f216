"""Guardrails speed: microseconds per KB of text, input scan and streamed output.

Run with `python -m bench.guardrails_bench`. `run()` returns the numbers as a dict so a bench
driver can collect them; nothing here asserts a timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from data_plane.guardrails import GuardrailPolicy, StreamGuard, apply, compile_policy
from data_plane.guardrails.engine import CompiledGuardrails

_PROSE = (
    "The quarterly report shows revenue grew 12% to 4.2 million, driven by 3 new regions. "
    "Please summarise the key risks, list the next steps for the team, and draft a short "
    "reply to the customer explaining that the migration is scheduled for next week. "
    "Version 2.1 of the client adds retries; see section 4 of the design for details. "
)
_FINDINGS = (
    "Contact jane.doe@example.com or +44 20 7946 0958. Card 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00, key AKIAIOSFODNN7EXAMPLE. "
)


def _text(size: int, with_findings: bool) -> str:
    body = ""
    while len(body) < size:
        body += _PROSE
        if with_findings and len(body) < size:
            body += _FINDINGS
    return body[:size]


def _per_kb(fn: Callable[[], object], size: int, min_seconds: float = 0.3) -> float:
    fn()  # warm up
    iterations = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        for _ in range(20):
            fn()
        iterations += 20
        elapsed = time.perf_counter() - start
    return elapsed / iterations * 1e6 / (size / 1024)


def _stream(compiled: CompiledGuardrails, text: str, chunk: int) -> str:
    guard = StreamGuard(compiled)
    out = [guard.feed(text[i : i + chunk]) for i in range(0, len(text), chunk)]
    out.append(guard.finish())
    return "".join(out)


def run(size: int = 4096, chunk: int = 16) -> dict[str, float]:
    """Microseconds per KB for clean text and text with a few findings (all categories on)."""
    compiled = compile_policy(GuardrailPolicy())
    results: dict[str, float] = {}
    for label, with_findings in (("clean", False), ("findings", True)):
        text = _text(size, with_findings)
        results[f"input_{label}_us_per_kb"] = _per_kb(lambda t=text: apply(compiled, t), size)
        results[f"stream_{label}_us_per_kb"] = _per_kb(
            lambda t=text: _stream(compiled, t, chunk), size
        )
    return results


def main() -> None:
    results = run()
    print(f"{'guardrails (4 KB text, 16-char stream chunks)':<48} {'us/KB':>10}")
    for name, value in results.items():
        print(f"{name.removesuffix('_us_per_kb'):<48} {value:>10.1f}")


if __name__ == "__main__":
    main()
