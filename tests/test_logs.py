"""JSON logs: one object per line with the caller's extra fields (the request id)."""

from __future__ import annotations

import json
import logging

from shared.logs import JsonFormatter


def test_a_record_is_one_json_object_with_its_extra_fields() -> None:
    record = logging.LogRecord(
        "data_plane.app", logging.ERROR, __file__, 1, "failed %s", ("x",), None
    )
    record.request_id = "abc123"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed x"
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "data_plane.app"
    assert entry["request_id"] == "abc123"
    assert "\n" not in JsonFormatter().format(record)
