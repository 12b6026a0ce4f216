"""compile_snapshot: a sound snapshot becomes precompiled, read-only lookups; any dangling
reference is refused by the shared consistency check (InconsistentSnapshot) and a credential
the node cannot open is a PolicyError (the snapshot is refused either way)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from data_plane.policy.compiled import PolicyError, compile_snapshot
from shared.consistency import InconsistentSnapshot
from shared.crypto import hash_key
from shared.pb import snapshot_pb2
from tests.data_plane import snapshots
from tests.data_plane.snapshots import ACME_KEY, ACME_UPSTREAM, BETA_UPSTREAM, snapshot_of


def test_a_sound_snapshot_compiles_into_lookups() -> None:
    snapshot = snapshots.two_tenants().snapshot(version=7)
    policy = compile_snapshot(snapshot, snapshots.keyring())

    assert (policy.version, policy.hash) == (7, snapshot.hash)
    assert policy.created_unix_ms == snapshot.created_unix_ms
    assert set(policy.tenants) == {"t-acme", "t-beta", "t-gone"}
    assert policy.tenants["t-acme"].allowed_regions == frozenset({"eu"})
    assert not policy.tenants["t-gone"].active
    key = policy.keys_by_hash[hash_key(ACME_KEY)]
    assert (key.id, key.tenant_id, key.route_ids) == (
        "k-acme",
        "t-acme",
        frozenset({"r-acme-chat"}),
    )
    assert ACME_KEY not in repr(policy.keys_by_hash), "only the hash of a key is held"
    acme_chat = policy.routes_by_name[("t-acme", "chat")]
    beta_chat = policy.routes_by_name[("t-beta", "chat")]
    assert (acme_chat.id, beta_chat.id) == ("r-acme-chat", "r-beta-chat")
    assert policy.routes["r-acme-chat"] is acme_chat
    (target,) = acme_chat.targets
    assert target.api_key == ACME_UPSTREAM, "the sealed credential is opened at compile time"
    assert beta_chat.targets[0].api_key == BETA_UPSTREAM
    assert (target.model_id, target.provider_id, target.credential_id) == (
        "m-eu",
        "p-main",
        "c-acme",
    )
    assert (target.provider_model, target.region, target.kind) == (
        "model-eu",
        "eu",
        snapshot_pb2.PROVIDER_KIND_MOCK,
    )
    assert (target.prices.input, target.prices.output, target.prices.cached_input) == (
        150_000,
        600_000,
        75_000,
    )
    assert ACME_UPSTREAM not in repr(target), "a target never prints its credential"


def test_compiled_lookups_are_read_only() -> None:
    policy = compile_snapshot(snapshots.two_tenants().snapshot(), snapshots.keyring())
    with pytest.raises(TypeError):
        policy.routes["r-new"] = policy.routes["r-acme-chat"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del policy.keys_by_hash[hash_key(ACME_KEY)]  # type: ignore[attr-defined]


def test_an_empty_policy_compiles() -> None:
    policy = compile_snapshot(snapshot_of(snapshot_pb2.Policy()), None)
    assert not policy.routes
    assert not policy.keys_by_hash


def test_a_credential_without_secret_needs_no_keyring() -> None:
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-a")
        .provider("p")
        .credential("c", "t-a", "p")
        .model("m", "p")
        .route("r", "t-a", "chat", [("m", "c")])
    )
    policy = compile_snapshot(builder.snapshot(), None)
    assert policy.routes["r"].targets[0].api_key == ""


def test_key_hashes_are_matched_case_insensitively() -> None:
    builder = snapshots.two_tenants()
    builder.policy.keys[0].key_hash = builder.policy.keys[0].key_hash.upper()
    policy = compile_snapshot(builder.snapshot(), snapshots.keyring())
    assert policy.keys_by_hash[hash_key(ACME_KEY)].id == "k-acme"


def test_target_order_priority_weight_and_disabled_provider_are_carried() -> None:
    builder = (
        snapshots.PolicyBuilder()
        .tenant("t-a")
        .provider("p-on")
        .provider("p-off", enabled=False)
        .credential("c-on", "t-a", "p-on")
        .credential("c-off", "t-a", "p-off")
        .model("m-on", "p-on")
        .model("m-off", "p-off")
        .route("r", "t-a", "chat", [("m-on", "c-on", 2, 30), ("m-off", "c-off", 1, 70)])
    )
    targets = compile_snapshot(builder.snapshot(), None).routes["r"].targets
    assert [(t.model_id, t.priority, t.weight, t.enabled) for t in targets] == [
        ("m-on", 2, 30, True),
        ("m-off", 1, 70, False),
    ]


type Breakage = Callable[[snapshot_pb2.Policy], object]


def _by_id[
    T: (
        snapshot_pb2.Tenant,
        snapshot_pb2.Model,
        snapshot_pb2.Credential,
        snapshot_pb2.Route,
        snapshot_pb2.VirtualKey,
    )
](items: Iterable[T], id: str) -> T:
    return next(item for item in items if item.id == id)


def _target(policy: snapshot_pb2.Policy, route_id: str) -> snapshot_pb2.RouteTarget:
    return _by_id(policy.routes, route_id).targets[0]


def _move_model(policy: snapshot_pb2.Policy, model_id: str, provider_id: str) -> None:
    policy.providers.add(id=provider_id, name=provider_id)
    _by_id(policy.models, model_id).provider_id = provider_id


DANGLING: dict[str, tuple[Breakage, str]] = {
    "model names unknown provider": (
        lambda p: setattr(_by_id(p.models, "m-eu"), "provider_id", "p-nope"),
        "model m-eu names unknown provider p-nope",
    ),
    "credential names unknown tenant": (
        lambda p: setattr(_by_id(p.credentials, "c-acme"), "tenant_id", "t-nope"),
        "credential c-acme names unknown tenant t-nope",
    ),
    "credential names unknown provider": (
        lambda p: setattr(_by_id(p.credentials, "c-acme"), "provider_id", "p-nope"),
        "credential c-acme names unknown provider p-nope",
    ),
    "route names unknown tenant": (
        lambda p: setattr(_by_id(p.routes, "r-acme-extra"), "tenant_id", "t-nope"),
        "route r-acme-extra names unknown tenant t-nope",
    ),
    "route has no name": (
        lambda p: setattr(_by_id(p.routes, "r-acme-extra"), "name", ""),
        "route r-acme-extra has no name",
    ),
    "route target names unknown model": (
        lambda p: setattr(_target(p, "r-beta-chat"), "model_id", "m-nope"),
        "route r-beta-chat names unknown model m-nope",
    ),
    "route target names unknown credential": (
        lambda p: setattr(_target(p, "r-beta-chat"), "credential_id", "c-nope"),
        "route r-beta-chat names unknown credential c-nope",
    ),
    "route uses a credential of another tenant": (
        lambda p: setattr(_target(p, "r-beta-chat"), "credential_id", "c-acme"),
        "route r-beta-chat uses credential c-acme of another tenant",
    ),
    "credential is for another provider than the model": (
        lambda p: _move_model(p, "m-us", "p-other"),
        "route r-beta-chat: credential c-beta is for another provider",
    ),
    "key names unknown tenant": (
        lambda p: setattr(_by_id(p.keys, "k-beta"), "tenant_id", "t-nope"),
        "key k-beta names unknown tenant t-nope",
    ),
    "key names unknown route": (
        lambda p: _by_id(p.keys, "k-beta").route_ids.append("r-nope"),
        "key k-beta names unknown route r-nope",
    ),
    "key names a route of another tenant": (
        lambda p: _by_id(p.keys, "k-beta").route_ids.append("r-acme-chat"),
        "key k-beta names route chat of another tenant",
    ),
    "key has no hash": (
        lambda p: setattr(_by_id(p.keys, "k-beta"), "key_hash", ""),
        "key k-beta has no hash",
    ),
    "two keys share a hash": (
        lambda p: setattr(_by_id(p.keys, "k-beta"), "key_hash", _by_id(p.keys, "k-acme").key_hash),
        "key k-beta repeats another key's hash",
    ),
    "route name used twice in a tenant": (
        lambda p: setattr(_by_id(p.routes, "r-acme-extra"), "name", "chat"),
        "route name chat is used twice in tenant t-acme",
    ),
    "duplicate tenant id": (
        lambda p: p.tenants.add(id="t-beta", slug="beta2", active=True),
        "duplicate tenant id t-beta",
    ),
    "duplicate model id": (
        lambda p: p.models.add(id="m-eu", provider_id="p-main"),
        "duplicate model id m-eu",
    ),
    "empty provider id": (
        lambda p: p.providers.add(id="", name="anonymous"),
        "a provider has an empty id",
    ),
}


@pytest.mark.parametrize(("breakage", "message"), DANGLING.values(), ids=DANGLING.keys())
def test_an_inconsistent_snapshot_is_refused(breakage: Breakage, message: str) -> None:
    builder = snapshots.two_tenants()
    compile_snapshot(builder.snapshot(), snapshots.keyring())  # sound before the breakage
    breakage(builder.policy)
    with pytest.raises(InconsistentSnapshot) as info:
        compile_snapshot(builder.snapshot(), snapshots.keyring())
    assert message in info.value.problems  # the shared check's wording, as the publisher's


def _reseal(policy: snapshot_pb2.Policy, credential_id: str, sealed: bytes) -> None:
    _by_id(policy.credentials, credential_id).sealed_secret = sealed


def _sealed(policy: snapshot_pb2.Policy, credential_id: str) -> bytes:
    return _by_id(policy.credentials, credential_id).sealed_secret


def test_a_credential_sealed_with_another_key_is_refused() -> None:
    snapshot = snapshots.two_tenants(snapshots.keyring(snapshots.OTHER_SEAL_KEY)).snapshot()
    with pytest.raises(PolicyError, match="credential 'c-acme' cannot be opened"):
        compile_snapshot(snapshot, snapshots.keyring())


def test_sealed_credentials_without_a_keyring_are_refused() -> None:
    with pytest.raises(PolicyError, match="ASC_SEAL_KEY is not set"):
        compile_snapshot(snapshots.two_tenants().snapshot(), None)


def test_a_keyring_with_the_old_key_still_opens_during_rotation() -> None:
    snapshot = snapshots.two_tenants(snapshots.keyring(snapshots.OTHER_SEAL_KEY)).snapshot()
    rotated = snapshots.keyring(f"{snapshots.SEAL_KEY},{snapshots.OTHER_SEAL_KEY}")
    policy = compile_snapshot(snapshot, rotated)
    assert policy.routes["r-acme-chat"].targets[0].api_key == ACME_UPSTREAM


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


UNOPENABLE: dict[str, Callable[[snapshot_pb2.Policy], None]] = {
    # A sealed value moved to another credential fails authentication (bound to its id).
    "moved to another credential": lambda p: _reseal(p, "c-beta", _sealed(p, "c-acme")),
    "tampered": lambda p: _reseal(p, "c-acme", _flip_last_byte(_sealed(p, "c-acme"))),
    "truncated": lambda p: _reseal(p, "c-acme", b"v1.12345678abc"),
    "not a sealed value": lambda p: _reseal(p, "c-acme", b"sk-plain-text-credential"),
    "plaintext is not UTF-8": lambda p: _reseal(
        p, "c-acme", snapshots.keyring().seal(b"\xff\xfe", b"c-acme")
    ),
}


@pytest.mark.parametrize("breakage", UNOPENABLE.values(), ids=UNOPENABLE.keys())
def test_a_credential_that_cannot_be_opened_is_refused(
    breakage: Callable[[snapshot_pb2.Policy], None],
) -> None:
    builder = snapshots.two_tenants()
    breakage(builder.policy)
    with pytest.raises(PolicyError, match="cannot be opened"):
        compile_snapshot(builder.snapshot(), snapshots.keyring())
