"""Deltas (ADR 0006): over random sequences of configuration changes, the delta the control
plane's history builds, applied by a node, gives the same compiled policy and the same hash as
the full snapshot of that version; a node may skip versions (the delta then spans several).
A delta from another base, or one whose result does not hash as announced, is refused and
leaves the node on what it held; a node restarted from its disk copy serves the last version
it applied and takes the next delta from there."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.grpc_api.deltas import DeltaHistory, Latest
from data_plane.policy.compiled import CompiledPolicy, compile_snapshot
from data_plane.policy.incremental import Layered
from data_plane.snapshots.applier import DeltaRefused, PolicyApplier
from data_plane.snapshots.store import SnapshotStore
from shared.crypto import hash_key
from shared.pb import control_pb2, snapshot_pb2
from shared.policy_index import PolicyIndex, policy_hash
from tests.data_plane import snapshots
from tests.data_plane.test_config_client import start_harness

TENANTS = ("t-a", "t-b")


@dataclass
class World:
    """A consistent configuration the test mutates, rendered to a policy the way the control
    plane would publish it."""

    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    guardrails: dict[str, str] = field(default_factory=dict)  # tenant -> default action
    prices: dict[str, int] = field(default_factory=lambda: {"m-1": 100, "m-2": 200})
    secrets: dict[str, str] = field(default_factory=lambda: {t: f"sk-{t}" for t in TENANTS})
    regions: dict[str, str] = field(default_factory=lambda: dict.fromkeys(TENANTS, ""))
    serial: int = 0

    def new_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def render(self, version: int) -> snapshot_pb2.Snapshot:
        b = snapshots.PolicyBuilder().provider("p-1")
        for t in TENANTS:
            b.tenant(t, regions=[self.regions[t]] if self.regions[t] else [])
            b.credential(f"c-{t}", t, "p-1", self.secrets[t])
        for model_id, price in self.prices.items():
            b.model(model_id, "p-1", prices=(price, price * 2, price // 2))
        for route_id, r in self.routes.items():
            b.route(
                route_id, r["tenant"], r["name"], [(m, f"c-{r['tenant']}") for m in r["models"]]
            )
            b.policy.routes[-1].max_retries = r["retries"]
        for key_id, k in self.keys.items():
            b.key(key_id, k["tenant"], k["secret"], k["routes"])
            b.policy.keys[-1].name = k["name"]
        for tenant, action in self.guardrails.items():
            b.policy.guardrails.add(
                id=f"g-{tenant}", tenant_id=tenant, on_input=True, default_action=action
            )
        for limit_id, lim in self.limits.items():
            b.policy.limits.add(
                id=limit_id,
                tenant_id=lim["tenant"],
                scope=lim["scope"],
                subject_id=lim["subject"],
                kind=snapshot_pb2.LIMIT_KIND_REQUESTS,
                period=snapshot_pb2.LIMIT_PERIOD_MINUTE,
                time_zone="UTC",
                amount=lim["amount"],
                hard=True,
            )
        return b.snapshot(version)


def _change(world: World, data: st.DataObject) -> None:
    """One random change that keeps the configuration consistent."""
    tenant = data.draw(st.sampled_from(TENANTS))
    routes = [r for r, v in world.routes.items() if v["tenant"] == tenant]
    keys = [k for k, v in world.keys.items() if v["tenant"] == tenant]
    op = data.draw(
        st.sampled_from(
            [
                "add_key",
                "add_key",
                "change_key",
                "remove_key",
                "add_route",
                "change_route",
                "remove_route",
                "add_limit",
                "change_limit",
                "remove_limit",
                "guardrail",
                "price",
                "secret",
                "tenant",
            ]
        )
    )
    if op == "add_key" or (op in ("change_key", "remove_key") and not keys):
        key_id = world.new_id("k")
        grant = data.draw(st.lists(st.sampled_from(routes), unique=True)) if routes else []
        world.keys[key_id] = {
            "tenant": tenant, "secret": f"sk-{key_id}", "routes": grant, "name": key_id
        }  # fmt: skip
    elif op == "change_key":
        key = world.keys[data.draw(st.sampled_from(keys))]
        key["name"] = world.new_id("name")
        if routes:
            key["routes"] = data.draw(st.lists(st.sampled_from(routes), unique=True))
    elif op == "remove_key":
        key_id = data.draw(st.sampled_from(keys))
        del world.keys[key_id]
        world.limits = {i: v for i, v in world.limits.items() if v["subject"] != key_id}
    elif op == "add_route" or (op in ("change_route", "remove_route") and not routes):
        route_id = world.new_id("r")
        world.routes[route_id] = {
            "tenant": tenant,
            "name": route_id,
            "models": ["m-1"],
            "retries": 0,
        }
    elif op == "change_route":
        route = world.routes[data.draw(st.sampled_from(routes))]
        route["retries"] = data.draw(st.integers(0, 3))
        route["models"] = data.draw(
            st.lists(st.sampled_from(["m-1", "m-2"]), min_size=1, max_size=2)
        )
        route["name"] = data.draw(st.sampled_from([route["name"], world.new_id("name")]))
    elif op == "remove_route":
        route_id = data.draw(st.sampled_from(routes))
        del world.routes[route_id]
        for key in world.keys.values():
            key["routes"] = [r for r in key["routes"] if r != route_id]
        world.limits = {i: v for i, v in world.limits.items() if v["subject"] != route_id}
    elif op in ("add_limit", "change_limit", "remove_limit"):
        mine = [i for i, v in world.limits.items() if v["tenant"] == tenant]
        if op == "add_limit" or not mine:
            subjects = [(snapshot_pb2.LIMIT_SCOPE_TENANT, tenant)]
            subjects += [(snapshot_pb2.LIMIT_SCOPE_KEY, k) for k in keys]
            subjects += [(snapshot_pb2.LIMIT_SCOPE_ROUTE, r) for r in routes]
            scope, subject = data.draw(st.sampled_from(subjects))
            world.limits[world.new_id("l")] = {
                "tenant": tenant, "scope": scope, "subject": subject, "amount": 10
            }  # fmt: skip
        elif op == "change_limit":
            world.limits[data.draw(st.sampled_from(mine))]["amount"] = data.draw(st.integers(1, 99))
        else:
            del world.limits[data.draw(st.sampled_from(mine))]
    elif op == "guardrail":
        action = data.draw(st.sampled_from(["", "redact", "block", "tag"]))
        if action:
            world.guardrails[tenant] = action
        else:
            world.guardrails.pop(tenant, None)
    elif op == "price":
        world.prices[data.draw(st.sampled_from(["m-1", "m-2"]))] = data.draw(st.integers(1, 999))
    elif op == "secret":
        world.secrets[tenant] = world.new_id("sk")
    else:
        world.regions[tenant] = data.draw(st.sampled_from(["", "eu", "us"]))


def latest_of(snapshot: snapshot_pb2.Snapshot) -> Latest:
    index = PolicyIndex.build(snapshot.policy)
    index.hash()
    return Latest(snapshot.version, snapshot.hash, snapshot.created_unix_ms, index)


def publish(history: DeltaHistory, snapshot: snapshot_pb2.Snapshot) -> None:
    latest = latest_of(snapshot)
    history.advance(latest, history.step_to(latest))


def comparable(policy: CompiledPolicy) -> dict[str, Any]:
    """Everything a request reads; limits per subject as sets (their order means nothing)."""
    return {
        "version": policy.version,
        "hash": policy.hash,
        "tenants": dict(policy.tenants),
        "keys": dict(policy.keys_by_hash),
        "routes": dict(policy.routes),
        "routes_by_name": dict(policy.routes_by_name),
        "models": dict(policy.models),
        "providers": dict(policy.providers),
        "credentials": dict(policy.credentials),
        "guardrails": dict(policy.guardrails),
        "limits": {s: frozenset(e) for s, e in policy.limits_by_subject.items()},
        "issuers": dict(policy.issuers),
        # The opened upstream secrets (Target equality covers them too; spelled out).
        "api_keys": {r.id: [t.api_key for t in r.targets] for r in policy.routes.values()},
    }


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), steps=st.integers(1, 12))
def test_a_delta_and_the_full_snapshot_compile_to_the_same_policy(
    data: st.DataObject, steps: int
) -> None:
    world, history, keyring = World(), DeltaHistory(), snapshots.keyring()
    with tempfile.TemporaryDirectory() as tmp:
        store = SnapshotStore(Path(tmp) / "snapshot.bin", keyring)
        applier = PolicyApplier(store)
        first = world.render(1)
        publish(history, first)
        asyncio.run(applier.full(first))
        for version in range(2, steps + 2):
            for _ in range(data.draw(st.integers(1, 3))):
                _change(world, data)
            snapshot = world.render(version)
            assert snapshot.hash == policy_hash(snapshot.policy)
            publish(history, snapshot)
            if data.draw(st.booleans()) and version < steps + 1:
                continue  # the node is not told of this version: the next delta spans two
            held = store.current
            assert held is not None
            delta = history.delta_for(held.version, held.hash, snapshot.hash)
            assert delta is not None
            delta = snapshot_pb2.SnapshotDelta.FromString(delta.SerializeToString())
            applied = asyncio.run(applier.delta(delta))
            full = compile_snapshot(snapshot, keyring)
            assert applied.hash == full.hash == snapshot.hash
            assert comparable(applied) == comparable(full)
            assert store.current is applied


def _node(tmp_path: Path) -> tuple[SnapshotStore, PolicyApplier]:
    store = SnapshotStore(tmp_path / "snapshot.bin", snapshots.keyring())
    return store, PolicyApplier(store)


def _two_versions() -> tuple[snapshot_pb2.Snapshot, snapshot_pb2.Snapshot, DeltaHistory]:
    world, history = World(), DeltaHistory()
    world.routes["r-1"] = {"tenant": "t-a", "name": "chat", "models": ["m-1"], "retries": 0}
    first = world.render(1)
    world.keys["k-1"] = {"tenant": "t-a", "secret": "sk-new", "routes": ["r-1"], "name": "k-1"}
    second = world.render(2)
    publish(history, first)
    publish(history, second)
    return first, second, history


async def test_a_delta_from_another_base_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    first, second, history = _two_versions()
    store, applier = _node(tmp_path)
    await applier.full(second)  # the node already holds v2: a delta from v1 is out of order
    delta = history.delta_for(1, first.hash, second.hash)
    assert delta is not None
    with pytest.raises(DeltaRefused, match="from v1, but the node holds v2"):
        await applier.delta(delta)
    assert store.current is not None
    assert store.current.version == 2


async def test_a_delta_that_does_not_hash_as_announced_is_refused_and_undone(
    tmp_path: Path,
) -> None:
    first, second, history = _two_versions()
    store, applier = _node(tmp_path)
    held = await applier.full(first)
    delta = history.delta_for(1, first.hash, second.hash)
    assert delta is not None
    forged = snapshot_pb2.SnapshotDelta()
    forged.CopyFrom(delta)
    forged.upserts.keys[0].key_hash = hash_key("sk-someone-else")
    with pytest.raises(ValueError, match="hashes to"):
        await applier.delta(forged)
    assert store.current is held
    assert hash_key("sk-someone-else") not in held.keys_by_hash
    # The index was put back: the genuine delta still applies.
    applied = await applier.delta(delta)
    assert applied.hash == second.hash
    assert hash_key("sk-new") in applied.keys_by_hash


async def test_an_inconsistent_delta_is_refused(tmp_path: Path) -> None:
    """A control plane that announces the hash of an inconsistent result (a key granted a
    route that does not exist) still gets a NACK: the node checks what the delta carries."""
    first, _, _ = _two_versions()
    store, applier = _node(tmp_path)
    held = await applier.full(first)
    bad = snapshot_pb2.Policy()
    bad.CopyFrom(first.policy)
    bad.keys.add(id="k-bad", tenant_id="t-a", key_hash=hash_key("sk-bad"), route_ids=["r-nope"])
    delta = snapshot_pb2.SnapshotDelta(
        version=2, hash=policy_hash(bad), base_version=1, base_hash=first.hash
    )
    delta.upserts.keys.append(bad.keys[-1])
    with pytest.raises(ValueError, match="unknown route r-nope"):
        await applier.delta(delta)
    assert store.current is held


async def test_a_node_restarted_from_disk_after_deltas_serves_the_last_version_applied(
    tmp_path: Path,
) -> None:
    world, history = World(), DeltaHistory()
    world.routes["r-1"] = {"tenant": "t-a", "name": "chat", "models": ["m-1"], "retries": 0}
    versions = []
    for version in range(1, 5):
        world.keys[f"k-{version}"] = {
            "tenant": "t-a", "secret": f"sk-{version}", "routes": ["r-1"], "name": "k"
        }  # fmt: skip
        versions.append(world.render(version))
    _, applier = _node(tmp_path)
    await applier.full(versions[0])
    await applier.persist()
    publish(history, versions[0])
    for held, snapshot in itertools.pairwise(versions[:3]):
        publish(history, snapshot)
        delta = history.delta_for(held.version, held.hash, snapshot.hash)
        assert delta is not None
        await applier.delta(delta)
        await applier.persist()

    restarted, fresh = _node(tmp_path)
    loaded = await asyncio.to_thread(restarted.load_from_disk)
    assert loaded is not None
    assert (loaded.version, loaded.hash) == (3, versions[2].hash)
    assert comparable(loaded) == comparable(compile_snapshot(versions[2], snapshots.keyring()))
    restarted.swap(loaded)
    # The restarted node indexes its disk copy and takes the next delta.
    publish(history, versions[3])
    delta = history.delta_for(3, versions[2].hash, versions[3].hash)
    assert delta is not None
    applied = await fresh.delta(delta)
    assert (applied.version, applied.hash) == (4, versions[3].hash)


async def test_the_config_client_acks_a_delta_and_nacks_one_out_of_order(tmp_path: Path) -> None:
    """Over gRPC: a delta on top of the version held is applied, persisted in full and ACKed
    with the new version; a delta from another base is NACKed and the node stays put."""
    first, second, history = _two_versions()
    delta = history.delta_for(1, first.hash, second.hash)
    assert delta is not None
    store = SnapshotStore(tmp_path / "snapshot.bin", snapshots.keyring())
    async with start_harness(store) as h:
        await h.received()
        assert (await h.push(first, "n-1")).version == 1
        await h.service.outbox.put(control_pb2.SnapshotResponse(nonce="n-2", delta=delta))
        ack = await h.received()
        assert (ack.response_nonce, ack.version, ack.hash, ack.error_detail) == (
            "n-2",
            2,
            second.hash,
            "",
        )
        assert h.disk_version() == 2, "the disk copy is the full snapshot of v2"
        stale = snapshot_pb2.SnapshotDelta()
        stale.CopyFrom(delta)
        stale.version, stale.hash = 3, "f" * 64  # a later version, announced from v1
        await h.service.outbox.put(control_pb2.SnapshotResponse(nonce="n-3", delta=stale))
        nack = await h.received()
        assert nack.response_nonce == "n-3"
        assert "from v1, but the node holds v2" in nack.error_detail
        assert (nack.version, nack.hash) == (2, second.hash)
        assert store.current is not None
        assert store.current.version == 2


@given(
    ops=st.lists(
        st.tuples(st.booleans(), st.integers(0, 30), st.integers(0, 9)), min_size=1, max_size=60
    ),
    flatten=st.integers(1, 20),
)
def test_a_layered_lookup_reads_like_the_dict_it_stands_for(
    ops: list[tuple[bool, int, int]], flatten: int
) -> None:
    """Keys changed by deltas sit on top of the shared lookup until they are flattened."""
    expected = {n: 0 for n in range(0, 30, 2)}
    current: Mapping[int, int] = MappingProxyType(dict(expected))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Layered, "FLATTEN", flatten)
        for put, key, value in ops:
            if put:
                expected[key] = value
                current = Layered.changed(current, [], {key: value})
            else:
                expected.pop(key, None)
                current = Layered.changed(current, [key], {})
            assert dict(current) == expected
            assert len(current) == len(expected)
            assert all(current.get(k) == expected.get(k) for k in range(31))
