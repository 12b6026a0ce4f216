"""``python -m data_plane``: serve the data plane (settings from the environment).

uvloop drives the event loop; SIGTERM/SIGINT stop accepting, drain in-flight requests (up to
``shutdown_timeout_s``) and flush the usage queue to the spool before exiting.

With ASC_DP_WORKERS=N (N > 1), N processes share the port through SO_REUSEPORT, the kernel
spreading connections over them. Each is a node of its own to the control plane (node id
"<node id>-w<i>", its own state directory: snapshot copy, usage spool, audit chain), so
nothing is shared between them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from types import FrameType

from data_plane.server import serve, worker_settings
from data_plane.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    if settings.workers == 1:
        serve(settings)
        return
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=serve, args=(worker_settings(settings, i), True), name=f"w{i}")
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        """Each worker drains on its own signal; repeat it to every live worker."""
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
