"""Serving the data plane: one process, or several sharing a port (``python -m data_plane``).

Kept apart from ``__main__`` so worker processes, which multiprocessing starts by importing
their target's module, can import it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import uvloop
from aiohttp import web

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.logs import configure


def serve(settings: Settings, reuse_port: bool = False) -> None:
    configure("data-plane")
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=None,  # no per-request logging on the hot path
        loop=uvloop.new_event_loop(),
        print=lambda message: logging.getLogger("data_plane").info(message),
    )


def worker_settings(settings: Settings, index: int) -> Settings:
    return replace(
        settings,
        node_id=f"{settings.node_id}-w{index}",
        state_dir=settings.state_dir / f"w{index}",
    )
