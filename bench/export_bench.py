"""Exports of a period through the REST API (``GET /api/v1/usage/export/``) from PostgreSQL:
rows per second (of wall clock, and of the exporting process's CPU time, which a busy machine
does not skew) and the process's resident memory at 10k, 100k and 1M usage records, in NDJSON
and CSV. Memory must stay flat: the rows come through a server-side cursor a chunk
at a time and are streamed, never gathered in a list.

Measured on a temporary database (``bench.scratch_db``) in a separate process
(``bench.export_worker``). Skipped, with the reason, when PostgreSQL cannot be reached.
``ASC_BENCH_EXPORT_ROWS`` (comma separated) changes the sizes.
"""

from __future__ import annotations

import os

from bench.report import Report
from bench.scratch_db import Unreachable, run_worker

TITLE = "usage export of a period through the API (NDJSON, CSV), PostgreSQL"

SIZES = os.environ.get("ASC_BENCH_EXPORT_ROWS", "10000,100000,1000000")
FLAT_MIB = 32.0  # the peak may grow by this much from the smallest export to the largest
TARGET_ROWS_PER_S = 20_000.0  # a million rows in under a minute of one core


def run() -> Report:
    report = Report()
    try:
        figures = run_worker("bench.export_worker", [SIZES], timeout=1800)
    except Unreachable as exc:
        report.note(str(exc))
        report.skip("usage export", "PostgreSQL unreachable", "flat memory")
        return report
    runs = figures["runs"]
    report.table(
        ["format", "rows", "s", "rows/s", "rows/CPU-s", "MiB out", "RSS before", "RSS peak"],
        [
            [
                r["format"],
                f"{r['rows']:,}",
                r["seconds"],
                r["rows_per_s"],
                r["rows_per_cpu_s"],
                r["mib"],
                r["rss_before_mib"],
                r["rss_peak_mib"],
            ]
            for r in runs
        ],
    )
    report.note(
        f"{max(r['rows'] for r in runs):,} records stored in {figures['fill_seconds']:.1f} s; "
        f"the worker's peak RSS over the whole run: {figures['max_rss_mib']:.0f} MiB. RSS in "
        "MiB; rows/CPU-s: rows per CPU second of the exporting process (PostgreSQL's apart)."
    )
    for fmt in ("ndjson", "csv"):
        mine = sorted((r for r in runs if r["format"] == fmt), key=lambda r: r["rows"])
        growth = mine[-1]["rss_peak_mib"] - mine[0]["rss_peak_mib"]
        report.check(
            f"{fmt} export memory, {mine[0]['rows']:,} -> {mine[-1]['rows']:,} rows",
            f"peak RSS +{growth:.1f} MiB",
            f"<= +{FLAT_MIB:.0f} MiB (flat)",
            growth <= FLAT_MIB,
        )
        speed = mine[-1]["rows_per_cpu_s"]  # wall-clock rows/s in the table depend on load
        report.check(
            f"{fmt} export cost at {mine[-1]['rows']:,} rows",
            f"{speed:,.0f} rows per CPU second",
            f">= {TARGET_ROWS_PER_S:,.0f}",
            speed >= TARGET_ROWS_PER_S,
        )
    return report
