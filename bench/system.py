"""A real ASC installation for the end-to-end benchmarks: the control plane (web + gRPC) on a
fresh database, configured through its REST API the way a platform team would, and data-plane
processes connected to it.

The database is a temporary PostgreSQL database when DATABASE_URL is set (dropped afterwards),
else a SQLite file in the temporary state directory.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Proc, free_port, python_module, wait_until
from scripts.stack import ControlPlaneAPI, Stack, fresh_database
from shared.crypto import new_aes_key

ADMIN_PASSWORD = "bench-pass"


@dataclass
class Provisioned:
    """What the benchmark's requests use: a key for route ``route_name``."""

    tenant_id: str
    route_id: str
    route_name: str
    key_secret: str
    model_id: str
    credential_id: str


@dataclass
class AscSystem:
    stack: Stack
    api: ControlPlaneAPI
    state_dir: Path
    data_planes: list[Proc] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def provision(self, upstream_base_url: str, route_name: str = "bench") -> Provisioned:
        """An OpenAI-compatible provider at ``upstream_base_url``, a credential, a model, a
        route, a key with a budget and a rate limit (both far above what the benchmark
        spends), and a tenant-wide guardrail policy: e-mail redacted, payment cards blocked,
        on input and output."""
        api = self.api
        tenant = api.results("tenants/?slug=demo")[0]["id"]
        model, credential = self.add_model(tenant, "bench", "openai_compatible", upstream_base_url)
        route = self.add_route(tenant, route_name, model, credential)
        secret = self.add_key(tenant, "bench", route)
        api.call(
            "POST",
            "guardrails/",
            {
                "tenant": tenant,
                "name": "pii",
                "categories": ["email", "payment_card"],
                "actions": {"email": "redact", "payment_card": "block"},
            },
        )
        return Provisioned(tenant, route, route_name, secret, model, credential)

    def add_model(self, tenant: str, name: str, kind: str, base_url: str) -> tuple[str, str]:
        """A provider of ``kind`` at ``base_url``, a credential of ``tenant`` for it and its
        model ``bench-model``: (model id, credential id)."""
        api = self.api
        provider = api.call(
            "POST", "providers/", {"name": f"{name}-upstream", "kind": kind, "base_url": base_url}
        )["id"]
        credential = api.call(
            "POST",
            "credentials/",
            {"tenant": tenant, "provider": provider, "name": name, "secret": f"sk-up-{name}"},
        )["id"]
        model = api.call(
            "POST",
            "models/",
            {
                "provider": provider,
                "provider_model": "bench-model",
                "region": "local",
                "input_price": "0.15",
                "output_price": "0.60",
            },
        )["id"]
        return str(model), str(credential)

    def add_key(self, tenant: str, name: str, route: str) -> str:
        """A key for ``route`` with a budget and a rate limit far above what a benchmark
        spends (every policy on); its secret."""
        api = self.api
        key = api.call(
            "POST",
            "keys/",
            {"tenant": tenant, "name": name, "routes": [route], "expires_at": None},
        )
        subject = {"tenant": tenant, "scope": "key", "key": key["id"]}
        api.call(
            "POST",
            "limits/",
            {**subject, "kind": "budget", "period": "month", "amount": "1000000"},
        )
        api.call("POST", "limits/", {**subject, "kind": "requests", "amount": "100000000"})
        return str(key["secret"])

    def add_route(self, tenant: str, name: str, model: str, credential: str) -> str:
        body = {
            "tenant": tenant,
            "name": name,
            "targets": [{"model": model, "credential": credential, "priority": 0, "weight": 1}],
        }
        return str(self.api.call("POST", "routes/", body)["id"])

    def latest_version(self) -> int:
        return int(self.api.results("snapshots/?limit=1")[0]["version"])

    def start_data_plane(self, node_id: str, *, workers: int = 1, port: int = 0) -> Proc:
        port = port or free_port()
        env = {
            **self.stack.env,
            "ASC_DP_HOST": "127.0.0.1",
            "ASC_DP_PORT": str(port),
            "ASC_CONTROL_PLANE": self.stack.grpc_addr,
            "ASC_NODE_ID": node_id,
            "ASC_DP_STATE_DIR": str(self.state_dir / "data-plane" / node_id),
            "ASC_DP_WORKERS": str(workers),
            "ASC_LOG_LEVEL": "WARNING",
        }
        proc = Proc(node_id, python_module("data_plane"), self.log_dir, env, port=port)
        self.data_planes.append(proc)
        return proc

    def stop_data_planes(self) -> None:
        for proc in self.data_planes:
            proc.stop()
        self.data_planes.clear()


def readyz_version(url: str) -> int:
    """The snapshot version a data plane serves (0: not ready or not answering)."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return int(json.loads(response.read()).get("snapshot_version", 0))
    except (OSError, ValueError):
        return 0


def wait_serving(proc: Proc, version: int, timeout: float = 60) -> None:
    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: see {proc.log}\n{proc.tail()}")
        return readyz_version(proc.url) >= version

    wait_until(ready, timeout, f"{proc.name} serving snapshot v{version}", interval=0.05)


@contextmanager
def asc_system(state_dir: Path | None = None) -> Iterator[AscSystem]:
    """The control plane (web + gRPC) on a fresh database, with the demo data and an API
    token; data planes started through the system are stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="asc-bench-") as tmp:
        state = state_dir or Path(tmp)
        with fresh_database(state, "asc_bench") as db_env:
            env = {
                **db_env,
                "ASC_CREDENTIAL_KEY": new_aes_key(),
                "ASC_SEAL_KEY": new_aes_key(),
                "ASC_DJANGO_SECRET_KEY": new_aes_key(),
                "ASC_AUDIT_SIGNING_KEY": new_aes_key(),
                "ASC_DEBUG": "0",
                "ASC_LOG_LEVEL": "WARNING",
            }
            stack = Stack(
                state_dir=state,
                env=env,
                web_port=0,
                grpc_port=0,
                dp_port=0,
                log_dir=state / "logs",
            )
            stack.manage("migrate", "--noinput", capture=True)
            stack.manage(
                "asc_demo",
                "--key-file",
                str(state / "demo-key"),
                "--admin-password",
                ADMIN_PASSWORD,
                capture=True,
            )
            token = stack.manage("drf_create_token", "admin", capture=True)
            token = token.split("Generated token ")[1].split()[0]
            system = AscSystem(stack, ControlPlaneAPI(stack.web_url, token), state)
            try:
                stack.start_web()
                stack.start_grpc()
                stack.wait_web()
                yield system
            finally:
                system.stop_data_planes()
                stack.stop_all()
                time.sleep(0.1)
