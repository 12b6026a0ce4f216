"""Spool faults: a spool file that is corrupt or truncated (however it got so) is found when
the data plane starts, quarantined with a log line and a metric, and the rest replayed; a
truncated file is never read as a shorter batch. A spool whose disk refuses writes counts it
(asc_dp_usage_spool_write_errors) and keeps serving."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from data_plane.metrics import Metrics
from data_plane.usage.reporter import MemoryUsageClient
from data_plane.usage.spool import SUFFIX, CorruptSpoolFile, Spool, decode, encode
from shared.pb import control_pb2
from tests.data_plane.test_durable_audit import disk_full
from tests.data_plane.test_usage_reporter import event, make_reporter, running
from tests.data_plane.waiting import eventually


def batch(batch_id: str, *ids: int) -> control_pb2.UsageBatch:
    return control_pb2.UsageBatch(batch_id=batch_id, events=[event(i) for i in ids])


def test_a_truncated_or_altered_file_is_refused_not_read_short() -> None:
    whole = encode(batch("b", 1, 2, 3))
    assert [e.request_id for e in decode(whole).events] == ["req-1", "req-2", "req-3"]
    for broken in (whole[:-7], whole[:12], whole[:-1] + b"\x00", whole + b"more"):
        with pytest.raises(CorruptSpoolFile):
            decode(broken)
    legacy = batch("old", 4).SerializeToString()  # written before the frame
    assert decode(legacy).batch_id == "old"


async def test_corrupt_files_at_start_are_quarantined_and_the_rest_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    files = {
        "0000000000001-a-0000000001": encode(batch("dp-1:a:1", 1)),
        "0000000000001-a-0000000002": encode(batch("dp-1:a:2", 2, 3))[:-5],  # truncated
        "0000000000001-a-0000000003": b"\x00\xffgarbage",  # corrupt
        "0000000000001-a-0000000004": batch("dp-1:a:4", 4).SerializeToString(),  # legacy
    }
    for name, data in files.items():
        (spool / f"{name}{SUFFIX}").write_bytes(data)
    client, metrics = MemoryUsageClient(), Metrics()
    with caplog.at_level(logging.ERROR):
        async with running(make_reporter(spool, client, metrics=metrics)):
            await eventually(lambda: len(client.batches) == 2, "the whole files replayed")
    assert list(client.batches) == ["dp-1:a:1", "dp-1:a:4"]
    quarantined = sorted(p.name for p in (spool / "quarantine").iterdir())
    assert quarantined == [f"0000000000001-a-000000000{i}{SUFFIX}" for i in (2, 3)]
    assert metrics.registry.get_sample_value("asc_dp_usage_spool_quarantined_total") == 2
    assert sum("quarantined" in r.getMessage() for r in caplog.records) == 2


async def test_a_disk_that_refuses_writes_is_counted(tmp_path: Path) -> None:
    metrics = Metrics()
    async with running(make_reporter(tmp_path, None, metrics=metrics)) as reporter:
        spool: Spool = reporter._spool
        spool.write = disk_full  # type: ignore[method-assign]  # the disk is full
        for i in range(4):
            reporter.record(event(i))
        sample = metrics.registry.get_sample_value
        await eventually(
            lambda: sample("asc_dp_usage_spool_write_errors_total") == 2, "two refused writes"
        )
        assert sample("asc_dp_usage_events_total", {"fate": "dropped"}) == 4
