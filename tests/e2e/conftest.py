"""The real system as separate processes: control-plane web and gRPC, and a data plane, on
free ports, with its own database (a fresh PostgreSQL database when DATABASE_URL is set,
else a SQLite file)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import Stack
from shared.crypto import new_aes_key

pytestmark = pytest.mark.e2e


@dataclass
class ControlPlaneAPI:
    """A tiny client of the control plane's REST API, as a platform team's script would use."""

    base_url: str
    token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/api/v1/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def all(self, path: str) -> list[dict[str, Any]]:
        """Every row of a paginated list (the API serves pages of at most 1,000)."""
        rows: list[dict[str, Any]] = []
        separator = "&" if "?" in path else "?"
        while True:
            page = self.call("GET", f"{path}{separator}limit=1000&offset={len(rows)}")
            rows += page["results"]
            if not page["next"]:
                return rows

    def one(self, path: str) -> dict[str, Any]:
        results = self.call("GET", path)["results"]
        assert len(results) == 1, results
        return dict(results[0])


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    import os

    base = os.environ.get("DATABASE_URL")
    if not base:
        path = tmp_path_factory.mktemp("db") / "asc.sqlite3"
        yield {"ASC_SQLITE_PATH": str(path)}
        return
    import psycopg

    name = f"asc_e2e_{uuid.uuid4().hex[:10]}"
    server, _, _ = base.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": f"{server}/{name}"}
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class System:
    stack: Stack
    api: ControlPlaneAPI
    demo_key: str
    tmp: Path
    # SDK clients the tests opened, closed when the system stops (no leaked sockets).
    clients: list[Any] = field(default_factory=list)


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, database_url: dict[str, str]
) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("asc")
    env = {
        **database_url,
        "ASC_CREDENTIAL_KEY": new_aes_key(),
        "ASC_SEAL_KEY": new_aes_key(),
        "ASC_DJANGO_SECRET_KEY": new_aes_key(),
        "ASC_AUDIT_SIGNING_KEY": new_aes_key(),
        "ASC_DEBUG": "1",
    }
    stack = Stack(state_dir=tmp, env=env, web_port=0, grpc_port=0, dp_port=0, log_dir=tmp / "logs")
    stack.manage("migrate", "--noinput", capture=True)
    key_file = tmp / "demo-key"
    stack.manage(
        "asc_demo", "--key-file", str(key_file), "--admin-password", "e2e-pass", capture=True
    )
    token_output = stack.manage("drf_create_token", "admin", capture=True)
    token = token_output.split("Generated token ")[1].split()[0]
    clients: list[Any] = []
    try:
        stack.start_web()
        stack.start_grpc()
        stack.start_data_plane()
        stack.wait_web()
        stack.wait_data_plane()
        yield System(
            stack, ControlPlaneAPI(stack.web_url, token), key_file.read_text().strip(), tmp, clients
        )
    finally:
        for c in clients:
            c.close()
        stack.stop_all()
        for log in sorted((tmp / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-30:]
            print(f"--- {log.name} (last lines) ---", *tail, sep="\n")
