"""The pure snapshot builder, and the shared consistency check on what it builds: no
database."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

from control_plane.fleet import snapshot_builder as b
from shared.consistency import problems
from shared.snapshots import policy_hash


def rows() -> b.PolicyRows:
    return b.PolicyRows(
        tenants=[
            b.TenantRow("t1", "acme", True, ["us", "eu"]),
            b.TenantRow("t2", "beta", True, []),
        ],
        providers=[b.ProviderRow("p1", "openai", "openai", "", {"timeout": 30}, True)],
        credentials=[
            b.CredentialRow("c1", "t1", "p1", b"sealed-1"),
            b.CredentialRow("c2", "t2", "p1", b"sealed-2"),
        ],
        models=[
            b.ModelRow("m1", "p1", "gpt-x", "eu", Decimal("2.5"), Decimal("10"), Decimal("1.25"))
        ],
        routes=[
            b.RouteRow("r1", "t1", "chat", [b.TargetRow("m1", "c1", 0, 1)]),
            b.RouteRow("r2", "t2", "chat", [b.TargetRow("m1", "c2", 0, 1)]),
        ],
        keys=[
            b.KeyRow("k1", "t1", "app", "h1", ["r1"], None),
            b.KeyRow("k2", "t2", "app", "h2", ["r2"], None),
        ],
    )


def test_build_is_canonical_whatever_the_row_order() -> None:
    base = rows()
    shuffled = b.PolicyRows(
        **{
            name: random.Random(seed).sample(list(getattr(base, name)), len(getattr(base, name)))
            for seed, name in enumerate(
                ["tenants", "providers", "credentials", "models", "routes", "keys"]
            )
        }
    )
    assert policy_hash(b.build_policy(shuffled)) == policy_hash(b.build_policy(base))


def test_prices_become_integer_micro_usd_and_regions_are_sorted() -> None:
    policy = b.build_policy(rows())
    model = policy.models[0]
    assert (model.input_price_micros_per_mtok, model.output_price_micros_per_mtok) == (
        2_500_000,
        10_000_000,
    )
    assert model.cached_input_price_micros_per_mtok == 1_250_000
    assert list(policy.tenants[0].allowed_regions) == ["eu", "us"]
    assert dict(policy.providers[0].options) == {"timeout": "30"}


def test_a_sound_policy_validates() -> None:
    assert problems(b.build_policy(rows())) == []


def test_every_dangling_or_cross_tenant_reference_is_reported() -> None:
    base = rows()
    cases = {
        "unknown model": replace(
            base, routes=[b.RouteRow("r1", "t1", "chat", [b.TargetRow("m9", "c1", 0, 1)])]
        ),
        "unknown credential": replace(
            base, routes=[b.RouteRow("r1", "t1", "chat", [b.TargetRow("m1", "c9", 0, 1)])]
        ),
        "of another tenant": replace(
            base, routes=[b.RouteRow("r1", "t1", "chat", [b.TargetRow("m1", "c2", 0, 1)])]
        ),
        "unknown tenant": replace(base, keys=[b.KeyRow("k1", "t9", "app", "h1", [], None)]),
        "unknown route": replace(base, keys=[b.KeyRow("k1", "t1", "app", "h1", ["r9"], None)]),
        "route chat of another tenant": replace(
            base, keys=[b.KeyRow("k1", "t1", "app", "h1", ["r2"], None)]
        ),
        "repeats another key's hash": replace(
            base,
            keys=[
                b.KeyRow("k1", "t1", "a", "same", [], None),
                b.KeyRow("k2", "t1", "b", "same", [], None),
            ],
        ),
        "unknown provider": replace(
            base,
            models=[
                b.ModelRow("m1", "p9", "x", "eu", Decimal(0), Decimal(0), Decimal(0)),
            ],
        ),
    }
    for expected, bad in cases.items():
        found = problems(b.build_policy(bad))
        assert any(expected in p for p in found), (expected, found)


def test_a_route_that_drops_what_cannot_be_translated_says_so_in_the_snapshot() -> None:
    base = rows()
    routes = [replace(base.routes[0], drop_untranslatable=True), *base.routes[1:]]
    policy = b.build_policy(replace(base, routes=routes))
    assert {r.id: r.drop_untranslatable for r in policy.routes} == {"r1": True, "r2": False}
