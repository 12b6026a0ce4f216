"""Start and stop the whole ASC system as separate processes.

Used by `make run` (scripts/run_local.py), the end-to-end tests and the benchmarks, so all
exercise the same commands an operator would run: `manage.py migrate`, `manage.py asc_demo`,
`manage.py runserver`, `manage.py run_grpc` and `python -m data_plane`. Also here: a fresh
database for one installation, and a small client of its REST API.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.crypto import new_aes_key

REPO = Path(__file__).resolve().parent.parent
MANAGE = str(REPO / "manage.py")


@contextmanager
def fresh_database(state_dir: Path, prefix: str = "asc") -> Iterator[dict[str, str]]:
    """Environment naming a database of its own for one installation: a new PostgreSQL
    database (dropped afterwards) when DATABASE_URL is set, else a SQLite file."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        yield {"ASC_SQLITE_PATH": str(state_dir / "asc.sqlite3")}
        return
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    server = base.rpartition("/")[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": f"{server}/{name}"}
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ControlPlaneAPI:
    """A small client of the control plane's REST API, as a platform team's script would use."""

    base_url: str
    token: str
    timeout: float = 30.0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/api/v1/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def results(self, path: str) -> list[dict[str, Any]]:
        """The first page of a list."""
        return list(self.call("GET", path)["results"])

    def all(self, path: str) -> list[dict[str, Any]]:
        """Every row of a paginated list (pages of at most 1,000), following each page's
        ``next``: a cursor on the lists that grow while they are read (usage, audit, snapshots,
        nodes), so no row comes twice or goes missing however fast records arrive."""
        separator = "&" if "?" in path else "?"
        page = self.call("GET", f"{path}{separator}limit=1000")
        rows: list[dict[str, Any]] = list(page["results"])
        while page["next"]:
            page = self.call("GET", page["next"].partition("/api/v1/")[2])
            rows += page["results"]
        return rows

    def one(self, path: str) -> dict[str, Any]:
        results = self.results(path)
        if len(results) != 1:
            raise LookupError(f"{path}: {len(results)} results, expected one")
        return dict(results[0])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports. All are held while they are chosen: a port let go can be
    handed out again at once, and two servers told the same port collide (seen in CI: the
    web server's health check reached the gRPC server)."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def free_port() -> int:
    return free_ports(1)[0]


def load_or_create_env_file(path: Path) -> dict[str, str]:
    """Secrets for a local installation, generated once and kept (mode 0600) in ``path``."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                name, _, value = line.partition("=")
                values[name.strip()] = value.strip()
    wanted = (
        "ASC_CREDENTIAL_KEY",
        "ASC_SEAL_KEY",
        "ASC_DJANGO_SECRET_KEY",
        "ASC_AUDIT_SIGNING_KEY",
    )
    if all(values.get(name) for name in wanted):
        return values
    for name in wanted:
        values.setdefault(name, new_aes_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Generated by ASC for this local installation. Keep secret.\n")
        f.writelines(f"{name}={value}\n" for name, value in values.items())
    return values


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Stack:
    """The processes of one ASC installation. Ports of 0 are replaced by free ones."""

    state_dir: Path
    env: dict[str, str]
    host: str = "127.0.0.1"
    web_port: int = 8000
    grpc_port: int = 50051
    dp_port: int = 8080
    node_id: str = "dp-local-1"
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unset = [name for name in ("web_port", "grpc_port", "dp_port") if not getattr(self, name)]
        for name, port in zip(unset, free_ports(len(unset)), strict=True):
            setattr(self, name, port)

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    @property
    def dp_url(self) -> str:
        return f"http://{self.host}:{self.dp_port}"

    @property
    def grpc_addr(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.update(extra or {})
        return env

    def manage(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [sys.executable, MANAGE, *args],
            env=self._env(),
            cwd=REPO,
            check=True,
            stdout=subprocess.PIPE if capture else None,
            text=True,
        )
        return result.stdout or ""

    def _spawn(
        self, name: str, argv: list[str], extra_env: Mapping[str, str] | None = None
    ) -> None:
        log_path = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{name}.log"
        with open(log_path or os.devnull, "ab") as out:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(
                argv,
                env=self._env(extra_env),
                cwd=REPO,
                stdout=out if log_path else None,
                stderr=subprocess.STDOUT if log_path else None,
                start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
            )

    def start_web(self) -> None:
        argv = [sys.executable, MANAGE, "runserver", f"{self.host}:{self.web_port}", "--noreload"]
        self._spawn("web", argv)

    def start_grpc(self) -> None:
        self._spawn("grpc", [sys.executable, MANAGE, "run_grpc", "--addr", self.grpc_addr])

    def start_data_plane(self) -> None:
        dp_env = {
            "ASC_DP_HOST": self.host,
            "ASC_DP_PORT": str(self.dp_port),
            "ASC_CONTROL_PLANE": self.grpc_addr,
            "ASC_NODE_ID": self.node_id,
            "ASC_DP_STATE_DIR": str(self.state_dir / "data-plane" / self.node_id),
        }
        self._spawn("data_plane", [sys.executable, "-m", "data_plane"], dp_env)

    def wait_web(self, timeout: float = 60) -> None:
        wait_until(lambda: http_ok(f"{self.web_url}/admin/login/"), timeout, "control-plane web")

    def wait_data_plane(self, timeout: float = 60) -> None:
        wait_until(lambda: http_ok(f"{self.dp_url}/readyz"), timeout, "data plane /readyz")

    def stop(self, name: str, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self, name: str) -> None:
        """Stop a process abruptly, as a crash would."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in ("data_plane", "grpc", "web"):
            self.stop(name)

    def exited(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]
