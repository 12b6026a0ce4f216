"""A new snapshot prunes the node's lease book: the lease of a limit it no longer has is
dropped, the leases of the limits it keeps stay as they are (what they have committed in
their window included)."""

from __future__ import annotations

from pathlib import Path

from data_plane.http.appkeys import ADMITTER, STORE
from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.budgets import GrantAll
from tests.providers.gateway import Gateway, running_gateway

KEPT, DROPPED = "l-acme-tokens", "l-acme-requests"


def with_limits(limit_ids: tuple[str, ...], version: int) -> snapshot_pb2.Snapshot:
    """The two-tenant policy with acme's per-minute limits among ``KEPT`` and ``DROPPED``."""
    builder = snapshots.two_tenants()
    kinds = {KEPT: snapshot_pb2.LIMIT_KIND_TOKENS, DROPPED: snapshot_pb2.LIMIT_KIND_REQUESTS}
    for limit_id in limit_ids:
        builder.policy.limits.add(
            id=limit_id,
            tenant_id="t-acme",
            scope=snapshot_pb2.LIMIT_SCOPE_TENANT,
            subject_id="t-acme",
            kind=kinds[limit_id],
            period=snapshot_pb2.LIMIT_PERIOD_MINUTE,
            amount=10**9,
            hard=True,
        )
    return builder.snapshot(version)


async def chat(gateway: Gateway) -> None:
    async with gateway.openai(snapshots.ACME_KEY) as client:
        reply = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}]
        )
    assert reply.choices[0].message.content


async def apply(gateway: Gateway, snapshot: snapshot_pb2.Snapshot) -> None:
    """As the config client applies a pushed snapshot: compile on the loop, then swap."""
    store = gateway.app[STORE]
    store.swap(await store.compile_serving(snapshot))


async def test_a_snapshot_without_a_limit_drops_its_lease_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    async with running_gateway(
        tmp_path, with_limits((KEPT, DROPPED), 1), lease_source=GrantAll()
    ) as gateway:
        await chat(gateway)
        book = gateway.app[ADMITTER].leases.book
        assert set(book.leases) == {KEPT, DROPPED}
        kept = book.leases[KEPT]
        committed = kept.committed
        assert committed > 0

        await apply(gateway, with_limits((KEPT,), 2))
        assert set(book.leases) == {KEPT}, "the deleted limit's lease is gone"
        assert book.leases[KEPT] is kept, "the kept limit's lease is the same"
        assert kept.committed == committed, "with what it had committed"

        await chat(gateway)
        assert set(book.leases) == {KEPT}, "requests under the new policy use the kept one"
        assert kept.committed > committed


async def test_a_snapshot_without_any_limit_empties_the_book(tmp_path: Path) -> None:
    async with running_gateway(
        tmp_path, with_limits((KEPT, DROPPED), 1), lease_source=GrantAll()
    ) as gateway:
        await chat(gateway)
        book = gateway.app[ADMITTER].leases.book
        assert book.leases
        await apply(gateway, with_limits((), 2))
        assert book.leases == {}
