from __future__ import annotations

from typing import Any

import uvloop
from django.core.management.base import BaseCommand, CommandParser

from control_plane.grpc_api.server import serve


class Command(BaseCommand):
    help = "Serve the control plane's gRPC API (snapshot streams and usage ingestion)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:50051", help="host:port to listen on")

    def handle(self, *args: Any, **options: Any) -> None:
        # uvloop, as the data plane: with a thousand streams the loop's own steps (callbacks,
        # futures, tasks) were about half of its time in asyncio's Python implementation.
        uvloop.run(serve(options["addr"]))
