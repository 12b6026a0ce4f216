"""Usage ingestion into PostgreSQL: events per second through
``control_plane.usage.services.ingest_batch`` (COPY straight into the tables), in batches of 500
as the data planes send them.

Measured on a temporary database (``bench.scratch_db``) in a separate process
(``bench.ingest_worker``, which sets up Django on it and migrates it). Three runs:
usage events alone, usage events with their audit records (what a data plane really sends:
the audit chain is checked and stored in the same transaction), and the latter from two nodes
at once (batches in flight side by side, as the gRPC process's ingest threads take them).
Skipped, with the reason, when PostgreSQL cannot be reached.
"""

from __future__ import annotations

from bench.ingest_worker import IN_FLIGHT
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
                (f"same, {IN_FLIGHT} batches in flight", "in_flight"),
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
        f"events/s. In flight: {IN_FLIGHT} nodes' batches at once, each on a thread and "
        f"connection of its own as in the gRPC process (ms per batch: one node's)."
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
    flight = figures["in_flight_events_per_s"]
    report.check(
        f"usage ingestion with audit records, {IN_FLIGHT} batches in flight",
        f"{flight:,.0f} events/s",
        f">= {TARGET:,.0f}",
        flight >= TARGET,
    )
    return report
