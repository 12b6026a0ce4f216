"""Two control-plane gRPC replicas against one database, data planes spread over them: a change
made through the REST API reaches every data plane (each replica pushes it to its own nodes,
as a delta to those that hold the previous version), the new key works on every one of them,
and the fleet page lists each node once, with the version it ACKed, whichever replica it talks
to."""

from __future__ import annotations

import dataclasses
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from scripts.stack import Stack, free_port, wait_until
from tests.e2e.conftest import System, more_data_planes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def spread(system: System) -> Iterator[list[Stack]]:
    """A second gRPC replica; one more data plane on the first (beside the system's own) and
    two on the second."""
    second = dataclasses.replace(system.stack, grpc_port=free_port(), procs={})
    second.start_grpc()
    try:
        with (
            more_data_planes(system, "dp-replica-1", 1) as first_planes,
            more_data_planes(dataclasses.replace(system, stack=second), "dp-replica-2", 2) as more,
        ):
            yield [*first_planes, *more[1:]]  # more[0] is the replica itself, not a data plane
    finally:
        second.stop_all()


def models_status(url: str, key: str) -> int:
    request = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def fleet_page(system: System) -> str:
    """The admin's fleet page (data-plane nodes), logged in as the demo admin."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = system.stack.web_url
    login = opener.open(f"{base}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)
    assert token is not None
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token[1], "username": "admin", "password": "e2e-pass"}
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/?next=/admin/", data=form, headers={"Referer": f"{base}/admin/login/"}
    )
    opener.open(request, timeout=10).read()
    with opener.open(f"{base}/admin/asc_fleet/dataplanenode/", timeout=10) as response:
        return str(response.read().decode())


def test_a_change_reaches_every_data_plane_and_the_fleet_page_lists_each_once(
    system: System, spread: list[Stack]
) -> None:
    api = system.api
    names = {stack.node_id for stack in spread}
    assert len({stack.grpc_addr for stack in spread}) == 2, "two replicas in use"

    def acked(version: int) -> bool:
        rows = api.results("nodes/?limit=100")
        return {r["node_id"] for r in rows if r["applied_version"] >= version} >= names

    tenant = api.results("tenants/?slug=demo")[0]["id"]
    routes = [r["id"] for r in api.results(f"routes/?tenant={tenant}")]
    wait_until(lambda: acked(int(api.results("snapshots/?limit=1")[0]["version"])), 60, "ACKs")
    created = api.call(
        "POST",
        "keys/",
        {"tenant": tenant, "name": "across-replicas", "routes": routes, "expires_at": None},
    )
    version = int(api.results("snapshots/?limit=1")[0]["version"])
    wait_until(lambda: acked(version), 30, f"every node's ACK of v{version}")
    for stack in spread:
        assert models_status(stack.dp_url, created["secret"]) == 200, stack.node_id

    listed = [r["node_id"] for r in api.results("nodes/?limit=100")]
    assert len(listed) == len(set(listed)), "each node listed once"
    page = fleet_page(system)
    for name in names:
        assert page.count(f">{name}<") == 1, f"{name} once on the fleet page"
