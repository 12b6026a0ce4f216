"""Crash without loss: a data plane under load from concurrent clients is killed with
SIGKILL. In durable-audit mode every request that got an answer has its usage and audit
record in the spool the process left; in the default mode the answers of the last moments
may be missing (the loss window docs/operations.md states; ``make bench BENCH=loss``
measures it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.loss_bench import crash_under_load

pytestmark = pytest.mark.e2e


def test_durable_audit_loses_nothing_when_killed_under_load(tmp_path: Path) -> None:
    for attempt in range(3):
        outcome = crash_under_load(tmp_path / str(attempt), durable=True, seconds=2.0)
        assert len(outcome.answered) > 100, "the load got answers before the kill"
        assert outcome.lost == [], f"answered but not on disk: {outcome.lost[:5]}"
