"""Usage ingestion into PostgreSQL: events per second through
``control_plane.usage.services.ingest_batch`` (COPY into a temporary table, then one INSERT ...
ON CONFLICT), in batches of 500 as the data planes send them.

Measured on a temporary database (``bench.scratch_db``) in a separate process
(``bench.ingest_worker``, which sets up Django on it and migrates it). Two runs:
usage events alone, and usage events with their audit records (what a data plane really sends:
the audit chain is checked and stored in the same transaction). Skipped, with the reason, when
PostgreSQL cannot be reached.
"""

from __future__ import annotations

from bench.report import Report
from bench.scratch_db import Unreachable, run_worker

TITLE = "usage ingestion into PostgreSQL (ingest_batch, batches of 500)"

BATCHES = 60
TARGET = 20_000.0


def run() -> Report:
    report = Report()
    try:
        figures = run_worker("bench.ingest_worker", [str(BATCHES)])
    except Unreachable as exc:
        report.note(str(exc))
        report.skip("usage ingestion", "PostgreSQL unreachable", f">= {TARGET:,.0f} events/s")
        return report
    usage = figures["usage_events_per_s"]
    both = figures["usage+audit_events_per_s"]
    report.table(
        [
            "batches of 500",
            "events/s",
            "ms per batch",
            "ingest CPU us/event",
            "PostgreSQL CPU us/event",
        ],
        [
            [
                name,
                figures[f"{label}_events_per_s"],
                figures[f"{label}_ms_per_batch"],
                figures[f"{label}_cpu_us_per_event"],
                figures.get(f"{label}_server_cpu_us_per_event"),
            ]
            for name, label in (
                ("usage events only", "usage"),
                ("usage events + audit records", "usage+audit"),
            )
        ],
    )
    report.note(
        "ingest CPU: the ingesting process's own CPU time; PostgreSQL CPU: its backend "
        "serving that process (utime + stime from /proc, '-' when the server is not local); "
        "neither counts PostgreSQL's WAL writer and checkpointer."
    )
    report.note(
        f"{BATCHES - 1} timed batches per run after one warm-up batch; spend roll-up afterwards: "
        f"{figures['rollup_events']:,.0f} events at {figures['rollup_events_per_s']:,.0f} "
        f"events/s."
    )
    report.check(
        "usage ingestion, events only",
        f"{usage:,.0f} events/s",
        f">= {TARGET:,.0f}",
        usage >= TARGET,
    )
    report.check(
        "usage ingestion with audit records (as data planes send)",
        f"{both:,.0f} events/s",
        f">= {TARGET:,.0f}",
        both >= TARGET,
    )
    return report
