"""Data-plane settings, read from the environment once at start (``Settings.from_env``).

| variable | default |
|---|---|
| ASC_DP_HOST | 127.0.0.1 |
| ASC_DP_PORT | 8080 |
| ASC_CONTROL_PLANE | 127.0.0.1:50051 (gRPC address; empty: no control plane) |
| ASC_NODE_ID | <hostname>-<port> |
| ASC_REGION | local |
| ASC_DP_OTLP_ENDPOINT | unset: no traces; an OTLP/HTTP traces URL (or OTEL_*: docs/tracing.md) |
| ASC_DP_STATE_DIR | .asc/data-plane/<node id> (snapshot copy and usage spool) |
| ASC_SEAL_KEY | unset; the keyring that opens sealed provider credentials |
| ASC_TLS_CA, _CERT, _KEY | unset: plaintext gRPC; set: mTLS with this node's certificate |
| ASC_DP_WORKERS | 1; processes sharing the port (SO_REUSEPORT), node ids <node id>-w<i> |
| ASC_DP_DURABLE_AUDIT_TENANTS | none; tenant ids or slugs, comma-separated (durable audit) |
| ASC_DP_CACHE_REDIS_URL | unset: the response cache is in process; set: Redis, shared |
| ASC_DP_CACHE_REDIS_PREFIX | asc:cache: (prefix of the cache's Redis keys) |
| ASC_DP_CACHE_MAX_ENTRIES, _MAX_BYTES | 10000 entries, 64 MiB (in-process cache bounds) |
| ASC_DP_CACHE_MAX_ENTRY_BYTES | 1 MiB; a larger answer is not cached |

Durable audit: those tenants' answers are released only once their usage and audit record is
in the spool on disk (``UsageReporter.record(durable=True)``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared import otel
from shared.tls import TlsFiles


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    control_plane: str = "127.0.0.1:50051"
    node_id: str = "dp-local"
    region: str = "local"
    state_dir: Path = Path(".asc/data-plane/dp-local")
    seal_key: str = field(default="", repr=False)
    tls: TlsFiles | None = None
    workers: int = 1
    # OpenTelemetry traces (data_plane/tracing.py): exported to this OTLP/HTTP URL; "": off.
    otlp_endpoint: str = ""
    # Usage reporting: a batch is cut every interval or at max events, whichever comes first.
    usage_flush_interval_s: float = 1.0
    usage_batch_max: int = 500
    usage_queue_max: int = 100_000
    # Every gRPC call has a timeout; reconnects back off from min to max, jittered.
    rpc_timeout_s: float = 10.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    # How long shutdown waits for in-flight requests.
    shutdown_timeout_s: float = 30.0
    # Background tasks restart after an error (backing off as above); one that fails this many
    # times in a row, no run lasting task_stable_s, makes the node not ready until it recovers.
    task_give_up_after: int = 5
    task_stable_s: float = 30.0
    # Durable audit: these tenants' (ids or slugs) answers are released only once their usage
    # and audit record is in the spool on disk, batched with others within the commit window.
    durable_audit_tenants: frozenset[str] = frozenset()
    durable_commit_s: float = 0.002
    # The response cache (docs/cache.md): Redis when a URL is set, else in process.
    cache_redis_url: str = field(default="", repr=False)  # may carry a password
    cache_redis_prefix: str = "asc:cache:"
    cache_timeout_s: float = 0.25
    cache_max_entries: int = 10_000
    cache_max_bytes: int = 64 * 1024 * 1024
    cache_max_entry_bytes: int = 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        port = int(env.get("ASC_DP_PORT", "8080"))
        node_id = env.get("ASC_NODE_ID") or f"{socket.gethostname()}-{port}"
        state_dir = env.get("ASC_DP_STATE_DIR") or f".asc/data-plane/{node_id}"
        return cls(
            host=env.get("ASC_DP_HOST", "127.0.0.1"),
            port=port,
            control_plane=env.get("ASC_CONTROL_PLANE", "127.0.0.1:50051"),
            node_id=node_id,
            region=env.get("ASC_REGION") or "local",
            state_dir=Path(state_dir),
            seal_key=env.get("ASC_SEAL_KEY", ""),
            tls=TlsFiles.from_env("ASC_TLS", env),
            workers=max(1, int(env.get("ASC_DP_WORKERS", "1"))),
            otlp_endpoint=traces_endpoint(env),
            durable_audit_tenants=frozenset(
                t.strip()
                for t in env.get("ASC_DP_DURABLE_AUDIT_TENANTS", "").split(",")
                if t.strip()
            ),
            cache_redis_url=env.get("ASC_DP_CACHE_REDIS_URL", ""),
            cache_redis_prefix=env.get("ASC_DP_CACHE_REDIS_PREFIX") or "asc:cache:",
            cache_max_entries=int(env.get("ASC_DP_CACHE_MAX_ENTRIES", "10000")),
            cache_max_bytes=int(env.get("ASC_DP_CACHE_MAX_BYTES", str(64 * 1024 * 1024))),
            cache_max_entry_bytes=int(env.get("ASC_DP_CACHE_MAX_ENTRY_BYTES", str(1024 * 1024))),
        )

    @property
    def snapshot_path(self) -> Path:
        return self.state_dir / "snapshot.bin"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "usage-spool"


def traces_endpoint(env: Mapping[str, str]) -> str:
    """Where traces go (``shared.otel.traces_endpoint``): "" unless configured."""
    return otel.traces_endpoint(env, "ASC_DP_OTLP_ENDPOINT")
