"""Processes of a benchmark: start them with their output in a log file, wait until they answer,
read their memory, stop them (and only them) again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from scripts.stack import free_port

REPO = Path(__file__).resolve().parent.parent

__all__ = [
    "REPO",
    "Proc",
    "cpu_seconds",
    "free_port",
    "http_status",
    "python_module",
    "rss_kib",
    "running",
    "wait_until",
]


def http_status(url: str, timeout: float = 1.0, headers: Mapping[str, str] | None = None) -> int:
    """The status of a GET (0 when nothing answers)."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (KiB)."""
    total = 0
    for p in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *_descendants(child)]
    return found


class Proc:
    """One child process in its own session, its output in ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        port: int = 0,
    ) -> None:
        self.name = name
        self.port = port  # the port it serves on, when it is a server
        self.log = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                list(argv),
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_http(self, url: str, timeout: float = 60) -> None:
        def up() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited: see {self.log}\n{self.tail()}")
            return 200 <= http_status(url) < 300

        wait_until(up, timeout, f"{self.name} at {url}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the process group this process leads (its workers too), then SIGKILL."""
        if not self.alive():
            return
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()


@contextmanager
def running(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    ready_url: str | None = None,
    env: Mapping[str, str] | None = None,
    port: int = 0,
    timeout: float = 60,
) -> Iterator[Proc]:
    proc = Proc(name, argv, log_dir, env, port=port)
    try:
        if ready_url:
            proc.wait_http(ready_url, timeout)
        yield proc
    finally:
        proc.stop()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
