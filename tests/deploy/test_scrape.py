"""Both planes' /metrics scraped over HTTP, after real traffic, carry every metric the Grafana
dashboard and the alert rules use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml
from asgiref.sync import sync_to_async
from django.db import connections
from openai import AsyncOpenAI

from control_plane.grpc_api.metrics import ControlPlaneMetrics
from control_plane.grpc_api.server import build_server, serve_metrics
from control_plane.grpc_api.servicers import close_ingest_connections
from control_plane.grpc_api.watcher import SnapshotWatcher
from data_plane import rpc
from shared.pb import control_pb2
from tests.data_plane import snapshots
from tests.data_plane.test_proxy_openai import running_gateway

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUFFIXES = re.compile(r"_(total|bucket|sum|count|created)$")


def wanted() -> set[str]:
    """Metric families the dashboard and the alert rules query."""
    text = (DEPLOY / "grafana" / "dashboards" / "asc.json").read_text()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    text += json.dumps(rules)
    return {SUFFIXES.sub("", name) for name in re.findall(r"\basc_(?:dp|cp)_\w+", text)}


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.text()


def families(exposition: str) -> set[str]:
    return {SUFFIXES.sub("", n) for n in re.findall(r"^# TYPE (\w+) ", exposition, re.MULTILINE)}


@pytest.mark.django_db(transaction=True)
async def test_the_dashboard_and_alerts_find_their_metrics_on_both_planes(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, snapshots.two_tenants().snapshot()) as gateway:
        async with AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key=snapshots.ACME_KEY, max_retries=0
        ) as client:
            await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hello"}]
            )
        data_plane = await scrape(f"{gateway.url}/metrics")

    metrics = ControlPlaneMetrics()
    server, port = build_server(SnapshotWatcher(poll_s=1), "127.0.0.1:0", metrics=metrics)
    await server.start()
    httpd = serve_metrics(metrics, "127.0.0.1", 0)
    try:
        async with rpc.open_channel(f"127.0.0.1:{port}") as channel:
            batch = control_pb2.UsageBatch(batch_id="n:b:1", node_id="n")
            await rpc.GrpcUsageClient(channel, 5).report(batch)
        control_plane = await scrape(f"http://127.0.0.1:{httpd.server_port}/metrics")
    finally:
        httpd.shutdown()
        httpd.server_close()
        await server.stop(0)
        await close_ingest_connections()  # the ingesting threads' connections too
        await sync_to_async(connections.close_all)()

    assert 'asc_dp_requests_total{route="chat",status="200"} 1.0' in data_plane
    assert 'asc_cp_usage_batches_total{result="stored"} 1.0' in control_plane
    missing = wanted() - families(data_plane) - families(control_plane)
    assert not missing, f"queried but not exported: {sorted(missing)}"


async def test_refusals_are_counted_by_tenant_and_reason(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, snapshots.two_tenants().snapshot()) as gateway:
        async with AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key=snapshots.ACME_KEY, max_retries=0
        ) as client:
            with pytest.raises(openai.PermissionDeniedError):
                await client.chat.completions.create(
                    model="extra", messages=[{"role": "user", "content": "hello"}]
                )
        async with AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key="sk-asc-wrong", max_retries=0
        ) as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
        data_plane = await scrape(f"{gateway.url}/metrics")
    assert 'asc_dp_denials_total{reason="model_not_allowed",tenant="acme"} 1.0' in data_plane
    assert 'asc_dp_denials_total{reason="invalid_api_key",tenant="-"} 1.0' in data_plane
