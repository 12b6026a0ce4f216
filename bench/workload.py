"""The request every benchmark sends, and policy snapshots built the way the control plane
shapes them (control_plane/fleet/snapshot_builder.py; tests/data_plane/snapshots.py does the
same for the tests): ids are UUIDs, provider credentials sealed with the fleet keyring for
their own id, virtual keys shipped only as SHA-256 hashes, the hash over the deterministic
encoding of the policy.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass

from shared.crypto import Keyring, credential_context, hash_key
from shared.pb import snapshot_pb2
from shared.snapshots import policy_hash

# A typical small chat request: a system prompt, a question, no personal data in it.
PROMPT = (
    "Summarize the quarterly report in three bullet points: revenue grew 12% to 4.2 million, "
    "driven by 3 new regions; churn fell from 5.1% to 3.8%. Keep it short."
)
ROUTE_NAME = "bench"
BODY = json.dumps(
    {
        "model": ROUTE_NAME,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": PROMPT},
        ],
        "max_tokens": 64,
    }
).encode()

ANTHROPIC_ROUTE_NAME = "bench-claude"
# The same exchange in Anthropic's Messages API and OpenAI's Responses API.
MESSAGES_BODY = json.dumps(
    {
        "model": ANTHROPIC_ROUTE_NAME,
        "system": "You are a concise assistant.",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
    }
).encode()
RESPONSES_BODY = json.dumps(
    {
        "model": ROUTE_NAME,
        "instructions": "You are a concise assistant.",
        "input": PROMPT,
        "max_output_tokens": 64,
    }
).encode()

# A fixed seal key (not a secret): the data plane under test is started with it.
SEAL_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def _id(kind: int, n: int) -> str:
    """A deterministic UUID per (kind, number): snapshots of the same shape are identical."""
    return str(uuid.UUID(int=(kind << 64) | n))


def key_secret(tenant: int, n: int) -> str:
    return f"sk-asc-bench-{tenant:05d}-{n:07d}"


@dataclass(frozen=True)
class Shape:
    """How big a policy is. Each tenant has one sealed credential, a budget, a tenant-wide
    guardrail policy (e-mail redacted, payment cards blocked) and ``routes`` routes named
    ``bench``, ``route-1``, ...; each key is granted two of its tenant's routes, and every
    tenth key has its own requests-per-minute limit."""

    tenants: int = 1
    routes: int = 1  # per tenant
    keys: int = 1  # per tenant
    models: int = 10
    targets: int = 2  # per route: a primary and a fallback

    @property
    def total_keys(self) -> int:
        return self.tenants * self.keys

    @property
    def total_routes(self) -> int:
        return self.tenants * self.routes


TENANT, PROVIDER, CREDENTIAL, MODEL, ROUTE, KEY, GUARD, LIMIT = range(1, 9)


def build_snapshot(
    shape: Shape, version: int = 1, upstream_base_url: str = "http://127.0.0.1:9/v1"
) -> snapshot_pb2.Snapshot:
    policy = snapshot_pb2.Policy()
    seal = Keyring(SEAL_KEY)
    provider = _id(PROVIDER, 0)
    policy.providers.add(
        id=provider,
        name="bench-upstream",
        kind=snapshot_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE,
        base_url=upstream_base_url,
        enabled=True,
    )
    for m in range(shape.models):
        policy.models.add(
            id=_id(MODEL, m),
            provider_id=provider,
            provider_model=f"bench-model-{m}",
            region="local",
            input_price_micros_per_mtok=150_000,
            output_price_micros_per_mtok=600_000,
        )
    sealed = {}  # one sealing per credential id is all a snapshot needs
    for t in range(shape.tenants):
        tenant = _id(TENANT, t)
        policy.tenants.add(id=tenant, slug=f"tenant-{t}", active=True)
        credential = _id(CREDENTIAL, t)
        sealed[credential] = seal.seal(b"sk-upstream-bench", credential_context(credential))
        policy.credentials.add(
            id=credential, tenant_id=tenant, provider_id=provider, sealed_secret=sealed[credential]
        )
        policy.guardrails.add(
            id=_id(GUARD, t),
            tenant_id=tenant,
            on_input=True,
            on_output=True,
            categories=["email", "payment_card"],
            actions={"email": "redact", "payment_card": "block"},
            default_action="redact",
        )
        policy.limits.add(
            id=_id(LIMIT, t),
            tenant_id=tenant,
            scope=snapshot_pb2.LIMIT_SCOPE_TENANT,
            subject_id=tenant,
            kind=snapshot_pb2.LIMIT_KIND_BUDGET,
            period=snapshot_pb2.LIMIT_PERIOD_MONTH,
            time_zone="UTC",
            amount=10**18,
            hard=True,
        )
        routes = [_id(ROUTE, t * shape.routes + r) for r in range(shape.routes)]
        for r, route_id in enumerate(routes):
            route = policy.routes.add(
                id=route_id, tenant_id=tenant, name=ROUTE_NAME if r == 0 else f"route-{r}"
            )
            for i in range(shape.targets):
                route.targets.add(
                    model_id=_id(MODEL, (r + i) % shape.models),
                    credential_id=credential,
                    priority=i,
                    weight=1,
                )
        for k in range(shape.keys):
            n = t * shape.keys + k
            key_id = _id(KEY, n)
            granted = sorted({routes[0], routes[k % shape.routes]})
            policy.keys.add(
                id=key_id,
                tenant_id=tenant,
                name=f"key-{n}",
                key_hash=hash_key(key_secret(t, k)),
                route_ids=granted,
            )
            if k % 10 == 0:
                policy.limits.add(
                    id=_id(LIMIT, 1_000_000 + n),
                    tenant_id=tenant,
                    scope=snapshot_pb2.LIMIT_SCOPE_KEY,
                    subject_id=key_id,
                    kind=snapshot_pb2.LIMIT_KIND_REQUESTS,
                    period=snapshot_pb2.LIMIT_PERIOD_MINUTE,
                    time_zone="UTC",
                    amount=10**9,
                    hard=True,
                )
    return snapshot_pb2.Snapshot(
        version=version,
        hash=policy_hash(policy),
        created_unix_ms=1_700_000_000_000 + version,
        policy=policy,
    )
