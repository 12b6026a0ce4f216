"""Usage ingestion into PostgreSQL: events per second through
``control_plane.usage.services.ingest_batch`` (COPY into a temporary table, then one INSERT ...
ON CONFLICT), in batches of 500 as the data planes send them.

A temporary database ``asc_bench_<random>`` is created on the server named by DATABASE_URL
(default: the machine's PostgreSQL at 127.0.0.1:5432, user postgres), migrated, measured in a
separate process (``bench.ingest_worker``, which sets up Django on it) and dropped. Two runs:
usage events alone, and usage events with their audit records (what a data plane really sends:
the audit chain is checked and stored in the same transaction). Skipped, with the reason, when
PostgreSQL cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from bench.procs import REPO
from bench.report import Report
from shared.crypto import new_aes_key

TITLE = "usage ingestion into PostgreSQL (ingest_batch, batches of 500)"

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCHES = 60
TARGET = 20_000.0


def _server_url() -> str:
    return (os.environ.get("DATABASE_URL") or DEFAULT_URL).rpartition("/")[0]


def run() -> Report:
    report = Report()
    try:
        import psycopg

        admin = psycopg.connect(f"{_server_url()}/postgres", autocommit=True, connect_timeout=3)
    except Exception as exc:  # any failure to connect means: no PostgreSQL to measure against
        report.note(f"PostgreSQL unreachable at {_server_url()}: {exc}")
        report.skip("usage ingestion", "PostgreSQL unreachable", f">= {TARGET:,.0f} events/s")
        return report
    name = f"asc_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            env = {
                **os.environ,
                "DATABASE_URL": f"{_server_url()}/{name}",
                "DJANGO_SETTINGS_MODULE": "control_plane.settings",
                "ASC_DEBUG": "0",  # as in production: DEBUG would log every query
                "ASC_DJANGO_SECRET_KEY": new_aes_key(),
                "ASC_CREDENTIAL_KEY": new_aes_key(),
                "ASC_SEAL_KEY": new_aes_key(),
                "ASC_LOG_LEVEL": "WARNING",
            }
            out = subprocess.run(
                [sys.executable, "-m", "bench.ingest_worker", str(BATCHES)],
                cwd=REPO,
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            ).stdout
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    figures = json.loads(out)
    usage = figures["usage_events_per_s"]
    both = figures["usage+audit_events_per_s"]
    report.table(
        ["batches of 500", "events/s", "ms per batch"],
        [
            ["usage events only", usage, figures["usage_ms_per_batch"]],
            ["usage events + audit records", both, figures["usage+audit_ms_per_batch"]],
        ],
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
