"""Prometheus metrics of one data-plane app, on an app-owned registry (never the global one,
so several apps in one process - tests - do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "asc_dp_requests", "Requests by route and status.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "asc_dp_request_seconds",
            "Request latency.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "asc_dp_time_to_first_token_seconds",
            "Time to the first token (streams) or to the upstream answer.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "asc_dp_tokens", "Tokens by route and kind.", ["route", "kind"], registry=r
        )
        self.fallbacks = Counter(
            "asc_dp_fallbacks", "Failed attempts that moved on to the next target.",
            ["provider", "outcome"], registry=r,
        )  # fmt: skip
        self.denials = Counter(
            "asc_dp_denials", "Refused requests by reason.", ["reason"], registry=r
        )
        self.snapshot_version = Gauge(
            "asc_dp_snapshot_version", "Applied snapshot version.", registry=r
        )
        self.snapshot_created = Gauge(
            "asc_dp_snapshot_created_timestamp_seconds",
            "When the applied snapshot was built.",
            registry=r,
        )
        self.snapshot_updates = Counter(
            "asc_dp_snapshot_updates",
            "Snapshots received, by result (ack, nack).",
            ["result"],
            registry=r,
        )
        self.usage_queue = Gauge(
            "asc_dp_usage_queue_depth", "Usage events waiting in memory.", registry=r
        )
        self.usage_spool = Gauge(
            "asc_dp_usage_spool_depth", "Usage batches waiting on disk.", registry=r
        )
        self.usage_spool_bytes = Gauge(
            "asc_dp_usage_spool_bytes", "Bytes of usage batches waiting on disk.", registry=r
        )
        self.usage_events = Counter(
            "asc_dp_usage_events",
            "Usage events by fate (queued, sent, dropped).",
            ["fate"],
            registry=r,
        )
        self.usage_batches = Counter(
            "asc_dp_usage_batches",
            "Usage batches by fate (spooled, sent, retried).",
            ["fate"],
            registry=r,
        )
