"""Log setup for every ASC process: plain text for a terminal, or one JSON object per line
(ASC_LOG_FORMAT=json) for log pipelines. Fields a caller passes in ``extra`` (such as
``request_id``, also returned to clients as x-request-id) become JSON fields."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(process: str) -> None:
    """Root logging from ASC_LOG_LEVEL (INFO) and ASC_LOG_FORMAT (text or json)."""
    handler = logging.StreamHandler()
    if os.environ.get("ASC_LOG_FORMAT", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {process} %(name)s %(message)s")
        )
    logging.basicConfig(level=os.environ.get("ASC_LOG_LEVEL", "INFO"), handlers=[handler])
