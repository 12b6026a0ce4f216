"""Simulated data planes for the fleet benchmark: ``python -m bench.fleet_node --addr HOST:PORT
--first N --count M``. Each node opens its own ConfigService stream to the control plane (a few
nodes share a gRPC channel, as pods share a host), says hello with what it holds, ACKs every
full snapshot or delta it receives with the version and hash it carries, sends a usage batch
and a lease ask now and then, and reconnects with the data plane's jittered backoff when its
stream breaks. Nothing is compiled: the figures are the control plane's.

It prints one JSON line per event to stdout, times from ``time.monotonic()`` (one clock for
every process of the machine): ``{"node": i, "version": v, "t": ...}`` when node ``i`` holds a
new version, and ``{"node": i, "gone": key_id, "t": ...}`` when a key it held is no longer in
its policy (revoked). A line ``{"ready": M}`` comes once every node holds a version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid

import grpc
import uvloop

from data_plane.backoff import RECONNECT_S, backoff_delay
from data_plane.rpc import CHANNEL_OPTIONS
from shared.pb import control_pb2

NODES_PER_CHANNEL = 50


def emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class SimulatedNode:
    def __init__(self, n: int, channel: grpc.aio.Channel, args: argparse.Namespace) -> None:
        self.n = n
        self.node = control_pb2.Node(
            id=f"fleet-{n:05d}", region="local", software_version="sim", boot_id=uuid.uuid4().hex
        )
        self.rand = random.Random(n)
        self.args = args
        self.version, self.hash = 0, ""
        self.keys: dict[str, str] = {}  # id -> hash, of the policy held
        self.limits: list[str] = []
        self.stream = channel.stream_stream(
            "/asc.v1.ConfigService/StreamSnapshots",
            request_serializer=control_pb2.SnapshotRequest.SerializeToString,
            response_deserializer=control_pb2.SnapshotResponse.FromString,
        )
        self.usage = channel.unary_unary(
            "/asc.v1.UsageService/ReportUsage",
            request_serializer=control_pb2.UsageBatch.SerializeToString,
            response_deserializer=control_pb2.UsageAck.FromString,
        )
        self.lease = channel.unary_unary(
            "/asc.v1.LeaseService/Acquire",
            request_serializer=control_pb2.LeaseRequest.SerializeToString,
            response_deserializer=control_pb2.LeaseResponse.FromString,
        )
        self.batches = 0
        self.first = asyncio.Event()

    def _apply(self, response: control_pb2.SnapshotResponse) -> None:
        before = set(self.keys)
        if response.HasField("delta"):
            delta = response.delta
            for key_id in delta.removed.keys:
                self.keys.pop(key_id, None)
            for key in delta.upserts.keys:
                self.keys[key.id] = key.key_hash
            self.version, self.hash = delta.version, delta.hash
        else:
            snapshot = response.snapshot
            self.keys = {k.id: k.key_hash for k in snapshot.policy.keys}
            self.limits = [lim.id for lim in snapshot.policy.limits]
            self.version, self.hash = snapshot.version, snapshot.hash
        now = time.monotonic()
        emit({"node": self.n, "version": self.version, "t": now})
        for key_id in before - set(self.keys):
            emit({"node": self.n, "gone": key_id, "t": now})
        self.first.set()

    async def run(self) -> None:
        attempt = 0
        while True:
            call = self.stream(None)  # requests are written with call.write()
            try:
                await call.write(
                    control_pb2.SnapshotRequest(
                        node=self.node, version=self.version, hash=self.hash
                    )
                )
                async for response in call:
                    attempt = 0
                    self._apply(response)
                    await call.write(
                        control_pb2.SnapshotRequest(
                            node=self.node,
                            version=self.version,
                            hash=self.hash,
                            response_nonce=response.nonce,
                        )
                    )
            except grpc.aio.AioRpcError:
                pass
            finally:
                call.cancel()
            await asyncio.sleep(backoff_delay(attempt, self.rand, *self.args.backoff))
            attempt += 1

    async def chatter(self) -> None:
        """A usage batch and a lease ask every ``--every`` seconds (jittered)."""
        await self.first.wait()
        while True:
            await asyncio.sleep(self.args.every * (0.5 + self.rand.random()))
            self.batches += 1
            batch = control_pb2.UsageBatch(
                batch_id=f"{self.node.id}:{self.node.boot_id}:{self.batches}",
                node_id=self.node.id,
                spool_depth=1,
            )
            asks = [control_pb2.LeaseAsk(limit_id=i, want=1) for i in self.limits[:1]]
            try:
                await self.usage(batch, timeout=10)
                if asks:
                    await self.lease(control_pb2.LeaseRequest(node_id=self.node.id, asks=asks))
            except grpc.aio.AioRpcError:
                pass


async def main(args: argparse.Namespace) -> None:
    channels = [
        grpc.aio.insecure_channel(args.addr, options=CHANNEL_OPTIONS)
        for _ in range(0, args.count, NODES_PER_CHANNEL)
    ]
    nodes = [
        SimulatedNode(args.first + i, channels[i // NODES_PER_CHANNEL], args)
        for i in range(args.count)
    ]
    tasks = [asyncio.create_task(node.run()) for node in nodes]
    tasks += [asyncio.create_task(node.chatter()) for node in nodes]
    await asyncio.gather(*(node.first.wait() for node in nodes))
    emit({"ready": args.count})
    await asyncio.gather(*tasks)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--backoff", type=float, nargs=2, default=RECONNECT_S)
    return parser.parse_args(argv)


if __name__ == "__main__":
    uvloop.run(main(parse(sys.argv[1:])))
