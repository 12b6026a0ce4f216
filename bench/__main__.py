"""`python -m bench [name ...]`: run the named benchmarks (all by default) and print them.

To add one, write a module with `TITLE: str` and `run() -> dict[str, float]` and list it in
`BENCHMARKS`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from bench import guardrails_bench


class Benchmark(NamedTuple):
    title: str
    run: Callable[[], dict[str, float]]


BENCHMARKS: dict[str, Benchmark] = {
    "guardrails": Benchmark(guardrails_bench.TITLE, guardrails_bench.run),
}


def main(argv: Sequence[str]) -> int:
    names = list(argv) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    for name in names:
        benchmark = BENCHMARKS[name]
        started = time.perf_counter()
        results = benchmark.run()
        print(f"{name}: {benchmark.title} ({time.perf_counter() - started:.1f} s)")
        width = max(len(key) for key in results)
        for key, value in results.items():
            print(f"  {key:<{width}}  {value:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
