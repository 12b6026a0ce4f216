"""``python -m data_plane``: serve one data-plane process (settings from the environment).

uvloop drives the event loop; SIGTERM/SIGINT stop accepting, drain in-flight requests (up to
``shutdown_timeout_s``) and flush the usage queue to the spool before exiting.
"""

from __future__ import annotations

import logging
import os

import uvloop
from aiohttp import web

from data_plane.app import create_app
from data_plane.settings import Settings


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("ASC_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    settings = Settings.from_env()
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=None,  # no per-request logging on the hot path
        loop=uvloop.new_event_loop(),
        print=lambda message: logging.getLogger("data_plane").info(message),
    )


if __name__ == "__main__":
    main()
