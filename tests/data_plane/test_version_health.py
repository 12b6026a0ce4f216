"""The health signals a usage batch carries, by snapshot version (what a staged rollout
compares between its canaries and the baseline)."""

from __future__ import annotations

from data_plane.usage.record import version_health
from shared.pb import control_pb2


def test_health_of_a_batch_by_version() -> None:
    events = [
        control_pb2.UsageEvent(snapshot_version=3, status_code=200),
        control_pb2.UsageEvent(snapshot_version=3, status_code=502, error_code="upstream_error"),
        control_pb2.UsageEvent(snapshot_version=4, status_code=400, error_code="guardrail_blocked"),
        control_pb2.UsageEvent(snapshot_version=4, status_code=429, error_code="budget_exceeded"),
    ]
    got = {h.version: h for h in version_health(events)}
    assert (got[3].requests, got[3].server_errors, got[3].upstream_errors) == (2, 1, 1)
    assert (got[4].requests, got[4].guardrail_blocks, got[4].policy_denials) == (2, 1, 1)
    assert got[4].server_errors == 0
