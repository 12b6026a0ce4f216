"""mTLS between the planes: the control plane's gRPC server refuses a data plane without a
client certificate of the fleet CA, and a certificate speaking for another node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from control_plane.grpc_api.server import build_server
from control_plane.grpc_api.servicers import close_ingest_connections, may_speak_for
from control_plane.grpc_api.watcher import SnapshotWatcher
from control_plane.usage.models import UsageRecord
from data_plane import rpc
from shared.pb import control_pb2
from shared.tls import TlsFiles, issue, make_ca

pytestmark = pytest.mark.django_db(transaction=True)


def write(folder: Path, name: str, pem: tuple[bytes, bytes]) -> None:
    (folder / f"{name}.pem").write_bytes(pem[0])
    (folder / f"{name}.key").write_bytes(pem[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    write(folder, "ca", ca)
    write(folder, "server", issue(*ca, "control-plane", server_names=["127.0.0.1"]))
    write(folder, "dp-1", issue(*ca, "dp-1", client=True))
    rogue_ca = make_ca("rogue CA")
    write(folder, "rogue", issue(*rogue_ca, "dp-1", client=True))
    return folder


def files(pki: Path, name: str) -> TlsFiles:
    return TlsFiles(pki / "ca.pem", pki / f"{name}.pem", pki / f"{name}.key")


@pytest.fixture
async def address(pki: Path) -> AsyncIterator[str]:
    server, port = build_server(SnapshotWatcher(poll_s=1), "127.0.0.1:0", files(pki, "server"))
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)
    await close_ingest_connections()  # the ingesting threads' connections too
    await sync_to_async(connections.close_all)()


def batch(node_id: str) -> control_pb2.UsageBatch:
    event = control_pb2.UsageEvent(request_id=f"r-{node_id}", ts_unix_ms=1)
    return control_pb2.UsageBatch(batch_id=f"{node_id}:b:1", node_id=node_id, events=[event])


async def report(channel: grpc.aio.Channel, node_id: str) -> control_pb2.UsageAck:
    return await rpc.GrpcUsageClient(channel, timeout_s=5).report(batch(node_id))


async def test_a_node_with_its_certificate_is_served(address: str, pki: Path) -> None:
    async with rpc.open_channel(address, files(pki, "dp-1")) as channel:
        ack = await report(channel, "dp-1")
    assert ack.accepted == 1
    assert await sync_to_async(UsageRecord.objects.filter(node_id="dp-1").count)() == 1


async def test_a_plaintext_client_is_refused(address: str) -> None:
    async with rpc.open_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await report(channel, "dp-1")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_without_a_certificate_is_refused(address: str, pki: Path) -> None:
    credentials = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes())
    async with grpc.aio.secure_channel(address, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await report(channel, "dp-1")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await sync_to_async(UsageRecord.objects.count)() == 0


async def test_a_certificate_of_another_ca_is_refused(address: str, pki: Path) -> None:
    rogue = TlsFiles(pki / "ca.pem", pki / "rogue.pem", pki / "rogue.key")
    async with rpc.open_channel(address, rogue) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await report(channel, "dp-1")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await sync_to_async(UsageRecord.objects.count)() == 0


async def test_a_node_may_not_speak_for_another(address: str, pki: Path) -> None:
    async with rpc.open_channel(address, files(pki, "dp-1")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await report(channel, "dp-2")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await sync_to_async(UsageRecord.objects.count)() == 0


def test_a_certificate_names_one_node_or_a_group_by_prefix() -> None:
    assert may_speak_for("dp-1", "dp-1")
    assert not may_speak_for("dp-1", "dp-10")
    assert may_speak_for("asc-data-plane-*", "asc-data-plane-7d9f-x2")
    assert not may_speak_for("asc-data-plane-*", "asc-cp-grpc-1")
