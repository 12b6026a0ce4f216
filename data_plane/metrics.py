"""Prometheus metrics of one data-plane app, on an app-owned registry (never the global one,
so several apps in one process - tests - do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from data_plane.policy.health import State
from data_plane.types import Target

CIRCUIT_VALUES = {State.CLOSED: 0, State.OPEN: 1, State.HALF_OPEN: 2}

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class RouteMetrics:
    """One route's per-request series, their children bound once: a ``labels()`` lookup
    (label validation, a lock, a dict) costs several microseconds, five of them per request."""

    __slots__ = ("_requests", "_route", "_statuses", "completion", "latency", "prompt", "ttft")

    def __init__(self, metrics: Metrics, route: str) -> None:
        self._route = route
        self._requests = metrics.requests
        self._statuses: dict[int, Counter] = {}
        self.latency = metrics.latency.labels(route)
        self.ttft = metrics.ttft.labels(route)
        self.prompt = metrics.tokens.labels(route, "prompt")
        self.completion = metrics.tokens.labels(route, "completion")

    def requests(self, status: int) -> Counter:
        """The request counter's child for ``status`` (bound on its first use)."""
        child = self._statuses.get(status)
        if child is None:
            child = self._statuses[status] = self._requests.labels(self._route, str(status))
        return child


class Metrics:
    def __init__(self) -> None:
        self._routes: dict[str, RouteMetrics] = {}
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
        self.circuit_state = Gauge(
            "asc_dp_circuit_state",
            "Circuit breaker of a provider model: 0 closed, 1 open, 2 half-open.",
            ["provider", "model"],
            registry=r,
        )
        self.circuit_changes = Counter(
            "asc_dp_circuit_changes",
            "Circuit breaker state changes, by the state entered.",
            ["provider", "model", "state"],
            registry=r,
        )
        self.denials = Counter(
            "asc_dp_denials",
            "Refused requests by tenant (slug; '-' before authentication) and reason.",
            ["tenant", "reason"],
            registry=r,
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

        self.usage_spool_quarantined = Counter(
            "asc_dp_usage_spool_quarantined",
            "Spool files that were not whole batches, moved to the quarantine folder.",
            registry=r,
        )
        self.usage_spool_write_errors = Counter(
            "asc_dp_usage_spool_write_errors",
            "Usage batches the spool could not write (disk full, I/O error).",
            registry=r,
        )
        self.task_restarts = Counter(
            "asc_dp_background_task_restarts",
            "Background tasks restarted after an error, by task.",
            ["task"],
            registry=r,
        )
        self.task_down = Gauge(
            "asc_dp_background_task_down",
            "1 while a background task keeps failing (the node reports not ready).",
            ["task"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "asc_dp_cache_lookups",
            "Response cache lookups by route and result (hit, miss).",
            ["route", "result"],
            registry=r,
        )
        self.cache_stores = Counter(
            "asc_dp_cache_stores", "Answers stored in the response cache.", ["route"], registry=r
        )
        self.cache_bytes = Counter(
            "asc_dp_cache_bytes",
            "Bytes of cached answers by route and direction (stored, served).",
            ["route", "direction"],
            registry=r,
        )
        self.cache_errors = Counter(
            "asc_dp_cache_backend_errors",
            "Response cache backend failures (the request went on without the cache).",
            ["backend", "operation"],
            registry=r,
        )

    def route(self, route: str) -> RouteMetrics:
        """The bound series of ``route`` (a route name or "-": never a client-chosen value,
        so the cache is as bounded as the series themselves)."""
        found = self._routes.get(route)
        if found is None:
            found = self._routes[route] = RouteMetrics(self, route)
        return found

    def task_restarted(self, task: str) -> None:
        self.task_restarts.labels(task).inc()

    def task_down_changed(self, task: str, down: bool) -> None:
        self.task_down.labels(task).set(int(down))

    def circuit_changed(self, target: Target, state: State) -> None:
        labels = (target.provider_id, target.model_id)
        self.circuit_state.labels(*labels).set(CIRCUIT_VALUES[state])
        self.circuit_changes.labels(*labels, state.value).inc()
