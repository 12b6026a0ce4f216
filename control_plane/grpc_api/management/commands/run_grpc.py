from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from control_plane.grpc_api.server import serve


class Command(BaseCommand):
    help = "Serve the control plane's gRPC API (snapshot streams and usage ingestion)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:50051", help="host:port to listen on")

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(serve(options["addr"]))
