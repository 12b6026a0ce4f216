"""Prometheus metrics of the control plane's gRPC process, on its own registry, served on
ASC_GRPC_METRICS_PORT (see ``server.serve``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from control_plane.rollouts import metrics as rollout_metrics

PUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ControlPlaneMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.connected_nodes = Gauge(
            "asc_cp_connected_nodes", "Data planes with an open snapshot stream.", registry=r
        )
        self.snapshot_version = Gauge(
            "asc_cp_snapshot_version", "Latest published snapshot version.", registry=r
        )
        self.push_to_ack = Histogram(
            "asc_cp_snapshot_push_to_ack_seconds",
            "From sending a snapshot to a node until its ACK or NACK.",
            ["result"],
            buckets=PUSH_BUCKETS,
            registry=r,
        )
        self.usage_events = Counter(
            "asc_cp_usage_events_ingested", "Usage events stored.", registry=r
        )
        self.usage_batches = Counter(
            "asc_cp_usage_batches",
            "Usage batches by result (stored, duplicate, error).",
            ["result"],
            registry=r,
        )
        self.lease_grants = Counter("asc_cp_lease_grants", "Lease asks answered.", registry=r)
        for collector in rollout_metrics.COLLECTORS:
            r.register(collector)
