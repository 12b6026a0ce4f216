"""`python -m bench [name ...]`: run the named benchmarks (all by default) and print them.

To add one, write a module with `TITLE: str` and `run()` and list it in `BENCHMARKS`. `run()`
returns either a dict of figures (printed one per line) or a `bench.report.Report` (tables,
notes, and figures checked against their targets). A benchmark that fails is reported and the
others still run; the exit status is then 1. Targets are reported as PASS/MISS, never
asserted: a MISS does not fail the run.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import NamedTuple

from bench import (
    decision_bench,
    export_bench,
    fleet_bench,
    gateway_bench,
    guardrails_bench,
    ingest_bench,
    loss_bench,
    push_bench,
    snapshot_scale_bench,
    stream_bench,
)
from bench.report import Check, Report


class Benchmark(NamedTuple):
    title: str
    run: Callable[[], dict[str, float] | Report]


BENCHMARKS: dict[str, Benchmark] = {
    "guardrails": Benchmark(guardrails_bench.TITLE, guardrails_bench.run),
    "decision": Benchmark(decision_bench.TITLE, decision_bench.run),
    "snapshot": Benchmark(snapshot_scale_bench.TITLE, snapshot_scale_bench.run),
    "ingest": Benchmark(ingest_bench.TITLE, ingest_bench.run),
    "export": Benchmark(export_bench.TITLE, export_bench.run),
    "push": Benchmark(push_bench.TITLE, push_bench.run),
    "fleet": Benchmark(fleet_bench.TITLE, fleet_bench.run),
    "gateway": Benchmark(gateway_bench.TITLE, gateway_bench.run),
    "stream": Benchmark(stream_bench.TITLE, stream_bench.run),
    "loss": Benchmark(loss_bench.TITLE, loss_bench.run),
}


def _print_figures(results: dict[str, float]) -> None:
    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"  {key:<{width}}  {value:>10.1f}")


def _print_report(report: Report) -> None:
    for line in report.lines:
        print(f"  {line}")
    for check in report.checks:
        print(f"  {check.line()}")


def main(argv: Sequence[str]) -> int:
    names = list(argv) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    checks: list[tuple[str, Check]] = []
    failed: list[str] = []
    for name in names:
        benchmark = BENCHMARKS[name]
        print(f"{name}: {benchmark.title}", flush=True)
        started = time.perf_counter()
        try:
            results = benchmark.run()
        except Exception:
            traceback.print_exc()
            print(f"{name}: FAILED after {time.perf_counter() - started:.1f} s\n", flush=True)
            failed.append(name)
            continue
        print(f"{name}: done in {time.perf_counter() - started:.1f} s")
        if isinstance(results, Report):
            _print_report(results)
            checks += [(name, check) for check in results.checks]
        else:
            _print_figures(results)
        print(flush=True)
    if checks:
        print("targets (reported, not asserted):")
        for name, check in checks:
            print(f"  [{name}] {check.line()}")
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
