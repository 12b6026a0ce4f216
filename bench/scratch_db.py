"""A benchmark worker on a database of its own: a temporary PostgreSQL database
``asc_bench_<random>`` on the server named by DATABASE_URL (default: the machine's PostgreSQL
at 127.0.0.1:5432, user postgres), handed to a worker process that sets up Django on it,
migrates it and prints one JSON object of figures; the database is dropped afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from bench.procs import REPO
from shared.crypto import new_aes_key

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class Unreachable(Exception):
    """No PostgreSQL to measure against."""


def server_url() -> str:
    return (os.environ.get("DATABASE_URL") or DEFAULT_URL).rpartition("/")[0]


def run_worker(module: str, args: list[str], timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m module args`` on a fresh database; its figures (stdout, JSON)."""
    try:
        import psycopg

        admin = psycopg.connect(f"{server_url()}/postgres", autocommit=True, connect_timeout=3)
    except Exception as exc:  # any failure to connect means: no PostgreSQL to measure against
        raise Unreachable(f"PostgreSQL unreachable at {server_url()}: {exc}") from exc
    name = f"asc_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            env = {
                **os.environ,
                "DATABASE_URL": f"{server_url()}/{name}",
                "DJANGO_SETTINGS_MODULE": "control_plane.settings",
                "ASC_DEBUG": "0",  # as in production: DEBUG would log every query
                "ASC_DJANGO_SECRET_KEY": new_aes_key(),
                "ASC_CREDENTIAL_KEY": new_aes_key(),
                "ASC_SEAL_KEY": new_aes_key(),
                "ASC_LOG_LEVEL": "WARNING",
                "ASC_ALLOWED_HOSTS": "testserver,localhost",
            }
            out = subprocess.run(
                [sys.executable, "-m", module, *args],
                cwd=REPO,
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
            ).stdout
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    figures: dict[str, Any] = json.loads(out)
    return figures
