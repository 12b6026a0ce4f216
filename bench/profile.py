"""Optional sampling profiles of the processes under load (``ASC_BENCH_PROFILE=1``).

py-spy (PyPI) is installed on first use into ``.bench/py-spy``; it samples a running process
from outside, so the process under test needs no change. The benchmarks that support it print
the functions where the samples landed (self time) and the frames most often on the stack
(inclusive time), each with file:line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.procs import REPO

TARGET = REPO / ".bench" / "py-spy"
BINARY = TARGET / "bin" / "py-spy"


def enabled() -> bool:
    return os.environ.get("ASC_BENCH_PROFILE", "") not in ("", "0")


def ensure() -> Path:
    if not BINARY.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(TARGET), "py-spy"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return BINARY


@dataclass
class Recording:
    popen: subprocess.Popen[bytes]
    output: Path

    def top(self, count: int = 12) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
        """(self time, inclusive time): the ``count`` largest shares of samples by frame."""
        self.popen.wait(timeout=120)
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            if not stack or not samples.isdigit():
                continue
            n = int(samples)
            frames = [_short(f) for f in stack.split(";") if "(" in f]
            if not frames:
                continue
            total += n
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
        if not total:
            return [], []

        def shares(counter: Counter[str]) -> list[tuple[float, str]]:
            return [(100.0 * n / total, frame) for frame, n in counter.most_common(count)]

        return shares(own), shares(inclusive)


def _short(frame: str) -> str:
    """'fn (/abs/path/to/site-packages/pkg/mod.py:12)' -> 'fn (pkg/mod.py:12)'."""
    for marker in ("site-packages/", str(REPO) + "/", "lib/python3.12/"):
        if marker in frame:
            name, _, path = frame.partition(" (")
            return f"{name} ({path.split(marker, 1)[1]}" if path else frame
    return frame


def record(pid: int, seconds: float, output: Path, *, subprocesses: bool = False) -> Recording:
    argv = [
        str(ensure()),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(output),
        "--nonblocking",
    ]
    if subprocesses:
        argv.append("--subprocesses")
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Recording(popen, output)


def lines(title: str, recording: Recording, count: int = 12) -> list[str]:
    own, inclusive = recording.top(count)
    out = [f"profile: {title} (py-spy, share of samples)"]
    out += ["  self time:"] + [f"    {pct:5.1f}%  {frame}" for pct, frame in own]
    out += ["  on the stack (inclusive):"] + [
        f"    {pct:5.1f}%  {frame}" for pct, frame in inclusive
    ]
    return out
