"""Prometheus metrics of rollouts. Automatic decisions are made in the gRPC process (the
watcher's tick, a node's NACK), which serves these on its registry (``grpc_api.metrics``);
an operator's decisions count in the process that took them."""

from __future__ import annotations

from prometheus_client import Counter

decisions = Counter(
    "asc_cp_rollout_decisions",
    "Rollout decisions by action (start, advance, pause, resume, rollback, abort, complete) "
    "and by whom (operator, system).",
    ["action", "by"],
    registry=None,
)
automatic_rollbacks = Counter(
    "asc_cp_rollout_automatic_rollbacks",
    "Staged rollouts rolled back automatically (a canary NACK, or canary error or denial "
    "rate above the baseline's by more than the threshold).",
    registry=None,
)
COLLECTORS = (decisions, automatic_rollbacks)
