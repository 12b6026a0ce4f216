"""The real system as separate processes: control-plane web and gRPC, and a data plane, on
free ports, with its own database (a fresh PostgreSQL database when DATABASE_URL is set,
else a SQLite file)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import ControlPlaneAPI, Stack, free_ports, fresh_database
from shared.crypto import new_aes_key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with fresh_database(tmp_path_factory.mktemp("db"), "asc_e2e") as env:
        yield env


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
            stack,
            ControlPlaneAPI(stack.web_url, token, timeout=10),
            key_file.read_text().strip(),
            tmp,
            clients,
        )
    finally:
        for c in clients:
            c.close()
        stack.stop_all()
        for log in sorted((tmp / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-30:]
            print(f"--- {log.name} (last lines) ---", *tail, sep="\n")


@contextlib.contextmanager
def more_data_planes(system: System, prefix: str, count: int) -> Iterator[list[Stack]]:
    """``count`` more data planes on the system's control plane, named ``<prefix>-1`` on;
    yields every data plane, the system's own first."""
    extra = [
        dataclasses.replace(system.stack, dp_port=port, node_id=f"{prefix}-{i}", procs={})
        for i, port in enumerate(free_ports(count), start=1)
    ]
    for stack in extra:
        stack.start_data_plane()
    try:
        for stack in extra:
            stack.wait_data_plane()
        yield [system.stack, *extra]
    finally:
        for stack in extra:
            stack.stop_all()
