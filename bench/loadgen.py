"""Load generators: wrk for maximum throughput, and an open-loop fixed-rate generator for
latency.

wrk (closed loop: N connections, each sends its next request when the previous answer
arrives) finds the most requests per second a server sustains. It cannot hold a fixed rate
(that is wrk2), so latency at a fixed rate comes from ``python -m bench.loadgen``: an asyncio
(uvloop) client on raw keep-alive connections that sends request i at start + i/rate whether
or not earlier answers have arrived (open loop): a stalled server shows up in the figures
instead of slowing the client down (no coordinated omission). It prints one JSON object: counts
and percentiles in microseconds (of the whole answer, and of its first body chunk: the time to
first token of a stream), and with ``--samples`` every (due time, latency, status, first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

MAX_CONNECTIONS = 1024


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # socket errors plus non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return float(sorted_values[index])


# --- wrk: maximum throughput ---------------------------------------------------------------

_LUA = """wrk.method = "POST"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  local fmt = "\\nWRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d}}\\n"
  io.write(string.format(fmt, summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    request: Request, seconds: float, connections: int, script_dir: Path, threads: int = 1
) -> WrkResult:
    """Closed-loop load with wrk; the Lua script sets the POST body and headers."""
    headers = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}"
        for k, v in {"Content-Type": "application/json", **request.headers}.items()
    )
    script = script_dir / "post.lua"
    script.write_text(_LUA.format(body=_lua_string(request.body.decode()), headers=headers))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        request.url,
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(int(data["requests"]), data["duration_us"] / 1e6, int(data["errors"]))


def run_closed_loop(request: Request, seconds: float, connections: int) -> WrkResult:
    """The stand-in for wrk when it is not installed: the same closed loop in asyncio (it
    spends more CPU per request than wrk, so figures come out lower)."""
    return uvloop.run(_closed_loop(request, seconds, connections))


async def _closed_loop(request: Request, seconds: float, connections: int) -> WrkResult:
    client = RawClient(request)
    counts = Counter[str]()
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            status, _ = await client.send()
            counts["ok" if 200 <= status < 400 else "error"] += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    client.close()
    return WrkResult(counts["ok"] + counts["error"], elapsed, counts["error"])


# --- open loop: latency at a fixed rate ----------------------------------------------------


class RawClient:
    """HTTP/1.1 POSTs of one prepared request over a pool of keep-alive connections."""

    def __init__(self, request: Request) -> None:
        parts = urlsplit(request.url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        headers = {
            "Host": f"{self._host}:{self._port}",
            "Content-Type": "application/json",
            "Content-Length": str(len(request.body)),
            **request.headers,
        }
        head = f"POST {parts.path or '/'} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        self._wire = (head + "\r\n").encode() + request.body
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def send(self) -> tuple[int, float]:
        """One request: its status (0: connection error) and the ``perf_counter`` time its
        first body chunk arrived (0.0 when none did)."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            if self.opened >= MAX_CONNECTIONS:
                return 0, 0.0
            try:
                reader, writer = await asyncio.open_connection(self._host, self._port)
            except OSError:
                return 0, 0.0
            self.opened += 1
        try:
            writer.write(self._wire)
            status, first = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            self.opened -= 1
            return 0, 0.0
        self._idle.append((reader, writer))
        return status, first

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def send_once(request: Request) -> int:
    """One request on a new connection, from synchronous code; its status (0: no answer)."""

    async def once() -> int:
        client = RawClient(request)
        try:
            status, _ = await client.send()
            return status
        finally:
            client.close()

    return uvloop.run(once())


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, float]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    first = 0.0
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
            first = first or time.perf_counter()
    elif length:
        await reader.readexactly(length)
        first = time.perf_counter()
    return status, first


async def open_loop(
    request: Request, rate: float, seconds: float, warmup: float
) -> list[tuple[float, float, int, float]]:
    """(due time from the start of measurement, latency, status, time to the first body chunk)
    of every measured request; the first ``warmup`` seconds are sent at the same rate but not
    kept."""
    client = RawClient(request)
    clock = time.perf_counter  # uvloop's loop.time() only counts milliseconds
    samples: list[tuple[float, float, int, float]] = []
    tasks: set[asyncio.Task[None]] = set()
    total = int((warmup + seconds) * rate)
    start = clock() + 0.05

    async def one(due: float) -> None:
        # Timed from when it is actually sent: the client's timers fire up to a millisecond
        # late, which is no fault of the server; being open loop, a stalled server still
        # shows (the requests due meanwhile are sent on time and wait).
        sent = clock()
        status, first = await client.send()
        if due - start >= warmup:
            samples.append((due - start - warmup, clock() - sent, status, max(0.0, first - sent)))

    for i in range(total):
        due = start + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    client.close()
    return samples


def summarize(samples: Sequence[tuple[float, float, int, float]], seconds: float) -> dict[str, Any]:
    latencies = sorted(latency * 1e6 for _, latency, status, _ in samples if 200 <= status < 300)
    firsts = sorted(first * 1e6 for _, _, status, first in samples if 200 <= status < 300)
    statuses = Counter(str(status) for _, _, status, _ in samples)
    return {
        "sent": len(samples),
        "ok": len(latencies),
        "statuses": dict(statuses),
        "rate": len(samples) / seconds if seconds else 0.0,
        "p50_us": percentile(latencies, 0.50),
        "p90_us": percentile(latencies, 0.90),
        "p99_us": percentile(latencies, 0.99),
        "p999_us": percentile(latencies, 0.999),
        "max_us": latencies[-1] if latencies else 0.0,
        "first_p50_us": percentile(firsts, 0.50),
        "first_p99_us": percentile(firsts, 0.99),
    }


def run_open_loop(
    request: Request,
    rate: float,
    seconds: float,
    warmup: float = 1.0,
    *,
    samples: bool = False,
    timeout: float = 120,
) -> dict[str, Any]:
    """Run the open-loop generator in its own process (so it never shares a CPU-bound event
    loop with the caller) and return its JSON summary."""
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        request.url,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--body",
        request.body.decode(),
    ]
    for name, value in request.headers.items():
        argv += ["--header", f"{name}: {value}"]
    if samples:
        argv.append("--samples")
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--body", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--samples", action="store_true", help="include every sample")
    args = parser.parse_args(argv)
    headers = dict(h.split(": ", 1) for h in args.header)
    request = Request(args.url, args.body.encode(), headers)
    collected = uvloop.run(open_loop(request, args.rate, args.seconds, args.warmup))
    result = summarize(collected, args.seconds)
    if args.samples:
        result["samples"] = collected
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
