"""Policy snapshots for data-plane tests, built with ``shared.pb.snapshot_pb2`` the way the
control plane shapes them (control_plane/fleet/snapshot_builder.py): provider credentials
sealed with the fleet keyring and bound to their own id (``shared.crypto``), virtual keys
shipped only as SHA-256 hashes, the snapshot's ``hash`` over the deterministic encoding of
its policy (``shared.snapshots.policy_hash``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Self

from shared.crypto import Keyring, credential_context, hash_key
from shared.pb import snapshot_pb2
from shared.snapshots import policy_hash

# Fixed keys so failures reproduce; neither is a real secret.
SEAL_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
OTHER_SEAL_KEY = base64.urlsafe_b64encode(bytes(range(32, 64))).decode()

MOCK = snapshot_pb2.PROVIDER_KIND_MOCK
OPENAI_COMPATIBLE = snapshot_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE

# The standard two-tenant policy (``two_tenants``): its virtual keys and upstream credentials.
ACME_KEY = "sk-asc-acme-0001"
ACME_EXPIRED_KEY = "sk-asc-acme-expired"
BETA_KEY = "sk-asc-beta-0001"
GONE_KEY = "sk-asc-gone-0001"
ACME_UPSTREAM = "sk-upstream-acme-7f3a"
BETA_UPSTREAM = "sk-upstream-beta-91c2"
EXPIRES_AT = 1_700_000_000


def keyring(key: str = SEAL_KEY) -> Keyring:
    return Keyring(key)


class PolicyBuilder:
    """Appends records to one ``Policy``; ``snapshot`` numbers and hashes it. No checks:
    tests build broken policies on purpose."""

    def __init__(self, seal: Keyring | None = None) -> None:
        self.policy = snapshot_pb2.Policy()
        self._seal = seal or keyring()

    def tenant(
        self, id: str, *, slug: str = "", active: bool = True, regions: Iterable[str] = ()
    ) -> Self:
        self.policy.tenants.add(
            id=id, slug=slug or id.removeprefix("t-"), active=active, allowed_regions=regions
        )
        return self

    def provider(
        self,
        id: str,
        *,
        kind: snapshot_pb2.ProviderKind = MOCK,
        base_url: str = "",
        options: Mapping[str, str] | None = None,
        enabled: bool = True,
    ) -> Self:
        self.policy.providers.add(
            id=id, name=id, kind=kind, base_url=base_url, options=options or {}, enabled=enabled
        )
        return self

    def credential(self, id: str, tenant_id: str, provider_id: str, secret: str = "") -> Self:
        """``secret`` is sealed for ``id``; empty means a provider that needs no key."""
        sealed = self._seal.seal(secret.encode(), credential_context(id)) if secret else b""
        self.policy.credentials.add(
            id=id, tenant_id=tenant_id, provider_id=provider_id, sealed_secret=sealed
        )
        return self

    def model(
        self,
        id: str,
        provider_id: str,
        provider_model: str = "",
        *,
        region: str = "eu",
        prices: tuple[int, int, int] = (150_000, 600_000, 75_000),
    ) -> Self:
        self.policy.models.add(
            id=id,
            provider_id=provider_id,
            provider_model=provider_model or f"upstream-{id}",
            region=region,
            input_price_micros_per_mtok=prices[0],
            output_price_micros_per_mtok=prices[1],
            cached_input_price_micros_per_mtok=prices[2],
        )
        return self

    def route(
        self,
        id: str,
        tenant_id: str,
        name: str,
        targets: Sequence[tuple[str, str] | tuple[str, str, int, int]],
    ) -> Self:
        """``targets``: (model id, credential id[, priority, weight]); weight defaults to 1."""
        route = self.policy.routes.add(id=id, tenant_id=tenant_id, name=name)
        for target in targets:
            model_id, credential_id, priority, weight = (*target, 0, 1)[:4]
            route.targets.add(
                model_id=model_id, credential_id=credential_id, priority=priority, weight=weight
            )
        return self

    def key(
        self,
        id: str,
        tenant_id: str,
        secret: str,
        route_ids: Iterable[str],
        *,
        expires_at: int = 0,
    ) -> Self:
        self.policy.keys.add(
            id=id,
            tenant_id=tenant_id,
            name=id,
            key_hash=hash_key(secret),
            route_ids=sorted(route_ids),
            expires_at_unix=expires_at,
        )
        return self

    def snapshot(self, version: int = 1) -> snapshot_pb2.Snapshot:
        return snapshot_of(self.policy, version)


def snapshot_of(policy: snapshot_pb2.Policy, version: int = 1) -> snapshot_pb2.Snapshot:
    """A snapshot of a copy of ``policy``, with the hash the control plane would give it."""
    copy = snapshot_pb2.Policy()
    copy.CopyFrom(policy)
    return snapshot_pb2.Snapshot(
        version=version,
        hash=policy_hash(copy),
        created_unix_ms=1_700_000_000_000 + version,
        policy=copy,
    )


def two_tenants(
    seal: Keyring | None = None,
    *,
    kind: snapshot_pb2.ProviderKind = MOCK,
    base_url: str = "",
) -> PolicyBuilder:
    """Tenants acme (EU only) and beta, both with a route named "chat" (same public name,
    different targets and credentials); acme also has "extra", which its key is not granted.
    Plus an expired acme key and an inactive tenant "gone" with a valid key."""
    return (
        PolicyBuilder(seal)
        .tenant("t-acme", regions=["eu"])
        .tenant("t-beta")
        .tenant("t-gone", active=False)
        .provider("p-main", kind=kind, base_url=base_url)
        .credential("c-acme", "t-acme", "p-main", ACME_UPSTREAM)
        .credential("c-beta", "t-beta", "p-main", BETA_UPSTREAM)
        .credential("c-gone", "t-gone", "p-main", "")
        .model("m-eu", "p-main", "model-eu", region="eu")
        .model("m-us", "p-main", "model-us", region="us")
        .route("r-acme-chat", "t-acme", "chat", [("m-eu", "c-acme")])
        .route("r-acme-extra", "t-acme", "extra", [("m-eu", "c-acme")])
        .route("r-beta-chat", "t-beta", "chat", [("m-us", "c-beta")])
        .route("r-gone-chat", "t-gone", "chat", [("m-eu", "c-gone")])
        .key("k-acme", "t-acme", ACME_KEY, ["r-acme-chat"])
        .key("k-acme-expired", "t-acme", ACME_EXPIRED_KEY, ["r-acme-chat"], expires_at=EXPIRES_AT)
        .key("k-beta", "t-beta", BETA_KEY, ["r-beta-chat"])
        .key("k-gone", "t-gone", GONE_KEY, ["r-gone-chat"])
    )
